import { EXIT_FAILED } from './exit-codes.ts';

/** A CLI failure with its exit code (exit-codes.ts): one line on stderr, then that exit. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = EXIT_FAILED) {
    super(message);
    this.exitCode = exitCode;
  }
}
