import { createHash } from 'node:crypto';
// Transactions. `withTenant` is the only way request and job code touches tenant data: it switches the
// session to the non-superuser application role (so PostgreSQL row-level security applies even when
// the pool logs in as the table owner or a superuser) and pins the tenant for the RLS policies.
import {
  createPool,
  type Pool,
  type PoolClient,
  type Queryable,
  type QueryResultRow,
  queryWithPrelude,
  SCOPE_STATEMENTS,
  ensureScope,
} from './pool.ts';

export const APP_ROLE = 'relaydesk_app';

/** A transaction bound to one tenant. Queries still name `tenant_id` explicitly (index use, Citus routing). */
export interface TenantTx extends Queryable {
  readonly tenantId: string;
  readonly client: PoolClient;
  /** The pool the transaction came from, for work that must commit on its own (ticket numbers). */
  readonly pool: Pool | undefined;
}

/** A transaction without tenant scope, for platform work (auth lookup, tenant admin, migrations). */
export interface SystemTx extends Queryable {
  readonly client: PoolClient;
}

async function runInTransaction<T>(client: PoolClient, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Lends `fn` a connection of the pool. It goes back to the pool afterwards unless it broke, or is
 * still inside a transaction block (then it is closed: no borrower may inherit another's block).
 */
async function borrow<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    return await fn(client);
  } catch (err) {
    broken = isConnectionError(err);
    throw err;
  } finally {
    if (client.getTransactionStatus() !== 'I') broken = true;
    client.release(broken);
  }
}

/**
 * Statements of one unit of work, run one after another. `close` refuses new ones and waits for
 * those sent: a statement the caller did not await can never reach the connection after the work
 * has ended (after its COMMIT/ROLLBACK, unscoped, or inside the next borrower's work).
 */
function statementChain(ended: string) {
  let tail: Promise<unknown> = Promise.resolve();
  let closed = false;
  return {
    get closed() {
      return closed;
    },
    run<R>(statement: () => Promise<R>): Promise<R> {
      if (closed) return Promise.reject(new Error(ended));
      const p = tail.then(statement);
      tail = p.catch(() => undefined);
      return p;
    },
    async close(): Promise<void> {
      closed = true;
      await tail;
    },
  };
}

export async function withSystemTx<T>(pool: Pool, fn: (tx: SystemTx) => Promise<T>): Promise<T> {
  return borrow(pool, (client) => {
    const tx: SystemTx = {
      client,
      query: <R extends QueryResultRow>(text: string, values?: unknown[]) => client.query<R>(text, values),
    };
    return runInTransaction(client, () => fn(tx));
  });
}

// Parameterised statements of tenant transactions run as named (prepared) statements: each
// connection parses and plans a statement once instead of on every request, which is most of
// PostgreSQL's CPU for the short queries of the API. The SQL texts are the code's own, a finite set;
// the cap is a guard, not a limit we expect to reach.
const statementNames = new Map<string, string>();
const MAX_NAMED_STATEMENTS = 5_000;

