// Transactions. Request and job code touches tenant data only through `withTenant` (or its
// statement-at-a-time forms below): it pins the tenant for the row-level security policies, which
// PostgreSQL forces on every tenant table for the role Relaydesk logs in as (migration 0016).
// Platform work that spans tenants (token lookup, tenant administration, the SLA scheduler's claim)
// says so by using `withSystemTx` or `withSystemRead`. A statement in neither scope sees nothing.
//
// Everything here is pg's documented API: pool.connect / client.query / client.release, and the
// pool's `pipeline` option (pool.ts), which lets BEGIN and the scope go out with the first statement
// instead of costing a round trip each. Statements of one transaction run in the order they were
// issued, so COMMIT or ROLLBACK, issued last, always runs after every statement of the work.
import { createHash } from 'node:crypto';
import {
  type Pool,
  type PoolClient,
  type Queryable,
  type QueryResultRow,
  usesNamedStatements,
} from './pool.ts';
import type pg from 'pg';

/** The role Relaydesk's processes log in as (owning no table of tenants; see migration 0016). */
export const APP_ROLE = 'relaydesk_app';

/** A transaction bound to one tenant. Queries still name `tenant_id` explicitly (index use, Citus routing). */
export interface TenantTx extends Queryable {
  readonly tenantId: string;
}

/** A transaction without tenant scope, for platform work (auth lookup, tenant admin, migrations). */
export type SystemTx = Queryable;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function assertTenantId(tenantId: string): void {
  if (typeof tenantId !== 'string' || !UUID_RE.test(tenantId))
    throw new Error(`"${String(tenantId).slice(0, 40)}" is not a tenant id`);
}

// Both scopes are transaction-local settings (the third argument): they end with COMMIT or
// ROLLBACK, so a pooled connection never carries one borrower's scope into the next one's work.
const SCOPE = "SELECT set_config('app.tenant_id', $1, true)";
const SYSTEM_SCOPE = "SELECT set_config('app.system', 'on', true)";

// Parameterised statements run as named (prepared) statements: each connection parses and plans a
// statement once instead of on every request, which is most of PostgreSQL's work for the short
// queries of the API. The SQL texts are the code's own, a finite set; the cap is a guard. Behind a
// transaction pooler (pool.ts) every statement is unnamed: the next transaction may run elsewhere.
const statementNames = new Map<string, string>();
const MAX_NAMED_STATEMENTS = 5_000;

/**
 * Put first in a statement that must be planned with its values every time, never prepared: after
 * five runs of a prepared statement PostgreSQL may keep one generic plan for any values, chosen for
 * an average tenant, and where the best plan depends on the tenant's size or on the words searched
 * (a large tenant's tickets sorted in full instead of read in order), that plan costs many times more
 * than planning does.
 */
export const PLANNED_EACH_TIME = '/* planned each time */ ';

