// `relaydesk deliveries`: the delivery ledger from the command line, through the same operations
// as the API (outbound/ledger.ts): list attempts with the API's filters, and retry one (recorded in
// the audit trail as the API's retry is, audit.ts).
import type { Command } from 'commander';
import type {
  DeliveryChannel,
  DeliveryErrorCode,
  DeliveryPurpose,
  DeliveryStatus,
} from '../modules/outbound/model.ts';
import { isStorableInstant } from '../platform/instants.ts';
import { CliError, wholeNumber } from './cli-error.ts';
import { EXIT_BAD_INPUT } from './exit-codes.ts';
import { chooseTenant, tenantOption, type WithDatabase, withJobQueue } from './mailbox.ts';

/** model.ts's values, spelled out so that parsing the arguments loads no module. */
const STATUSES = ['queued', 'skipped', 'sent', 'delivered', 'bounced', 'failed', 'unknown'];
const CHANNELS = ['email', 'teams', 'slack', 'webhook'];
const PURPOSES = ['reply', 'acknowledgement', 'notification'];
const ERROR_CODES = ['throttled', 'auth', 'not_found', 'invalid_recipient', 'transient', 'permanent'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function oneOf(value: string | undefined, allowed: string[], option: string): string | undefined {
  if (value === undefined || allowed.includes(value)) return value;
  throw new CliError(`${option} must be one of ${allowed.join(', ')}, got "${value}"`, EXIT_BAD_INPUT);
}

function instant(value: string | undefined, option: string): string | undefined {
  if (value === undefined) return undefined;
  // Date.parse takes February 30 (as March 2) and year 0000, which PostgreSQL refuses.
  if (!isStorableInstant(value))
    throw new CliError(
      `${option} must be an ISO-8601 instant such as 2026-12-01T09:00:00Z, got "${value}"`,
      EXIT_BAD_INPUT,
    );
  return value;
}

function uuid(value: string | undefined, what: string): string | undefined {
  if (value === undefined || UUID.test(value)) return value;
  throw new CliError(`${what} must be an id (UUID), got "${value}"`, EXIT_BAD_INPUT);
}

const cell = (v: unknown) => (v === null || v === undefined ? '-' : String(v).replace(/[\t\r\n]+/g, ' '));

export function registerDeliveryCommands(
  program: Command,
  withDatabase: WithDatabase,
  out: (line: string) => void,
): void {
  const deliveries = program
    .command('deliveries')
    .description('the delivery ledger: every attempt to send mail or a notification');
  deliveries
    .command('list')
    .description('attempts, newest first (tab-separated; --json for the API shape)')
    .addOption(tenantOption())
    .option('--ticket <id|T-n>', 'only this ticket (its id or number)')
    .option('--purpose <purpose>', PURPOSES.join('|'))
    .option('--status <status>', STATUSES.join('|'))
    .option('--channel <channel>', CHANNELS.join('|'))
    .option('--error-code <code>', ERROR_CODES.join('|'))
    .option('--from <iso>', 'created at or after')
    .option('--to <iso>', 'created before')
    .option('--limit <n>', 'at most this many (1-200)', '50')
    .option('--cursor <cursor>', 'the next page (printed after a full page)')
    .option('--json', 'print the page as JSON')
    .action(
      async (
        options: {
          tenant?: string;
          ticket?: string;
          purpose?: string;
          status?: string;
          channel?: string;
          errorCode?: string;
          from?: string;
          to?: string;
          limit: string;
          cursor?: string;
          json?: boolean;
        },
        command: Command,
      ) => {
        const byNumber = options.ticket !== undefined && /^t-\d{1,18}$/i.test(options.ticket);
        const filters = {
          ...(byNumber
            ? { ticketNumber: options.ticket!.toUpperCase() }
            : { ticketId: uuid(options.ticket, '--ticket (an id or a number such as T-12)') }),
          purpose: oneOf(options.purpose, PURPOSES, '--purpose') as DeliveryPurpose | undefined,
          status: oneOf(options.status, STATUSES, '--status') as DeliveryStatus | undefined,
          channel: oneOf(options.channel, CHANNELS, '--channel') as DeliveryChannel | undefined,
          errorCode: oneOf(options.errorCode, ERROR_CODES, '--error-code') as DeliveryErrorCode | undefined,
          from: instant(options.from, '--from'),
          to: instant(options.to, '--to'),
          limit: wholeNumber(options.limit, '--limit', 1, 200),
          ...(options.cursor === undefined ? {} : { cursor: options.cursor }),
        };
        await withDatabase(command, async (ctx) => {
          const tenant = await chooseTenant(ctx, options.tenant);
          const page = await ctx.rt.withTenantRead(ctx.db.pool, tenant.id, (tx) =>
            ctx.rt.listDeliveries(tx, filters),
          );
          if (options.json) return out(JSON.stringify(page, null, 2));
          out('id\tcreated_at\tchannel\tpurpose\tdestination\tstatus\tattempt\terror_code\terror');
          for (const d of page.items)
            out(
              [
                d.id,
                d.createdAt,
                d.channel,
                d.purpose,
                d.destination,
                d.status,
                d.attempt,
                d.errorCode,
                d.errorMessage ?? d.skipReason,
              ]
                .map(cell)
                .join('\t'),
            );
          if (page.items.length === 0) process.stderr.write('no deliveries\n');
          if (page.nextCursor) process.stderr.write(`more: --cursor ${page.nextCursor}\n`);
        });
      },
    );
  deliveries
    .command('retry <id>')
    .description(
      'queue a new attempt of a delivery whose latest attempt failed, was unknown, bounced or skipped',
    )
    .addOption(tenantOption())
    .action(async (id: string, options: { tenant?: string }, command: Command) => {
      uuid(id, 'the delivery');
      await withDatabase(command, async (ctx) => {
        const tenant = await chooseTenant(ctx, options.tenant);
        const mail = async () => ({
          messageIdKey: ctx.rt.messageIdKey(await ctx.rt.resolveSecretKey(ctx.config)),
        });
        // Recorded as POST /deliveries/:id/retry (no body) is, on the delivery named, with the code
        // of the operation's refusal (not_found, validation_failed) before it is said in CLI words.
        const next = await ctx.rt
          .auditedCliWrite(
            { pool: ctx.db.pool, logger: ctx.logger },
            {
              tenantId: tenant.id,
              action: 'deliveries.retry',
              targetType: 'deliveries',
              targetId: id,
              payload: null,
              write: () =>
                withJobQueue(ctx, (send) =>
                  ctx.rt.withTenant(ctx.db.pool, tenant.id, async (tx) => {
                    const row = await ctx.rt.retryDeliveryWithMail(tx, mail, id);
                    await send(
                      ctx.rt.sendJobOf(row.channel),
                      { tenantId: tx.tenantId, deliveryId: row.id },
                      { tx },
                    );
                    return ctx.rt.getDelivery(tx, row.id);
                  }),
                ),
            },
          )
          .catch((err: unknown) => {
            const code = (err as { code?: string }).code;
            if (code === 'not_found')
              throw new CliError(`no delivery ${id} in tenant ${tenant.name}`, EXIT_BAD_INPUT);
            if (code === 'validation_failed') throw new CliError((err as Error).message, EXIT_BAD_INPUT);
            throw err;
          });
        out(`queued attempt ${next.attempt} as ${next.id}`);
      });
    });
}
