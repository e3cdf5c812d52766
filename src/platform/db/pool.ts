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
}

export function createPool(options: PoolOptions): Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 20,
    application_name: options.applicationName ?? 'relaydesk',
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5000,
    idleTimeoutMillis: 30_000,
    options: '-c TimeZone=UTC',
    types,
  });
  // An idle client that loses its server emits 'error' on the pool; unhandled, that would end the process.
  pool.on('error', (err) => options.onError?.(err));
  return pool;
}

// ---------------------------------------------------------------------------------------------
// One round trip for a scoped statement. A tenant transaction needs BEGIN and its scope (role and
// tenant for row-level security) before its first statement; sent as statements of their own they
// cost a round trip each, and on this kind of machine a round trip's system calls and wake-ups cost
// both processes more CPU than a short indexed query does. The extended protocol lets several
// Bind/Execute pairs share one Sync, so the scope rides in the same message batch as the first
// statement. The scope statements are parsed once per connection, when it connects.

export const SCOPE_STATEMENTS = {
  begin: { name: 'rd_scope_begin', text: 'BEGIN' },
  scope: {
    name: 'rd_scope_tenant',
    text: "SELECT set_config('role', 'relaydesk_app', true), set_config('app.tenant_id', $1, true)",
  },
  // For a short transaction of its own that need not wait for its WAL flush (ticket numbers).
  scopeAsyncCommit: {
    name: 'rd_scope_tenant_async',
    text: "SELECT set_config('role', 'relaydesk_app', true), set_config('app.tenant_id', $1, true), set_config('synchronous_commit', 'off', true)",
  },
  commit: { name: 'rd_scope_commit', text: 'COMMIT' },
  scopeReadOnly: {
    name: 'rd_scope_tenant_ro',
    text: "SELECT set_config('role', 'relaydesk_app', true), set_config('app.tenant_id', $1, true), set_config('transaction_read_only', 'on', true)",
  },
} as const;

type Connection = {
  parse(msg: { name: string; text: string }): void;
  bind(msg: { statement: string; values: unknown[] }): void;
  execute(msg: { portal?: string }): void;
  sync(): void;
  stream: { cork?: () => void; uncork?: () => void };
  parsedStatements: Record<string, string>;
  submittedNamedStatements: Record<string, string>;
};

// pg's Query, with the members its typings leave out: the hooks pg's client calls on the active query.
interface QueryInternals extends NodeJS.EventEmitter {
  text?: string;
  name?: string;
  values?: unknown;
  submit(connection: Connection): Error | null;
  handleDataRow(msg: unknown): void;
  handleCommandComplete(msg: unknown, connection: Connection): void;
  handleReadyForQuery(connection: Connection): void;
  _canceledDueToError: unknown;
}
const QueryBase = pg.Query as unknown as new (config: object) => QueryInternals;

/** Runs a submittable on a client as a promise of its result. */
function run<R extends QueryResultRow>(client: pg.ClientBase, q: QueryInternals): Promise<pg.QueryResult<R>> {
  return new Promise((resolve, reject) => {
    q.once('end', resolve);
    q.once('error', reject);
    client.query(q as unknown as pg.Submittable);
  });
}

