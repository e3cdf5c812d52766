// The connection pool. Every connection runs in UTC and returns timestamps as ISO-8601 strings with
// microseconds, so that no value passes through a lossy JS Date on its way to an API response or a
// pagination cursor (a cursor built from a millisecond Date would skip or repeat rows).
import pg from 'pg';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
export type QueryResultRow = pg.QueryResultRow;

/** Anything that can run a parameterised query: the pool, a client, a transaction. */
export interface Queryable {
  query<R extends QueryResultRow = any>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** "2026-03-02 14:00:00.123456+00" → "2026-03-02T14:00:00.123456Z" (sessions run with TimeZone=UTC). */
export function pgTimestampToIso(text: string): string {
  // The common shape, without splitting or a regular expression (this runs for every timestamp read).
  if (text.length >= 22 && text.charCodeAt(10) === 32 && text.endsWith('+00')) {
    return `${text.slice(0, 10)}T${text.slice(11, -3)}Z`;
  }
  if (text === 'infinity' || text === '-infinity') return text;
  const [date, timeWithZone] = text.split(' ');
  const time = (timeWithZone ?? '').replace(/\+00(:00)?$/, '');
  return `${date}T${time}Z`;
}

const TIMESTAMPTZ_OID = 1184;
const INT8_OID = 20;

const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): any {
    if (oid === TIMESTAMPTZ_OID) return pgTimestampToIso;
    if (oid === INT8_OID) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

export interface PoolOptions {
  connectionString: string;
  max?: number;
  applicationName?: string;
  /** How long a request waits for a connection before failing (and the API answers 503). */
  connectionTimeoutMillis?: number;
  onError?: (err: Error) => void;
  /**
   * The connection string leads to a pooler in transaction mode (PgBouncer), which may run each
   * transaction on another server connection: a statement prepared in one would be missing in the
   * next, and startup options are refused. The pool then sends neither (see usesNamedStatements).
   */
  transactionPooler?: boolean;
}

const behindTransactionPooler = new WeakSet<Pool>();

/** Whether statements on this pool may be prepared once per connection and reused by name. */
export const usesNamedStatements = (pool: Pool): boolean => !behindTransactionPooler.has(pool);

export function createPool(options: PoolOptions): Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 20,
    application_name: options.applicationName ?? 'relaydesk',
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5000,
    idleTimeoutMillis: 30_000,
    // Behind a transaction pooler the time zone is the server connection's (checked at start by
    // requireUtcSessions in database.ts); PgBouncer sets it with `timezone=UTC` on the database.
    ...(options.transactionPooler ? {} : { options: '-c TimeZone=UTC' }),
    types,
    // Pipelining (a documented option of pg): a client sends a query without waiting for the
    // answer to the one before. A tenant transaction's BEGIN and scope then travel with its first
    // statement, one round trip instead of three (tx.ts).
    pipeline: true,
  });
  // An idle client that loses its server emits 'error' on the pool; unhandled, that would end the process.
  pool.on('error', (err) => options.onError?.(err));
  if (options.transactionPooler) behindTransactionPooler.add(pool);
  return pool;
}
