import { EXIT_BAD_INPUT, EXIT_FAILED } from './exit-codes.ts';

/** A CLI failure with its exit code (exit-codes.ts): one line on stderr, then that exit. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = EXIT_FAILED) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** An option's value as a whole number from `min` to `max`, or a CliError (bad input) naming the option. */
export function wholeNumber(value: string, option: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max)
    throw new CliError(
      `${option} must be a whole number from ${min} to ${max}, got "${value}"`,
      EXIT_BAD_INPUT,
    );
  return n;
}