/** Parses the scope statements on a new connection (Parse + Sync: nothing runs). */
class ParseOnly extends QueryBase {
  private connection: Connection | undefined;
  constructor() {
    super({ text: '' });
  }
  override submit(connection: Connection): null {
    this.connection = connection;
    connection.stream.cork?.();
    try {
      for (const s of Object.values(SCOPE_STATEMENTS)) connection.parse({ name: s.name, text: s.text });
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
    return null;
  }
  override handleReadyForQuery(connection: Connection): void {
    // Marked only when every Parse succeeded (an error ends the query before ReadyForQuery).
    if (!this._canceledDueToError && this.connection) {
      for (const s of Object.values(SCOPE_STATEMENTS)) this.connection.parsedStatements[s.name] = s.text;
    }
    super.handleReadyForQuery(connection);
  }
}

/** Whether the scope statements are ready on this client. */
export function scopeReady(client: pg.ClientBase): boolean {
  const parsed = (client as unknown as { connection: Connection }).connection.parsedStatements;
  return parsed[SCOPE_STATEMENTS.scope.name] !== undefined;
}

const scopeFailed = new WeakSet<pg.ClientBase>();
const scopePending = new WeakMap<pg.ClientBase, Promise<boolean>>();

/**
 * Makes the scope statements ready on this client (one round trip on its first use); false when
 * they cannot be (callers then send the scope as statements of their own). Call it only while the
 * client runs nothing else: pg is to stop queueing queries behind one another.
 */
export async function ensureScope(client: pg.ClientBase): Promise<boolean> {
  if (scopeReady(client)) return true;
  if (scopeFailed.has(client)) return false;
  let pending = scopePending.get(client);
  if (!pending) {
    pending = run(client, new ParseOnly()).then(
      () => scopeReady(client),
      () => {
        scopeFailed.add(client);
        return false;
      },
    );
    scopePending.set(client, pending);
  }
  return pending;
}

/** A prepared statement to run ahead of another in the same batch, its result dropped. */
export interface Prelude {
  name: string;
  values: unknown[];
}

/**
 * A statement preceded (and possibly followed), in the same message batch, by prepared statements
 * whose results are dropped (BEGIN, the tenant scope; COMMIT). Rows, errors and the named-statement
 * bookkeeping stay pg's. If any statement fails, PostgreSQL skips the rest up to the Sync and the
 * query fails.
 */
class PreludedQuery extends QueryBase {
  private readonly prelude: Prelude[];
  private readonly postlude: Prelude[];
  /** CommandCompletes seen so far: the main statement's is number prelude.length. */
  private completed = 0;
  constructor(
    config: { text: string; values?: unknown[]; name?: string },
    prelude: Prelude[],
    postlude: Prelude[] = [],
  ) {
    // The extended protocol throughout: a simple Query message cannot share the batch.
    super({ ...config, queryMode: 'extended' });
    this.prelude = prelude;
    this.postlude = postlude;
  }
  override submit(connection: Connection): Error | null {
    const send = (list: Prelude[]) => {
      for (const p of list) {
        connection.bind({ statement: p.name, values: p.values });
        connection.execute({});
      }
    };
    // pg refuses some queries in submit() before writing anything; by then the prelude would be
    // on the wire without its Sync. The same checks come first here, before anything is written.
    const name = this.name;
    const previous = name
      ? (connection.parsedStatements[name] ?? connection.submittedNamedStatements[name])
      : undefined;
    if (this.text && previous && this.text !== previous) {
      return new Error(`Prepared statements must be unique - '${name}' was used for a different statement`);
    }
    if (this.values !== undefined && !Array.isArray(this.values))
      return new Error('Query values must be an array');
    connection.stream.cork?.();
    const sync = connection.sync;
    try {
      send(this.prelude);
      if (this.postlude.length === 0) return super.submit(connection);
      // pg ends the main statement with a Sync; the postlude goes in before it.
      let synced = false;
      connection.sync = () => {
        synced = true;
      };
      const err = super.submit(connection);
      connection.sync = sync;
      if (err) return err;
      send(this.postlude);
      if (synced) connection.sync();
      return null;
    } finally {
      connection.sync = sync;
      connection.stream.uncork?.();
    }
  }
  override handleDataRow(msg: unknown): void {
    if (this.completed === this.prelude.length) super.handleDataRow(msg);
  }
  override handleCommandComplete(msg: unknown, connection: Connection): void {
    if (this.completed++ === this.prelude.length) super.handleCommandComplete(msg, connection);
  }
}

/**
 * Runs `config` on `client` with `prelude` ahead of it and `postlude` after it, in one round trip
 * (the client must be scopeReady).
 */
export function queryWithPrelude<R extends QueryResultRow>(
  client: pg.ClientBase,
  prelude: Prelude[],
  config: { text: string; values?: unknown[]; name?: string },
  postlude: Prelude[] = [],
): Promise<pg.QueryResult<R>> {
  return run<R>(client, new PreludedQuery(config, prelude, postlude));
}
