// `relaydesk sla`: calendar math from the command line (no database).
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { AppError } from '../platform/errors.ts';
import { Calendar, formatInstant, parseInstant } from '../modules/sla/calendar.ts';
import { EXIT_BAD_INPUT } from './exit-codes.ts';

/** Bad input of these commands: message on stderr, exit 2. */
class SlaInputError extends Error {}

async function loadCalendarFile(file: string): Promise<Calendar> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SlaInputError(
      `cannot read the calendar file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new SlaInputError(`${file} is not JSON`);
  }
  return Calendar.load(json);
}

function nonNegativeInteger(text: string, what: string): number {
  if (!/^\d+$/.test(text))
    throw new SlaInputError(`${what} must be a whole number of ${what.replace('--', '')}, got "${text}"`);
  return Number(text);
}

async function run(fn: () => Promise<string>): Promise<void> {
  try {
    process.stdout.write(`${await fn()}\n`);
  } catch (err) {
    if (err instanceof SlaInputError || err instanceof AppError) {
      process.stderr.write(`relaydesk sla: ${err.message}\n`);
      process.exit(EXIT_BAD_INPUT);
    }
    throw err;
  }
}

export function registerSlaCommands(program: Command): void {
  const sla = program
    .command('sla')
    .description('business-time math over a calendar file (no database needed)');
  sla
    .command('deadline')
    .description(
      'print the instant at which the given business time after --start has been used (ISO-8601 UTC)',
    )
    .requiredOption('--calendar <file>', 'calendar JSON file')
    .requiredOption('--start <iso>', 'start instant, e.g. 2026-03-02T14:00:00Z')
    .option('--minutes <n>', 'business minutes')
    .option('--seconds <n>', 'business seconds')
    .action((options: { calendar: string; start: string; minutes?: string; seconds?: string }) =>
      run(async () => {
        if ((options.minutes === undefined) === (options.seconds === undefined)) {
          throw new SlaInputError('pass exactly one of --minutes and --seconds');
        }
        const seconds =
          options.minutes !== undefined
            ? nonNegativeInteger(options.minutes, '--minutes') * 60
            : nonNegativeInteger(options.seconds!, '--seconds');
        const calendar = await loadCalendarFile(options.calendar);
        return formatInstant(calendar.deadline(parseInstant(options.start, '--start'), seconds));
      }),
    );
  sla
    .command('elapsed')
    .description('print the business seconds in [--from, --to)')
    .requiredOption('--calendar <file>', 'calendar JSON file')
    .requiredOption('--from <iso>', 'from instant')
    .requiredOption('--to <iso>', 'to instant')
    .action((options: { calendar: string; from: string; to: string }) =>
      run(async () => {
        const from = parseInstant(options.from, '--from');
        const to = parseInstant(options.to, '--to');
        // An interval that ends before it starts is a mistake (swapped arguments), not zero seconds.
        if (from > to)
          throw new SlaInputError(`--from (${options.from}) is after --to (${options.to}); swap them?`);
        const calendar = await loadCalendarFile(options.calendar);
        return String(calendar.elapsed(from, to));
      }),
    );
}
