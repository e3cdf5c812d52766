// The catalogue of domain errors. Services throw these; the HTTP layer maps them to
// application/problem+json in exactly one place (http/problem.ts), the CLI prints their message.
// Domain code never imports HTTP types: `status` here is only the hint that mapping uses.

export type ErrorCode =
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'validation_failed'
  | 'invalid_cursor'
  | 'invalid_json'
  | 'unsupported_media_type'
  | 'conflict'
  | 'payload_too_large'
  | 'database_unavailable'
  | 'rate_limited'
  | 'internal_error'
  | (string & {});

const STATUS_BY_CODE: Record<string, number> = {
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  validation_failed: 400,
  invalid_cursor: 400,
  invalid_json: 400,
  unsupported_media_type: 415,
  conflict: 409,
  payload_too_large: 413,
  database_unavailable: 503,
  rate_limited: 429,
  internal_error: 500,
};

export interface ErrorDetails {
  /** Field-level problems, e.g. [{ path: '/subject', message: 'must not be empty' }]. */
  errors?: { path: string; message: string }[];
  /** Anything else a client may act on (e.g. the conflicting field). */
  [key: string]: unknown;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetails | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { status?: number; details?: ErrorDetails; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = options.status ?? STATUS_BY_CODE[code] ?? 400;
    this.details = options.details;
  }
}

export const notFound = (what: string): AppError => new AppError('not_found', `${what} not found`);
export const validation = (message: string, errors?: { path: string; message: string }[]): AppError =>
  new AppError('validation_failed', message, errors === undefined ? {} : { details: { errors } });
export const conflict = (message: string, details?: ErrorDetails): AppError =>
  new AppError('conflict', message, details === undefined ? {} : { details });
export const forbidden = (message = 'This token may not do that'): AppError =>
  new AppError('forbidden', message);
export const unauthorized = (message = 'A valid API token is required'): AppError =>
  new AppError('unauthorized', message);

// PostgreSQL SQLSTATE classes that mean "the database is not reachable right now" rather than
// "this statement is wrong": connection exceptions (08), operator intervention (57P0x).
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);
const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** True when `err` says the database could not be reached (as opposed to a failed statement). */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code.startsWith('08') || UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_NODE_CODES.has(code))
      return true;
  }
  const message = err.message;
  if (
    message.includes('Connection terminated') ||
    message.includes('timeout exceeded when trying to connect') ||
    message.includes('Client has encountered a connection error') ||
    message.includes('the database system is starting up') ||
    message.includes('the database system is shutting down')
  ) {
    return true;
  }
  if (err instanceof AggregateError) return err.errors.some(isDatabaseUnavailable);
  return err.cause !== undefined && isDatabaseUnavailable(err.cause);
}