function statementName(text: string, values?: unknown[]): { name?: string } {
  if (!values || values.length === 0) return {};
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MAX_NAMED_STATEMENTS) {
    name = `rd_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    statementNames.set(text, name);
  }
  return name === undefined ? {} : { name };
}

function preparedQuery<R extends QueryResultRow>(client: PoolClient, text: string, values?: unknown[]) {
  if (!values || values.length === 0) return client.query<R>(text);
  const { name } = statementName(text, values);
  return name === undefined ? client.query<R>(text, values) : client.query<R>({ name, text, values });
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function assertTenantId(tenantId: string): void {
  // The tenant id may be spliced into a statement (the fallback below), so it must be exactly a UUID.
  if (!UUID_RE.test(tenantId))
    throw new Error(`withTenant: "${String(tenantId).slice(0, 40)}" is not a tenant id`);
}

const scopeSql = (tenantId: string, readOnly: boolean) =>
  `SELECT set_config('role', '${APP_ROLE}', true), set_config('app.tenant_id', '${tenantId.toLowerCase()}', true)` +
  (readOnly ? ", set_config('transaction_read_only', 'on', true)" : '');

/**
 * Runs `fn` in one transaction scoped to the tenant. BEGIN and the scope travel with the first
 * statement (one round trip, see pool.ts); a transaction that ran no statement sends nothing.
 */
export async function withTenant<T>(
  pool: Pool,
  tenantId: string,
  fn: (tx: TenantTx) => Promise<T>,
): Promise<T> {
  assertTenantId(tenantId);
  // Both settings are transaction-local: they end with COMMIT/ROLLBACK, so a pooled connection
  // never carries one tenant's scope into the next borrower's transaction. COMMIT/ROLLBACK wait for
  // every statement sent (statementChain). If the opening batch did not leave a transaction open
  // (its BEGIN or scope failed), every later statement fails too instead of running unscoped.
  return borrow(pool, async (client) => {
    const chain = statementChain('withTenant: the transaction has ended');
    const state: { opened: 'no' | 'pending' | 'yes' | 'failed' } = { opened: 'no' };
    const open = async <R extends QueryResultRow>(text: string, values?: unknown[]) => {
      try {
        if (await ensureScope(client)) {
          return await queryWithPrelude<R>(
            client,
            [
              { name: SCOPE_STATEMENTS.begin.name, values: [] },
              { name: SCOPE_STATEMENTS.scope.name, values: [tenantId.toLowerCase()] },
            ],
            { text, values: values ?? [], ...statementName(text, values) },
          );
        }
        await client.query(`BEGIN; ${scopeSql(tenantId, false)}`);
        return await preparedQuery<R>(client, text, values);
      } finally {
        const status = client.getTransactionStatus();
        state.opened = status === 'T' || status === 'E' ? 'yes' : 'failed';
      }
    };
    const tx: TenantTx = {
      tenantId,
      get client(): PoolClient {
        // For what tx.query cannot express (e.g. results in binary format), once the transaction
        // is open: it opens with the first statement, so only after one has completed.
        if (state.opened !== 'yes' || chain.closed)
          throw new Error('withTenant: tx.client is for after a completed tx.query, inside fn');
        return client;
      },
      pool,
      query: <R extends QueryResultRow>(text: string, values?: unknown[]) => {
        if (state.opened === 'no' && !chain.closed) {
          state.opened = 'pending';
          return chain.run(() => open<R>(text, values));
        }
        return chain.run(() => {
          if (state.opened === 'failed') throw new Error('withTenant: the transaction did not open');
          // After an error PostgreSQL answers every statement with "current transaction is aborted".
          return preparedQuery<R>(client, text, values);
        });
      },
    };
    let result: T;
    try {
      result = await fn(tx);
    } catch (err) {
      await chain.close();
      if (state.opened !== 'no') await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    await chain.close();
    // A failed statement was the caller's to handle; COMMIT of an aborted transaction rolls back.
    if (state.opened === 'yes') await client.query('COMMIT');
    return result;
  });
}

/**
 * Read-only work scoped to the tenant without a transaction block: each statement runs as its own
 * implicit transaction with the scope in front of it, one round trip per statement. Under READ
 * COMMITTED a transaction would give each statement its own snapshot anyway, so a reader sees
 * nothing different; a write fails (transaction_read_only), and row locks make no sense here.
 */
export function withTenantRead<T>(
  pool: Pool,
  tenantId: string,
  fn: (tx: TenantTx) => Promise<T>,
): Promise<T> {
  return withoutBlock(pool, tenantId, fn, true);
}

/**
 * Like withTenantRead, but writes are allowed and each statement commits on its own. Only for
 * work whose one write is a single statement (atomic by itself), possibly after reads: nothing a
 * later statement does can undo an earlier one. Everything else belongs in withTenant.
 */
export function withTenantAutocommit<T>(
  pool: Pool,
  tenantId: string,
  fn: (tx: TenantTx) => Promise<T>,
): Promise<T> {
  return withoutBlock(pool, tenantId, fn, false);
}

async function withoutBlock<T>(
  pool: Pool,
  tenantId: string,
  fn: (tx: TenantTx) => Promise<T>,
  readOnly: boolean,
): Promise<T> {
  assertTenantId(tenantId);
  const statement = readOnly ? SCOPE_STATEMENTS.scopeReadOnly : SCOPE_STATEMENTS.scope;
  const scope = [{ name: statement.name, values: [tenantId.toLowerCase()] }];
  return borrow(pool, async (client) => {
    const chain = statementChain('the tenant scope has ended');
    const tx: TenantTx = {
      tenantId,
      get client(): PoolClient {
        throw new Error('a statement-at-a-time scope has no client to share: use tx.query');
      },
      pool,
      query: <R extends QueryResultRow>(text: string, values?: unknown[]) =>
        chain.run(async () =>
          (await ensureScope(client))
            ? queryWithPrelude<R>(client, scope, {
                text,
                values: values ?? [],
                ...statementName(text, values),
              })
            : scopedSeparately<R>(client, tenantId, readOnly, text, values),
        ),
    };
    try {
      return await fn(tx);
    } finally {
      await chain.close();
    }
  });
}

async function scopedSeparately<R extends QueryResultRow>(
  client: PoolClient,
  tenantId: string,
  readOnly: boolean,
  text: string,
  values?: unknown[],
) {
  try {
    await client.query(`BEGIN; ${scopeSql(tenantId, readOnly)}`);
    const result = await preparedQuery<R>(client, text, values);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  // 26000: a prepared statement the connection believed it had is gone (DEALLOCATE, a pooler in
  // front); its bookkeeping cannot be trusted any more, so the connection is dropped.
  return typeof code === 'string' && (code.startsWith('08') || code.startsWith('57P') || code === '26000');
}

/** Narrows a system transaction to one tenant for the rest of it (e.g. right after creating the tenant). */
export async function scopeToTenant(tx: SystemTx, tenantId: string): Promise<TenantTx> {
  await tx.query(`SELECT set_config('role', '${APP_ROLE}', true), set_config('app.tenant_id', $1, true)`, [
    tenantId,
  ]);
  return { tenantId, client: tx.client, pool: undefined, query: tx.query };
}

// Numbers are taken while the caller holds a connection of its pool for its transaction; taking
// them from that same pool could deadlock when every connection waits for one more. A small pool
// of their own, opened on first use beside each main pool, cannot.
const counterPools = new WeakMap<Pool, Pool>();
function counterPool(pool: Pool): Pool {
  let p = counterPools.get(pool);
  if (!p) {
    const options = (pool as unknown as { options: Record<string, unknown> }).options;
    p = createPool({
      connectionString: String(options['connectionString']),
      max: 4,
      applicationName: 'relaydesk-counters',
    });
    counterPools.set(pool, p);
    const end = pool.end.bind(pool);
    pool.end = (async () => {
      await p!.end().catch(() => undefined);
      return end();
    }) as typeof pool.end;
  }
  return p;
}

/**
 * Takes the tenant's next ticket number in a transaction of its own that commits at once without
 * waiting for its WAL flush, so the counter row is locked for microseconds instead of a whole ticket
 * creation plus an fsync (which capped creations per tenant at about one per flush). It stays safe:
 * WAL is flushed in order, so the ticket that uses the number, committed synchronously later, makes
 * the increment durable too; a crash can only lose numbers no committed ticket holds. A creation
 * that fails leaves a gap; numbers are unique and increasing, not gap-free.
 */
export function nextTicketNumber(pool: Pool, tenantId: string): Promise<number> {
  if (!UUID_RE.test(tenantId)) return Promise.reject(new Error('nextTicketNumber: not a tenant id'));
  let byTenant = numberRequests.get(pool);
  if (!byTenant) numberRequests.set(pool, (byTenant = new Map()));
  let state = byTenant.get(tenantId);
  if (!state) byTenant.set(tenantId, (state = { waiting: [], taking: false }));
  const s = state;
  return new Promise<number>((resolve, reject) => {
    s.waiting.push({ resolve, reject });
    if (!s.taking) void takeForWaiting(pool, tenantId, s, byTenant);
  });
}

// Requests for numbers of one tenant that arrive while a take is under way wait for it and are
// then served by one take together (UPDATE … + k): under load that is one counter round trip for
// several tickets instead of one each, and the row is locked once. In one process numbers are
// handed out in the order they were asked for.
interface NumberRequests {
  waiting: { resolve: (n: number) => void; reject: (err: unknown) => void }[];
  taking: boolean;
}
const numberRequests = new WeakMap<Pool, Map<string, NumberRequests>>();
const MAX_NUMBERS_PER_TAKE = 100;

async function takeForWaiting(
  pool: Pool,
  tenantId: string,
  state: NumberRequests,
  byTenant: Map<string, NumberRequests>,
): Promise<void> {
  state.taking = true;
  try {
    while (state.waiting.length > 0) {
      const batch = state.waiting.splice(0, MAX_NUMBERS_PER_TAKE);
      try {
        const last = await takeNumbers(pool, tenantId, batch.length);
        batch.forEach((w, i) => w.resolve(last - batch.length + 1 + i));
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
  } finally {
    state.taking = false;
    if (state.waiting.length === 0) byTenant.delete(tenantId);
  }
}

async function takeNumbers(pool: Pool, tenantId: string, count: number): Promise<number> {
  const t = tenantId.toLowerCase();
  return borrow(counterPool(pool), async (client) => {
    let n: number | undefined;
    if (await ensureScope(client)) {
      // BEGIN, the scope (with synchronous_commit off), the UPDATE and COMMIT: one round trip.
      try {
        const { rows } = await queryWithPrelude<{ last_number: number }>(
          client,
          [
            { name: SCOPE_STATEMENTS.begin.name, values: [] },
            { name: SCOPE_STATEMENTS.scopeAsyncCommit.name, values: [t] },
          ],
          {
            name: 'rd_take_ticket_numbers',
            text: 'UPDATE ticket_counters SET last_number = last_number + $2 WHERE tenant_id = $1 RETURNING last_number',
            values: [t, count],
          },
          [{ name: SCOPE_STATEMENTS.commit.name, values: [] }],
        );
        n = rows[0]?.last_number;
      } catch (err) {
        // The batch stopped at the failure, inside the transaction it opened.
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    } else {
      try {
        const results = (await client.query(
          `BEGIN; SET LOCAL synchronous_commit = off;
           SELECT set_config('role', '${APP_ROLE}', true), set_config('app.tenant_id', '${t}', true);
           UPDATE ticket_counters SET last_number = last_number + ${Number(count)} WHERE tenant_id = '${t}' RETURNING last_number;
           COMMIT`,
        )) as unknown as { rows: { last_number?: number }[] }[];
        n = results[3]?.rows[0]?.last_number;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    }
    if (n === undefined) throw new Error(`tenant ${tenantId} has no ticket counter`);
    return n;
  });
}
