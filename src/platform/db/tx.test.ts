import { beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase, useTestDatabase } from '../../../test/db.ts';
import { createTenant, deleteTenant } from '../../modules/tenants/service.ts';
import { createTicket } from '../../modules/tickets/service.ts';
import { loadMigrations, migrate } from './migrate.ts';
import { withTenant } from './tx.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await useTestDatabase();
});

describe('withTenant (row-level security)', () => {
  it('hides other tenants even from a query that forgets its tenant filter', async () => {
    const a = await createTenant(db.pool, { name: 'rls-a' });
    const b = await createTenant(db.pool, { name: 'rls-b' });
    await withTenant(db.pool, a.tenant.id, (tx) =>
      createTicket(tx, { subject: 'A only', requester: { email: 'x@a.example' }, actorId: a.adminPersonId }),
    );
    const seen = await withTenant(db.pool, b.tenant.id, async (tx) => {
      const tickets = await tx.query('SELECT subject FROM tickets');
      const people = await tx.query('SELECT id FROM people');
      const tenants = await tx.query('SELECT id FROM tenants');
      return { tickets: tickets.rows, people: people.rows.length, tenants: tenants.rows };
    });
    expect(seen.tickets).toEqual([]);
    expect(seen.people).toBe(1); // B's own admin agent
    expect(seen.tenants).toEqual([{ id: b.tenant.id }]);
  });

  it("refuses to write a row into another tenant, and to change another tenant's rows", async () => {
    const a = await createTenant(db.pool, { name: 'rls-c' });
    const b = await createTenant(db.pool, { name: 'rls-d' });
    await expect(
      withTenant(db.pool, b.tenant.id, (tx) =>
        tx.query(
          "INSERT INTO people (tenant_id, id, display_name, kind) VALUES ($1, gen_random_uuid(), 'intruder', 'agent')",
          [a.tenant.id],
        ),
      ),
    ).rejects.toThrow(/row-level security/);
    const updated = await withTenant(db.pool, b.tenant.id, (tx) =>
      tx.query("UPDATE people SET display_name = 'hijacked' WHERE tenant_id = $1", [a.tenant.id]),
    );
    expect(updated.rowCount).toBe(0);
  });

  it('runs as the non-superuser application role, and only inside the transaction', async () => {
    const a = await createTenant(db.pool, { name: 'rls-e' });
    const role = await withTenant(
      db.pool,
      a.tenant.id,
      async (tx) => (await tx.query('SELECT current_user AS u')).rows[0].u,
    );
    expect(role).toBe('relaydesk_app');
    const after = await db.pool.query(
      "SELECT current_user AS u, current_setting('app.tenant_id', true) AS t",
    );
    expect(after.rows[0].u).not.toBe('relaydesk_app');
    expect(after.rows[0].t ?? '').toBe('');
  });

  it('rolls back everything when the work fails', async () => {
    const a = await createTenant(db.pool, { name: 'rls-f' });
    await expect(
      withTenant(db.pool, a.tenant.id, async (tx) => {
        await createTicket(tx, {
          subject: 'doomed',
          requester: { email: 'doomed@example.com' },
          actorId: a.adminPersonId,
        });
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM tickets WHERE subject = 'doomed'");
    expect(rows[0].n).toBe(0);
  });
});

describe('tenant deletion', () => {
  it('removes every row of the tenant and nothing of another', async () => {
    const doomed = await createTenant(db.pool, { name: 'to-delete' });
    const kept = await createTenant(db.pool, { name: 'to-keep' });
    for (const t of [doomed, kept]) {
      await withTenant(db.pool, t.tenant.id, async (tx) => {
        const ticket = await createTicket(tx, {
          subject: 'x',
          requester: { email: 'someone@example.com' },
          message: { text: 'hello' },
          actorId: t.adminPersonId,
        });
        await tx.query("UPDATE tickets SET status = 'open' WHERE id = $1", [ticket.id]);
      });
    }
    const { rows: tables } = await db.pool.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'tenant_id'",
    );
    const count = async (tenantId: string) => {
      let total = 0;
      for (const { table_name } of tables) {
        const { rows } = await db.pool.query(
          `SELECT count(*)::int AS n FROM ${table_name} WHERE tenant_id = $1`,
          [tenantId],
        );
        total += rows[0].n;
      }
      return total;
    };
    expect(await count(doomed.tenant.id)).toBeGreaterThan(5);
    const keptBefore = await count(kept.tenant.id);
    await deleteTenant(db.pool, doomed.tenant.id);
    expect(await count(doomed.tenant.id)).toBe(0);
    expect((await db.pool.query('SELECT 1 FROM tenants WHERE id = $1', [doomed.tenant.id])).rowCount).toBe(0);
    expect(await count(kept.tenant.id)).toBe(keptBefore);
  });
});

describe('migrate', () => {
  it('is a no-op on a migrated database and safe when run concurrently', async () => {
    const results = await Promise.all([migrate(db.pool), migrate(db.pool), migrate(db.pool)]);
    expect(results).toEqual([[], [], []]);
    const { rows } = await db.pool.query('SELECT version FROM schema_migrations ORDER BY version');
    expect(rows.map((r) => r.version)).toEqual((await loadMigrations()).map((m) => m.version));
  });
});