function statement(named: boolean, text: string, values?: unknown[]): pg.QueryConfig {
  if (!values || values.length === 0) return { text };
  if (!named || text.startsWith(PLANNED_EACH_TIME)) return { text, values };
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MAX_NAMED_STATEMENTS) {
    name = `rd_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    statementNames.set(text, name);
  }
  return name === undefined ? { text, values } : { name, text, values };
}

function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  // 26000: a prepared statement the connection believed it had is gone (DEALLOCATE, a pooler in
  // front); its bookkeeping cannot be trusted any more, so the connection is dropped.
  return typeof code === 'string' && (code.startsWith('08') || code.startsWith('57P') || code === '26000');
}

/**
 * Lends `fn` a connection of the pool. It goes back to the pool afterwards unless it broke or is
 * still inside a transaction block (then it is closed: no borrower may inherit another's block).
 */
async function borrow<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  // The pool listens for errors only on idle clients (pg's documentation: a checked-out client's
  // errors are the borrower's). Unheard, a connection lost in the middle of the work would be an
  // uncaught exception; the work's statements fail on their own, and the client is not reused.
  const onError = () => {
    broken = true;
  };
  client.on('error', onError);
  try {
    return await fn(client);
  } catch (err) {
    broken ||= isConnectionError(err);
    throw err;
  } finally {
    client.off('error', onError);
    if (client.getTransactionStatus() !== 'I') broken = true;
    client.release(broken);
  }
}

/**
 * The promise of a statement, handed to the caller, who may issue several before awaiting the
 * first: should one fail, the others fail too (the transaction is aborted), and a rejection nobody
 * awaits yet must not count as unhandled. The caller still sees every rejection it awaits, and
 * COMMIT still reports the aborted transaction.
 */
function handedOver<R>(promise: Promise<R>): Promise<R> {
  promise.catch(() => undefined);
  return promise;
}

/** A statement sent after the work ended would run outside it (unscoped, or in the next borrower's). */
const ended = (what: string) => Promise.reject(new Error(`${what}: the transaction has ended`));

/** Raised when COMMIT found the transaction aborted by a statement whose failure the work swallowed. */
export class TransactionAborted extends Error {
  constructor() {
    super('the transaction was rolled back: one of its statements failed');
    this.name = 'TransactionAborted';
  }
}

async function commit(client: PoolClient): Promise<void> {
  // COMMIT of an aborted transaction succeeds as a ROLLBACK; the work did not happen.
  const result = await client.query('COMMIT');
  if (result.command === 'ROLLBACK') throw new TransactionAborted();
}

/**
 * Platform work across tenants in one transaction: every tenant's rows are visible and writable
 * (BEGIN and the system scope go out with the first statement). For what spans tenants by design.
 */
export function withSystemTx<T>(pool: Pool, fn: (tx: SystemTx) => Promise<T>): Promise<T> {
  return transaction(
    pool,
    (client) => [client.query('BEGIN'), client.query(SYSTEM_SCOPE)],
    fn,
    'withSystemTx',
  );
}

/**
 * Reads across tenants, each statement a read-only transaction of its own in the system scope
 * (BEGIN, the scope, the statement and COMMIT sent together): the token lookup of every request.
 */
export function withSystemRead<T>(pool: Pool, fn: (tx: SystemTx) => Promise<T>): Promise<T> {
  return statementAtATime(
    pool,
    (client) => [client.query('BEGIN READ ONLY'), client.query(SYSTEM_SCOPE)],
    fn,
  );
}

/**
 * Runs `fn` in one transaction scoped to the tenant. BEGIN and the scope go out with the first
 * statement (one round trip); a transaction that runs no statement sends nothing. A statement only
 * gives its result if BEGIN and the scope succeeded, so nothing ever reads or writes unscoped.
 */
export function withTenant<T>(pool: Pool, tenantId: string, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
  assertTenantId(tenantId);
  const tenant = tenantId.toLowerCase();
  return transaction(
    pool,
    (client) => [client.query('BEGIN'), client.query(SCOPE, [tenant])],
    (tx) => fn({ tenantId, query: tx.query }),
    'withTenant',
  );
}

async function transaction<T>(
  pool: Pool,
  open: (client: PoolClient) => Promise<unknown>[],
  fn: (tx: Queryable) => Promise<T>,
  what: string,
): Promise<T> {
  const named = usesNamedStatements(pool);
  return borrow(pool, async (client) => {
    let opening: Promise<unknown> | undefined;
    let running = true;
    // The statement that aborted the transaction: the work may await a later statement first, which
    // failed only because of it (25P02), and the cause is what the caller must hear of.
    let firstFailure: unknown;
    const tx: Queryable = {
      query: <R extends QueryResultRow>(text: string, values?: unknown[]) => {
        if (!running) return ended(what);
        opening ??= Promise.all(open(client));
        const result = client.query<R>(statement(named, text, values));
        result.catch((err: unknown) => {
          firstFailure ??= err;
        });
        return handedOver(Promise.all([opening, result]).then(([, r]) => r));
      },
    };
    let result: T;
    try {
      result = await fn(tx);
    } catch (err) {
      running = false;
      if (opening) await client.query('ROLLBACK').catch(() => undefined);
      const aborted = (err as { code?: unknown } | null)?.code === '25P02';
      throw aborted && firstFailure !== undefined ? firstFailure : err;
    }
    running = false;
    if (opening) await commit(client);
    return result;
  });
}

/**
 * Read-only work scoped to the tenant, each statement in a transaction of its own: BEGIN, the scope,
 * the statement and COMMIT go out together, one round trip per statement. Under READ COMMITTED a
 * longer transaction would give each statement its own snapshot anyway, so a reader sees nothing
 * different; a write fails (read-only transaction), and row locks make no sense here.
 */
export function withTenantRead<T>(
  pool: Pool,
  tenantId: string,
  fn: (tx: TenantTx) => Promise<T>,
): Promise<T> {
  return tenantStatementAtATime(pool, tenantId, fn, 'BEGIN READ ONLY');
}

/**
 * Like withTenantRead, but writes are allowed and each statement commits on its own. Only for work
 * whose one write is a single statement (atomic by itself), possibly after reads: nothing a later
 * statement does can undo an earlier one. Everything else belongs in withTenant.
 */
export function withTenantAutocommit<T>(
  pool: Pool,
  tenantId: string,
  fn: (tx: TenantTx) => Promise<T>,
): Promise<T> {
  return tenantStatementAtATime(pool, tenantId, fn, 'BEGIN');
}

function tenantStatementAtATime<T>(
  pool: Pool,
  tenantId: string,
  fn: (tx: TenantTx) => Promise<T>,
  begin: string,
): Promise<T> {
  assertTenantId(tenantId);
  const tenant = tenantId.toLowerCase();
  return statementAtATime(
    pool,
    (client) => [client.query(begin), client.query(SCOPE, [tenant])],
    (tx) => fn({ tenantId, query: tx.query }),
  );
}

function statementAtATime<T>(
  pool: Pool,
  open: (client: PoolClient) => Promise<unknown>[],
  fn: (tx: Queryable) => Promise<T>,
): Promise<T> {
  const named = usesNamedStatements(pool);
  return borrow(pool, async (client) => {
    let running = true;
    let last: Promise<unknown> = Promise.resolve();
    const tx: Queryable = {
      query: <R extends QueryResultRow>(text: string, values?: unknown[]) => {
        if (!running) return ended('a statement-at-a-time scope');
        const sent = open(client);
        const result = client.query<R>(statement(named, text, values));
        const done = client.query('COMMIT');
        const all = Promise.all([...sent, result, done]).then(async ([, , r, c]) => {
          if ((c as pg.QueryResult).command === 'ROLLBACK') throw new TransactionAborted();
          return r as pg.QueryResult<R>;
        });
        last = all.catch(() => undefined);
        return handedOver(all);
      },
    };
    try {
      return await fn(tx);
    } finally {
      running = false;
      // The connection goes back only once every statement sent has been answered.
      await last;
    }
  });
}

/**
 * Narrows a system transaction to one tenant for the rest of it (e.g. right after creating the
 * tenant, so that its first person and token are written in the same transaction).
 */
export async function scopeToTenant(tx: SystemTx, tenantId: string): Promise<TenantTx> {
  assertTenantId(tenantId);
  await tx.query("SELECT set_config('app.system', 'off', true), set_config('app.tenant_id', $1, true)", [
    tenantId.toLowerCase(),
  ]);
  return { tenantId, query: tx.query };
}
