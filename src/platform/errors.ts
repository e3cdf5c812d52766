// The catalogue of errors: every code Relaydesk answers with, in one closed list. Services throw
// AppError with one of these codes; the HTTP layer maps each code to its status in one place
// (http/problem.ts), the CLI to its exit code in one place (cli/exit-codes.ts). Domain code never
// picks a status. Adding a code means adding it here, and the compiler then asks for its status and
// its exit code.

export const ERROR_CATALOGUE = {
  // Who is asking
  unauthorized: 'No valid API token: missing, malformed, unknown, revoked, or its person is suspended.',
  forbidden: "The token's role does not have the permission the operation needs.",
  invalid_credentials:
    'Sign-in refused: the email and password (or the second-factor code) do not match an agent who may sign in.',
  second_factor_required:
    'The password is right and the account has a second factor: send it again with `totp` or `recoveryCode`.',
  second_factor_enrollment_required:
    'The tenant requires a second factor and this person has none yet: enrol one (POST /session/totp) first.',
  tenant_required: 'The email and password match agents of several tenants: say which one (`tenant`).',
  csrf_failed:
    'A console session wrote without the X-CSRF-Token header of its session (or with a wrong one).',
  session_expired: 'The console session has ended (idle or absolute timeout); sign in again.',
  // What was asked
  bad_request:
    'The request itself could not be read (a URL path or query string that is not percent-encoded UTF-8, a malformed header, a multipart body that cannot be parsed).',
  uri_too_long: 'A path segment of the URL is longer than any the API takes.',
  headers_too_large: 'The request line and headers together are larger than the server reads.',
  request_timeout: 'The request did not arrive in full within the time the server waits for one.',
  not_found: 'No such object in this tenant (another tenant\'s object is "not found" too), or no such route.',
  method_not_allowed: 'The path exists, but not with this method; the Allow header lists the methods it has.',
  validation_failed: 'The input breaks a rule; `errors` lists each field (a JSON pointer) and what is wrong.',
  invalid_cursor: 'The pagination cursor is not one this API handed out.',
  invalid_token: 'The invitation or password-reset link is unknown, used already or expired.',
  invalid_json: 'The body is not valid JSON.',
  unsupported_media_type: 'The body is in a media type this route does not take.',
  payload_too_large: 'The body is larger than the server accepts.',
  conflict:
    'The change collides with existing data (a name or address already taken, a state that forbids it).',
  ticket_changed:
    'Someone else added a message to the ticket since the one the request says was seen (`seenMessageId`); read it, then send again without it.',
  identity_taken: 'The external identity already belongs to another person.',
  merge_into_self: 'A person cannot be merged into itself.',
  invalid_calendar: 'The business calendar is not valid (see the message for the rule it breaks).',
  calendar_has_no_business_time: 'The calendar has no business time at all, so no deadline can be computed.',
  invalid_time_zone: 'Not an IANA time zone name.',
  invalid_instant: 'Not an ISO-8601 instant with a time zone, or not a real date.',
  deadline_out_of_range: 'The deadline falls outside the range the calendar can compute.',
  webhook_signature_invalid: "A provider webhook's proof (clientState, OIDC token) did not verify.",
  provider_credentials_rejected:
    "The provider refused the credentials given (a Slack token that auth.test refuses); `providerError` is the provider's own code.",
  // Whether we can answer now
  rate_limited: 'Too many requests; retry after the time given.',
  database_unavailable: 'The database cannot be reached right now; retry shortly.',
  provider_unavailable:
    'The provider could not be asked right now (no answer, an error on its side, its rate limit); retry shortly.',
  queue_unavailable: 'The job queue does not run in this process (a role without it); retry on another.',
  migrations_pending: "The database schema is older than this version's code; run the migrations.",
  console_not_built:
    'The operator console has not been built in this installation: run `npm run build` (npm install does it).',
  internal_error: 'Something went wrong on our side; it has been logged.',
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;
export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

/** One field-level problem: where (a JSON pointer into the input) and what. */
export interface FieldError {
  path: string;
  message: string;
  /** Where the field is: the JSON body (default), the query string, the path. */
  in?: 'body' | 'query' | 'path' | 'headers';
}

export interface ErrorDetails {
  /** Field-level problems, e.g. [{ path: '/subject', message: 'must not be empty' }]. */
  errors?: FieldError[];
  /** Anything else a client may act on (e.g. the conflicting field). */
  [key: string]: unknown;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message: string, options: { details?: ErrorDetails; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = options.details;
  }
}

export const notFound = (what: string): AppError => new AppError('not_found', `${what} not found`);
export const validation = (message: string, errors?: FieldError[]): AppError =>
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
  if (err instanceof AppError) return err.code === 'database_unavailable';
  const { code, syscall } = err as { code?: unknown; syscall?: unknown };
  if (typeof code === 'string') {
    if (code.startsWith('08') || UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_NODE_CODES.has(code))
      return true;
    // A stopped PostgreSQL removes its Unix socket: connecting to it fails with ENOENT (or EACCES
    // while the directory is being recreated), which names the socket, not a file we meant to read.
    if (syscall === 'connect' && (code === 'ENOENT' || code === 'EACCES')) return true;
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
