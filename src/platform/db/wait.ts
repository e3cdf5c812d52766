// Reaching an external PostgreSQL (DATABASE_URL) at start. A database that is still starting (a
// container started beside us, a failover) is waited for with back-off for a configurable time; one
// that refuses us (wrong password, no such database) is a configuration problem and is reported at
// once. Either way the message says it is the database and where, never the password.
import { ConfigError } from '../config.ts';
import { AppError, isDatabaseUnavailable } from '../errors.ts';
import type { Logger } from '../logging.ts';
import type { Queryable } from './pool.ts';

/** `host:port/database` of a connection URL, for messages: never the user's password. */
export function describeDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    // pg takes a Unix socket directory as ?host=/path (or an empty host).
    const host = u.searchParams.get('host') ?? (u.hostname || 'localhost');
    const port = u.searchParams.get('port') ?? (u.port || '5432');
    const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || u.username || 'postgres';
    return `${host}:${port}/${database}`;
  } catch {
    return 'DATABASE_URL (not a URL)';
  }
}

// SQLSTATEs meaning "this database will not let us in as configured": waiting does not help.
const REFUSED: Record<string, string> = {
  '28P01': 'the password was not accepted',
  '28000': 'the login was refused',
  '3D000': 'the database does not exist',
};

/** What went wrong, in plain words where the driver's message is cryptic. */
function reasonOf(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused (is PostgreSQL running and listening there?)';
    case 'ENOTFOUND':
      return 'no such host';
    case 'EAI_AGAIN':
      return 'the host name could not be looked up';
    case 'ETIMEDOUT':
      return 'the connection timed out';
    case 'ECONNRESET':
      return 'the connection was reset';
    case '57P03':
      return 'the database is starting up';
  }
  if (err instanceof AggregateError && err.errors.length > 0) return reasonOf(err.errors[0]);
  const message = err instanceof Error ? err.message : String(err);
  // The driver's message may quote the connection string; keep the password out of it.
  return message.replace(/(postgres(?:ql)?:\/\/[^:/@\s]+:)[^@\s]+@/gi, '$1…@');
}

export interface WaitForDatabaseOptions {
  /** Where the connections go (a pool). */
  db: Queryable;
  url: string;
  /** How long to keep retrying an unreachable database; 0 tries once. */
  waitSeconds: number;
  logger: Logger;
  /** Injected by tests so that no test waits on the wall clock. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/**
 * Resolves once a query on `db` succeeds. Throws ConfigError when the database refuses us, and
 * AppError('database_unavailable') when it stayed unreachable for `waitSeconds`.
 */
export async function waitForDatabase(options: WaitForDatabaseOptions): Promise<void> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = options.now ?? Date.now;
  const where = describeDatabaseUrl(options.url);
  const deadline = now() + options.waitSeconds * 1000;
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      await options.db.query('SELECT 1');
      if (attempt > 1)
        options.logger.info({ database: where, attempts: attempt }, 'the database is reachable');
      return;
    } catch (err) {
      const code = String((err as { code?: unknown })?.code ?? '');
      if (REFUSED[code]) {
        throw new ConfigError([
          `DATABASE_URL: the database at ${where} refused the connection: ${REFUSED[code]} (${reasonOf(err)})`,
        ]);
      }
      if (!isDatabaseUnavailable(err)) throw err;
      const reason = reasonOf(err);
      const left = deadline - now();
      if (left <= 0) {
        const waited = options.waitSeconds > 0 ? `; gave up after ${options.waitSeconds} s` : '';
        throw new AppError(
          'database_unavailable',
          `cannot reach the database at ${where} (DATABASE_URL): ${reason}${waited} ` +
            '(wait longer with --db-wait SECONDS or RELAYDESK_DB_WAIT_SECONDS)',
          { cause: err },
        );
      }
      if (attempt === 1) {
        options.logger.warn(
          { database: where, reason, waitSeconds: options.waitSeconds },
          'waiting for the database',
        );
      }
      await sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, 5000);
    }
  }
}

export interface RetryWhileUnavailableOptions {
  logger: Logger;
  /** What is being written, for the log. */
  what: string;
  /** Stops the retrying (a job's lease ran out, the worker stops): the last error is thrown. */
  signal?: AbortSignal | undefined;
  /** Retries for at most this long. */
  forMs: number;
  /** Injected by tests so that no test waits on the wall clock. */
  sleep?: ((ms: number) => Promise<void>) | undefined;
  now?: (() => number) | undefined;
}

/**
 * Runs `write` (a whole transaction) until it succeeds, trying again with growing pauses while the
 * database is unreachable (a restart, a failover, a pooler that cannot log in yet), until `forMs`
 * passes or `signal` aborts. For the writes that record what already happened outside and that only
 * this process knows: a mail or notification the provider accepted. Failing such a write fails the
 * job, and the run after it can no longer tell whether the provider took the send, so it reports it
 * `unknown` for a person to review. `write` must be safe to run again after an answer was lost (the
 * ledger's writes are conditional on the attempt's state). Any other error is thrown at once.
 */
export async function retryWhileUnavailable<T>(
  write: () => Promise<T>,
  options: RetryWhileUnavailableOptions,
): Promise<T> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = options.now ?? Date.now;
  const deadline = now() + options.forMs;
  let delay = 100;
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await write();
      if (attempt > 1)
        options.logger.info({ what: options.what, attempts: attempt }, 'written once the database answered');
      return result;
    } catch (err) {
      const left = deadline - now();
      if (!isDatabaseUnavailable(err) || options.signal?.aborted || left <= 0) throw err;
      if (attempt === 1)
        options.logger.warn(
          { what: options.what, reason: reasonOf(err) },
          'the database is out of reach; trying the write again until it answers',
        );
      await sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, 2000);
    }
  }
}
