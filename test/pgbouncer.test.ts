// Relaydesk's database layer through a real PgBouncer in transaction pooling mode: each transaction
// may run on another server connection, so nothing may rest on a session. Tenant scope is
// transaction-local, statements go unnamed, the time zone comes from the pooler, and the job queue
// polls instead of listening. The tests also show what goes wrong without that care.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createPerson } from '../src/modules/people/service.ts';
import { createTenant } from '../src/modules/tenants/service.ts';
import { createLogger } from '../src/platform/logging.ts';
import { createPool, type Pool } from '../src/platform/db/pool.ts';
import { APP_ROLE, withSystemRead, withTenant, withTenantRead } from '../src/platform/db/tx.ts';
import { JobQueue } from '../src/platform/queue/queue.ts';
import { defineJob, JobRegistry } from '../src/platform/queue/registry.ts';
import { type TestDatabase, useTestDatabase } from './db.ts';
import { type PgBouncer, startPgBouncer } from './pgbouncer.ts';

let db: TestDatabase;
let bouncer: PgBouncer;
let pooled: Pool;
let pooledUrl: string;

beforeAll(async () => {
  db = await useTestDatabase();
  // Few server connections for many clients: transactions of different clients take turns on them.
  bouncer = await startPgBouncer({
    serverUrl: db.url,
    users: [{ name: APP_ROLE, password: inject('appRolePassword') }],
    poolSize: 3,
  });
  pooledUrl = bouncer.through(db.url);
  pooled = createPool({ connectionString: pooledUrl, max: 24, transactionPooler: true });
});

afterAll(async () => {
  await pooled?.end();
  await bouncer?.stop();
});

describe('through PgBouncer in transaction pooling mode', () => {
  it('keeps every transaction in its own tenant while transactions share server connections', async () => {
    const tenants = await Promise.all(
      ['Pooled A', 'Pooled B', 'Pooled C'].map((name) => createTenant(pooled, { name })),
    );
    const ids = tenants.map((t) => t.tenant.id);
    const seen: { tenant: string; scope: string; own: number }[] = [];
    await Promise.all(
      Array.from({ length: 150 }, async (_, i) => {
        const tenant = ids[i % ids.length]!;
        await withTenant(pooled, tenant, (tx) =>
          createPerson(tx, { displayName: `Person ${i}`, kind: 'contact', actor: 'system:test' }),
        );
        // The scope this transaction runs under, and what it can read of its tenant's people.
        const { rows } = await withTenantRead(pooled, tenant, (tx) =>
          tx.query<{ scope: string; n: number }>(
            "SELECT current_setting('app.tenant_id', true) AS scope, count(*)::int AS n FROM people WHERE tenant_id = $1",
            [tenant],
          ),
        );
        seen.push({ tenant, scope: rows[0]!.scope, own: rows[0]!.n });
      }),
    );
    expect(seen).toHaveLength(150);
    expect(seen.filter((s) => s.scope !== s.tenant)).toEqual([]);
    expect(seen.every((s) => s.own > 0)).toBe(true);
    // Outside any transaction, no scope: none was left behind on a server connection.
    const leftovers = await Promise.all(
      Array.from({ length: 12 }, () =>
        pooled.query<{ scope: string | null }>("SELECT current_setting('app.tenant_id', true) AS scope"),
      ),
    );
    expect(leftovers.map((r) => r.rows[0]!.scope ?? '')).toEqual(Array(12).fill(''));
    const total = await db.admin.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM people WHERE display_name LIKE 'Person %'",
    );
    expect(total.rows[0]!.n).toBe(150);
  });

  it('reads timestamps as UTC: the pooler sets the server connections time zone', async () => {
    const { rows } = await withSystemRead(pooled, (sys) =>
      sys.query<{ tz: string; at: string }>("SELECT current_setting('TimeZone') AS tz, now() AS at"),
    );
    expect(rows[0]!.tz).toBe('UTC');
    expect(rows[0]!.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  });

  it('refuses a pool that asks for startup options, as a pooler in front does', async () => {
    const direct = createPool({ connectionString: pooledUrl, max: 1 });
    try {
      await expect(direct.query('SELECT 1')).rejects.toThrow(/unsupported startup parameter: options/);
    } finally {
      await direct.end();
    }
  });

  it('breaks named statements reused across transactions, which is why the pool sends none', async () => {
    const clients = await Promise.all(
      [0, 1].map(async () => {
        const c = new pg.Client({ connectionString: pooledUrl });
        await c.connect();
        return c;
      }),
    );
    const failures: string[] = [];
    try {
      for (let round = 0; round < 4; round++) {
        for (const c of clients) {
          await c
            .query({ name: 'rd_probe', text: 'SELECT $1::int AS n', values: [round] })
            .catch((err: { code?: string }) => failures.push(err.code ?? 'unknown'));
        }
      }
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    // Each client prepares once and then only binds: the second client's prepare meets the first's
    // statement on the same server connection (42P05), or a bind lands where it was never prepared (26000).
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.every((code) => code === '42P05' || code === '26000')).toBe(true);
  });

  it('runs the job queue by polling', async () => {
    const done: number[] = [];
    const job = defineJob<{ tenantId: string; n: number }>({
      name: 'test.pooled',
      leaseSeconds: 30,
      retry: { limit: 0, delaySeconds: 0, backoff: false },
      handler: async (p) => {
        done.push(p.n);
      },
    });
    const queue = new JobQueue({
      connectionString: pooledUrl,
      listen: false,
      logger: createLogger('silent'),
      registry: new JobRegistry().register(job),
      supervise: true,
      schedule: false,
      poolSize: 4,
    });
    await queue.start();
    try {
      await queue.ensureQueues();
      await queue.startWorkers();
      for (let n = 0; n < 20; n++) await queue.send(job, { tenantId: 't', n });
      await expect.poll(() => done.length).toBe(20);
      expect(new Set(done).size).toBe(20);
    } finally {
      await queue.stop({ graceful: false });
    }
  });
});
