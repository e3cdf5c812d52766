// The ledger's monthly partitions: made ahead by the scheduler's job through the owner's function
// (the application role runs no DDL of its own), each with row-level security forced like every
// tenant table, and dropped whole once their month is older than the retention.
import { beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { withSystemTx } from '../../platform/db/tx.ts';
import { maintainPartitions } from './ledger.ts';

let t: TestApp;

const partitions = async () =>
  (
    await t.db.admin.query<{ name: string; forced: boolean; policies: number }>(
      `SELECT c.relname AS name, c.relforcerowsecurity AS forced,
              (SELECT count(*)::int FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'deliveries'::regclass ORDER BY c.relname`,
    )
  ).rows;

beforeAll(async () => {
  t = await useTestApp();
});

describe('delivery partitions', () => {
  it('are made months ahead by the application role, with RLS forced', async () => {
    const now = new Date(Date.UTC(2031, 6, 15));
    const made = await withSystemTx(t.db.pool, (sys) =>
      maintainPartitions(sys, { now, monthsAhead: 3, retentionDays: 100_000 }),
    );
    expect(made.created).toBe(4);
    const names = (await partitions()).map((p) => p.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'deliveries_2031_07',
        'deliveries_2031_08',
        'deliveries_2031_09',
        'deliveries_2031_10',
      ]),
    );
    for (const p of await partitions()) expect(p, p.name).toMatchObject({ forced: true, policies: 1 });
    // Again: nothing more to make.
    const again = await withSystemTx(t.db.pool, (sys) =>
      maintainPartitions(sys, { now, monthsAhead: 3, retentionDays: 100_000 }),
    );
    expect(again.created).toBe(0);
  });

  it('drop whole months older than the retention, with their rows and idempotency keys', async () => {
    const tenant = t.a.tenant.id;
    await withSystemTx(t.db.pool, (sys) =>
      maintainPartitions(sys, {
        now: new Date(Date.UTC(2025, 0, 10)),
        monthsAhead: 2,
        retentionDays: 100_000,
      }),
    );
    await t.db.admin.query(
      `INSERT INTO deliveries (tenant_id, id, created_at, channel, purpose, destination, attempt, status, idempotency_key)
       VALUES ($1, gen_random_uuid(), '2025-01-20T10:00:00Z', 'email', 'reply', 'x@y.test', 1, 'sent', 'k-old')`,
      [tenant],
    );
    await t.db.admin.query(
      `INSERT INTO delivery_keys (tenant_id, idempotency_key, delivery_id, state, created_at)
       VALUES ($1, 'k-old', gen_random_uuid(), 'done', '2025-01-20T10:00:00Z')`,
      [tenant],
    );
    const result = await withSystemTx(t.db.pool, (sys) =>
      maintainPartitions(sys, { now: new Date(), monthsAhead: 0, retentionDays: 180 }),
    );
    expect(result.dropped).toBeGreaterThanOrEqual(3);
    const names = (await partitions()).map((p) => p.name);
    expect(names.filter((n) => n.startsWith('deliveries_2025_0'))).toEqual([]);
    expect(result.keysDeleted).toBeGreaterThanOrEqual(1);
    const { rows } = await t.db.admin.query("SELECT 1 FROM deliveries WHERE idempotency_key = 'k-old'");
    expect(rows).toEqual([]);
  });

  it('never drop this month or the last, whatever the function is asked', async () => {
    const before = (await partitions()).map((p) => p.name);
    const month = (d: Date) =>
      `deliveries_${d.getUTCFullYear()}_${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
    const now = new Date();
    const last = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 15));
    expect(before).toEqual(expect.arrayContaining([month(now), month(last)]));
    await withSystemTx(t.db.pool, (sys) => sys.query("SELECT drop_delivery_partitions('infinity')"));
    expect((await partitions()).map((p) => p.name)).toEqual(
      expect.arrayContaining([month(now), month(last)]),
    );
  });
});
