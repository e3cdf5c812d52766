import { beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase, useTestDatabase } from '../../../test/db.ts';
import { createTenant, deleteTenant } from '../../modules/tenants/service.ts';
import { createTicket } from '../../modules/tickets/create.ts';
import { loadMigrations, migrate } from './migrate.ts';
import { applicationRoleProblems } from './database.ts';
import { createPool, type Pool } from './pool.ts';
import {
  APP_ROLE,
  scopeToTenant,
  TransactionAborted,
  withSystemRead,
  withSystemTx,
  withTenant,
  withTenantAutocommit,
  withTenantRead,
} from './tx.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await useTestDatabase();
});

/** The scope settings a connection of the pool carries outside any transaction ('' when none). */
async function scopeLeft(pool: Pool): Promise<{ t: string; s: string }> {
  const { rows } = await pool.query(
    "SELECT coalesce(current_setting('app.tenant_id', true), '') AS t, coalesce(current_setting('app.system', true), '') AS s",
  );
  return rows[0];
}

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

  it('pins the tenant only inside the transaction', async () => {
    const a = await createTenant(db.pool, { name: 'rls-e' });
    const inside = await withTenant(
      db.pool,
      a.tenant.id,
      async (tx) => (await tx.query("SELECT current_setting('app.tenant_id') AS t")).rows[0].t,
    );
    expect(inside).toBe(a.tenant.id);
    expect(await scopeLeft(db.pool)).toEqual({ t: '', s: '' });
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
    const { rows } = await db.admin.query("SELECT count(*)::int AS n FROM tickets WHERE subject = 'doomed'");
    expect(rows[0].n).toBe(0);
  });
});

describe('tenant transactions (BEGIN and the scope pipelined with the first statement)', () => {
  it('scopes a transaction whose first statement is parameterised, and commits all of it', async () => {
    const a = await createTenant(db.pool, { name: 'batch-a' });
    const seen = await withTenant(db.pool, a.tenant.id, async (tx) => {
      const first = await tx.query(
        "SELECT current_user AS u, current_setting('app.tenant_id') AS t, $1::int AS n, txid_current_if_assigned() AS x",
        [7],
      );
      await tx.query("UPDATE tenants SET name = 'batch-a2' WHERE id = $1", [a.tenant.id]);
      const second = await tx.query('SELECT txid_current() AS x, now() = statement_timestamp() AS fresh');
      return { first: first.rows[0], second: second.rows[0] };
    });
    expect(seen.first).toMatchObject({ u: 'relaydesk_app', t: a.tenant.id, n: 7 });
    // The statements after the first ran inside the same transaction block (now() is its start).
    expect(seen.second.fresh).toBe(false);
    expect((await db.admin.query('SELECT name FROM tenants WHERE id = $1', [a.tenant.id])).rows[0].name).toBe(
      'batch-a2',
    );
  });

  it('rolls back when the first statement fails, and leaves the connection usable', async () => {
    const a = await createTenant(db.pool, { name: 'batch-b' });
    await expect(
      withTenant(db.pool, a.tenant.id, async (tx) => {
        await tx.query('SELECT 1 / $1::int', [0]);
      }),
    ).rejects.toThrow(/division by zero/);
    // A statement that fails to parse on its first use must not leave pg believing it was prepared.
    for (let i = 0; i < 3; i++) {
      await expect(
        withTenant(db.pool, a.tenant.id, (tx) =>
          tx.query('SELECT no_such_column FROM tenants WHERE id = $1', [a.tenant.id]),
        ),
      ).rejects.toThrow(/no_such_column/);
    }
    const n = await withTenant(
      db.pool,
      a.tenant.id,
      async (tx) => (await tx.query('SELECT $1::int AS n', [5])).rows[0].n,
    );
    expect(n).toBe(5);
    expect(await scopeLeft(db.pool)).toEqual({ t: '', s: '' });
  });

  it('sends nothing for a transaction that runs no statement', async () => {
    const a = await createTenant(db.pool, { name: 'batch-c' });
    expect(await withTenant(db.pool, a.tenant.id, async () => 42)).toBe(42);
  });

  it('withTenantRead scopes every statement, refuses writes and leaves no scope behind', async () => {
    const a = await createTenant(db.pool, { name: 'read-a' });
    const b = await createTenant(db.pool, { name: 'read-b' });
    await withTenant(db.pool, a.tenant.id, (tx) =>
      createTicket(tx, { subject: 'read A', requester: { email: 'r@a.example' }, actorId: a.adminPersonId }),
    );
    const seen = await withTenantRead(db.pool, b.tenant.id, async (tx) => {
      const tickets = await tx.query('SELECT subject FROM tickets');
      const who = await tx.query(
        "SELECT current_user AS u, current_setting('app.tenant_id') AS t, $1::int AS n",
        [1],
      );
      return { tickets: tickets.rows, who: who.rows[0] };
    });
    expect(seen.tickets).toEqual([]);
    expect(seen.who).toMatchObject({ u: 'relaydesk_app', t: b.tenant.id });
    const own = await withTenantRead(db.pool, a.tenant.id, (tx) =>
      tx.query('SELECT subject FROM tickets WHERE tenant_id = $1', [a.tenant.id]),
    );
    expect(own.rows).toEqual([{ subject: 'read A' }]);
    await expect(
      withTenantRead(db.pool, a.tenant.id, (tx) =>
        tx.query("UPDATE tenants SET name = 'nope' WHERE id = $1", [a.tenant.id]),
      ),
    ).rejects.toThrow(/read-only transaction/);
    const after = await db.pool.query("SELECT current_setting('transaction_read_only') AS ro");
    expect(after.rows[0]).toMatchObject({ ro: 'off' });
    expect(await scopeLeft(db.pool)).toEqual({ t: '', s: '' });
  });
});

describe('statements the caller did not wait for', () => {
  // One connection, so that the next borrower gets the very connection the work ran on.
  const onePool = () => createPool({ connectionString: db.url, max: 1 });
  const after = async (pool: ReturnType<typeof createPool>) =>
    (
      await pool.query(
        "SELECT coalesce(current_setting('app.tenant_id', true), '') AS t, coalesce(current_setting('app.system', true), '') AS s, current_setting('transaction_read_only') AS ro",
      )
    ).rows[0];

  it.each([
    ['a fresh connection', false],
    ['a connection already used', true],
  ])(
    'withTenant on %s: none runs after the rollback, and the connection comes back clean',
    async (_name, warmFirst) => {
      const pool = onePool();
      try {
        const a = await createTenant(db.pool, { name: `late-${warmFirst ? 'warm' : 'fresh'}` });
        if (warmFirst) await withTenant(pool, a.tenant.id, (tx) => tx.query('SELECT $1::int', [1]));
        const late: Promise<unknown>[] = [];
        await expect(
          withTenant(pool, a.tenant.id, async (tx) => {
            late.push(tx.query("UPDATE tenants SET name = 'late-1' WHERE id = $1", [a.tenant.id]));
            late.push(tx.query("UPDATE tenants SET name = 'late-2' WHERE id = $1", [a.tenant.id]));
            throw new Error('gave up early');
          }),
        ).rejects.toThrow('gave up early');
        await Promise.allSettled(late);
        const { rows } = await db.admin.query('SELECT name FROM tenants WHERE id = $1', [a.tenant.id]);
        expect(rows[0].name).toBe(`late-${warmFirst ? 'warm' : 'fresh'}`);
        const state = await after(pool);
        expect(state).toMatchObject({ t: '', s: '' });
        // And a statement issued after the work ended is refused, not run.
        let kept: { query: (t: string, v?: unknown[]) => Promise<unknown> } | undefined;
        await withTenant(pool, a.tenant.id, async (tx) => {
          kept = tx;
        });
        await expect(
          kept!.query("UPDATE tenants SET name = 'too-late' WHERE id = $1", [a.tenant.id]),
        ).rejects.toThrow(/has ended/);
      } finally {
        await pool.end();
      }
    },
  );

  it('withTenantRead and withTenantAutocommit wait for their statements and refuse later ones', async () => {
    const pool = onePool();
    try {
      const a = await createTenant(db.pool, { name: 'late-auto' });
      const late: Promise<unknown>[] = [];
      await expect(
        withTenantAutocommit(pool, a.tenant.id, async (tx) => {
          late.push(tx.query("UPDATE tenants SET name = 'auto-1' WHERE id = $1", [a.tenant.id]));
          throw new Error('stop');
        }),
      ).rejects.toThrow('stop');
      await Promise.allSettled(late);
      // Each statement commits on its own here: the one issued before the failure ran, in scope.
      const { rows } = await db.admin.query('SELECT name FROM tenants WHERE id = $1', [a.tenant.id]);
      expect(rows[0].name).toBe('auto-1');
      expect(await after(pool)).toMatchObject({ t: '', ro: 'off' });
      let kept: { query: (t: string, v?: unknown[]) => Promise<unknown> } | undefined;
      await withTenantRead(pool, a.tenant.id, async (tx) => {
        kept = tx;
      });
      await expect(kept!.query('SELECT 1')).rejects.toThrow(/has ended/);
    } finally {
      await pool.end();
    }
  });
});

describe('withTenantAutocommit', () => {
  it('scopes each statement and commits each on its own', async () => {
    const a = await createTenant(db.pool, { name: 'auto-a' });
    const b = await createTenant(db.pool, { name: 'auto-b' });
    await expect(
      withTenantAutocommit(db.pool, b.tenant.id, async (tx) => {
        const who = await tx.query("SELECT current_user AS u, current_setting('app.tenant_id') AS t");
        expect(who.rows[0]).toEqual({ u: 'relaydesk_app', t: b.tenant.id });
        await tx.query("UPDATE tenants SET name = 'auto-b2' WHERE id = $1", [b.tenant.id]);
        // Row-level security still applies: another tenant's row is invisible to the write.
        const other = await tx.query("UPDATE tenants SET name = 'hijacked' WHERE id = $1", [a.tenant.id]);
        expect(other.rowCount).toBe(0);
        await tx.query('SELECT 1 / $1::int', [0]);
      }),
    ).rejects.toThrow(/division by zero/);
    // The first write committed by itself; the failure after it undid nothing.
    const names = await db.admin.query('SELECT id, name FROM tenants WHERE id = ANY($1) ORDER BY name', [
      [a.tenant.id, b.tenant.id],
    ]);
    expect(names.rows.map((r) => r.name)).toEqual(['auto-a', 'auto-b2']);
  });
});

describe('a connection lost in the middle of the work', () => {
  it('fails the work, is not reused, and crashes nothing', async () => {
    const pool = createPool({ connectionString: db.url, max: 1 });
    try {
      const a = await createTenant(db.pool, { name: 'lost-connection' });
      await expect(
        withTenant(pool, a.tenant.id, async (tx) => {
          const { rows } = await tx.query<{ pid: number }>(
            'SELECT pg_backend_pid() AS pid WHERE $1::int = 1',
            [1],
          );
          await db.admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
          await tx.query('SELECT pg_sleep(0.05), $1::int', [2]);
        }),
      ).rejects.toThrow();
      // The pool gives a fresh connection, and the work on it succeeds.
      const n = await withTenant(
        pool,
        a.tenant.id,
        async (tx) => (await tx.query('SELECT $1::int AS n', [3])).rows[0].n,
      );
      expect(n).toBe(3);
    } finally {
      await pool.end();
    }
  });
});

describe('statements issued before the first is awaited', () => {
  it('leave no unhandled rejection when the first fails, and the work fails', async () => {
    const a = await createTenant(db.pool, { name: 'issued-together' });
    await expect(
      withTenant(db.pool, a.tenant.id, async (tx) => {
        const first = tx.query('SELECT 1 / $1::int', [0]);
        tx.query('SELECT $1::int', [1]); // never awaited: it fails with the aborted transaction
        await first;
      }),
    ).rejects.toThrow(/division by zero/);
  });

  it('report the statement that aborted the transaction, also when a later one is awaited first', async () => {
    const a = await createTenant(db.pool, { name: 'awaited-out-of-order' });
    await expect(
      withTenant(db.pool, a.tenant.id, async (tx) => {
        const first = tx.query('SELECT 1 / $1::int', [0]);
        const second = tx.query('SELECT $1::int', [1]); // fails only because the first did (25P02)
        await Promise.all([second, first]);
      }),
    ).rejects.toThrow(/division by zero/);
    await expect(
      withTenant(db.pool, a.tenant.id, async (tx) => {
        tx.query('SELECT 1 / $1::int', [0]);
        await tx.query('SELECT $1::int', [1]);
      }),
    ).rejects.toThrow(/division by zero/);
  });
});

describe('a statement whose failure the work swallowed', () => {
  it('makes the transaction fail instead of committing nothing silently', async () => {
    const a = await createTenant(db.pool, { name: 'swallowed' });
    await expect(
      withTenant(db.pool, a.tenant.id, async (tx) => {
        await tx.query("UPDATE tenants SET name = 'swallowed-2' WHERE id = $1", [a.tenant.id]);
        await tx.query('SELECT 1 / $1::int', [0]).catch(() => undefined);
        return 'done';
      }),
    ).rejects.toBeInstanceOf(TransactionAborted);
    const { rows } = await db.admin.query('SELECT name FROM tenants WHERE id = $1', [a.tenant.id]);
    expect(rows[0].name).toBe('swallowed');
  });
});

describe('ticket numbers', () => {
  const create = (tenantId: string, actorId: string, subject: string) =>
    withTenant(db.pool, tenantId, (tx) =>
      createTicket(tx, { subject, requester: { email: 'n@example.com' }, actorId }),
    );

  it("are unique and without gaps under concurrency, one tenant's independent of another's", async () => {
    const a = await createTenant(db.pool, { name: 'numbers-a' });
    const b = await createTenant(db.pool, { name: 'numbers-b' });
    await create(a.tenant.id, a.adminPersonId, 'first');
    const made = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        i % 2 === 0
          ? create(a.tenant.id, a.adminPersonId, `a${i}`)
          : create(b.tenant.id, b.adminPersonId, `b${i}`),
      ),
    );
    const numbers = (prefix: string) =>
      made
        .filter((t) => t.subject.startsWith(prefix))
        .map((t) => Number(t.number.slice(2)))
        .sort((x, y) => x - y);
    expect(numbers('a')).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    expect(numbers('b')).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('are not used up by a creation that rolls back or is refused', async () => {
    const a = await createTenant(db.pool, { name: 'numbers-c' });
    expect((await create(a.tenant.id, a.adminPersonId, 'one')).number).toBe('T-1');
    await expect(
      withTenant(db.pool, a.tenant.id, async (tx) => {
        await createTicket(tx, {
          subject: 'two',
          requester: { email: 'n@example.com' },
          actorId: a.adminPersonId,
        });
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    await expect(
      withTenant(db.pool, a.tenant.id, (tx) =>
        createTicket(tx, {
          subject: 'three',
          requester: { personId: '00000000-0000-4000-8000-000000000001' },
          actorId: a.adminPersonId,
        }),
      ),
    ).rejects.toThrow(/no such person/);
    expect((await create(a.tenant.id, a.adminPersonId, 'four')).number).toBe('T-2');
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
        await tx.query("UPDATE tickets SET status = 'open' WHERE tenant_id = $1 AND id = $2", [
          t.tenant.id,
          ticket.id,
        ]);
      });
    }
    const { rows: tables } = await db.pool.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'tenant_id'",
    );
    const count = async (tenantId: string) => {
      let total = 0;
      for (const { table_name } of tables) {
        const { rows } = await db.admin.query(
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
    expect((await db.admin.query('SELECT 1 FROM tenants WHERE id = $1', [doomed.tenant.id])).rowCount).toBe(
      0,
    );
    expect(await count(kept.tenant.id)).toBe(keptBefore);
  });

  it('waits for a ticket being created meanwhile, and removes it too', async () => {
    const doomed = await createTenant(db.pool, { name: 'to-delete-busy' });
    const input = {
      subject: 'created during the deletion',
      requester: { email: 'busy@example.com' },
      message: { text: 'hello' },
      actorId: doomed.adminPersonId,
    };
    await withTenant(db.pool, doomed.tenant.id, (tx) => createTicket(tx, { ...input, subject: 'first' }));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    // A ticket for a known requester, its transaction still open while the deletion starts.
    const creating = withTenant(db.pool, doomed.tenant.id, async (tx) => {
      await createTicket(tx, input);
      await held;
    });
    // The creation holds its locks (its statement ran) before the deletion starts, and the deletion
    // waits for them before the creation is let go: both seen in pg_stat_activity, not guessed by time.
    const waitingOnLock = async () =>
      (
        await db.admin.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
      ).rows[0].n as number;
    await expect
      .poll(
        async () =>
          (
            await db.admin.query(
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'",
            )
          ).rows[0].n,
      )
      .toBeGreaterThan(0);
    const deleting = deleteTenant(db.pool, doomed.tenant.id);
    await expect.poll(waitingOnLock).toBeGreaterThan(0);
    release();
    await creating;
    await deleting;
    const left = await db.admin.query('SELECT count(*)::int AS n FROM tickets WHERE tenant_id = $1', [
      doomed.tenant.id,
    ]);
    expect(left.rows[0].n).toBe(0);
  });
});

describe('migrate', () => {
  it('is a no-op on a migrated database and safe when run concurrently', async () => {
    const results = await Promise.all([migrate(db.admin), migrate(db.admin), migrate(db.admin)]);
    expect(results).toEqual([[], [], []]);
    const { rows } = await db.admin.query('SELECT version FROM schema_migrations ORDER BY version');
    expect(rows.map((r) => r.version)).toEqual((await loadMigrations()).map((m) => m.version));
  });
});

describe('the application role (least privilege, read from the catalogue)', () => {
  it('is what the code under test logs in as', async () => {
    const { rows } = await db.pool.query('SELECT current_user AS u, session_user AS s');
    expect(rows[0]).toEqual({ u: APP_ROLE, s: APP_ROLE });
  });

  it('is no superuser, has no BYPASSRLS, and is no member of a role that is or has', async () => {
    const { rows } = await db.admin.query(
      `SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb,
              (SELECT count(*)::int FROM pg_roles m
                WHERE m.oid <> r.oid AND (m.rolsuper OR m.rolbypassrls) AND pg_has_role(r.oid, m.oid, 'MEMBER')) AS via
         FROM pg_roles r WHERE r.rolname = $1`,
      [APP_ROLE],
    );
    expect(rows[0]).toEqual({
      rolsuper: false,
      rolbypassrls: false,
      rolcreaterole: false,
      rolcreatedb: false,
      via: 0,
    });
    expect(await applicationRoleProblems(db.pool)).toEqual([]);
  });

  it('owns no table of the public schema, and can be no member of their owner', async () => {
    const { rows } = await db.admin.query(
      `SELECT c.relname, o.rolname AS owner FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles o ON o.oid = c.relowner
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND pg_has_role((SELECT oid FROM pg_roles WHERE rolname = $1), c.relowner, 'MEMBER')`,
      [APP_ROLE],
    );
    expect(rows).toEqual([]);
  });

  it('finds row-level security enabled and forced on every table with tenant_id, and on tenants', async () => {
    const { rows } = await db.admin.query<{
      relname: string;
      enabled: boolean;
      forced: boolean;
      policies: number;
    }>(
      `SELECT c.relname, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
              (SELECT count(*)::int FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relkind IN ('r', 'p')
          AND (c.relname = 'tenants' OR EXISTS (SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
        ORDER BY c.relname`,
    );
    expect(rows.length).toBeGreaterThan(20);
    expect(rows.filter((r) => !r.enabled || !r.forced || r.policies === 0)).toEqual([]);
  });

  it('has no privilege on a table beyond reading and writing rows', async () => {
    const { rows } = await db.admin.query(
      `SELECT c.relname, p.privilege_type FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
              LATERAL unnest(ARRAY['TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p(privilege_type)
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
          AND has_table_privilege($1, c.oid, p.privilege_type)`,
      [APP_ROLE],
    );
    expect(rows).toEqual([]);
    const create = await db.admin.query(
      "SELECT has_schema_privilege($1, 'public', 'CREATE') AS c, has_database_privilege($1, current_database(), 'CREATE') AS d",
      [APP_ROLE],
    );
    expect(create.rows[0]).toEqual({ c: false, d: false });
  });

  it('cannot change the migrations, rewrite identity events, or turn row-level security off', async () => {
    await expect(db.pool.query('DELETE FROM schema_migrations')).rejects.toThrow(/permission denied/);
    await expect(db.pool.query('ALTER TABLE tickets DISABLE ROW LEVEL SECURITY')).rejects.toThrow(
      /must be owner/,
    );
    await expect(
      withSystemTx(db.pool, (sys) => sys.query('UPDATE identity_events SET tenant_id = tenant_id')),
    ).rejects.toThrow(/permission denied/);
    await expect(db.pool.query('RESET ROLE; SET ROLE postgres')).rejects.toThrow(/permission denied/);
  });
});

describe('scopes', () => {
  it('a statement in no scope sees no tenant row and writes none', async () => {
    const a = await createTenant(db.pool, { name: 'scope-none' });
    const seen = await db.pool.query(
      'SELECT (SELECT count(*)::int FROM tenants) AS t, (SELECT count(*)::int FROM people) AS p',
    );
    expect(seen.rows[0]).toEqual({ t: 0, p: 0 });
    await expect(
      db.pool.query(
        "INSERT INTO people (tenant_id, id, display_name, kind) VALUES ($1, gen_random_uuid(), 'x', 'agent')",
        [a.tenant.id],
      ),
    ).rejects.toThrow(/row-level security/);
    // Not even a session-level tenant setting outside our helpers is enough to see across tenants.
    const b = await createTenant(db.pool, { name: 'scope-none-b' });
    const client = await db.pool.connect();
    try {
      await client.query("SELECT set_config('app.tenant_id', $1, false)", [b.tenant.id]);
      const { rows } = await client.query('SELECT id FROM tenants');
      expect(rows).toEqual([{ id: b.tenant.id }]);
    } finally {
      await client.query('RESET app.tenant_id');
      client.release();
    }
  });

  it('withSystemTx and withSystemRead see every tenant, and leave no scope behind', async () => {
    const a = await createTenant(db.pool, { name: 'scope-sys-a' });
    const b = await createTenant(db.pool, { name: 'scope-sys-b' });
    const ids = [a.tenant.id, b.tenant.id];
    const inTx = await withSystemTx(db.pool, (sys) =>
      sys.query('SELECT id FROM tenants WHERE id = ANY($1) ORDER BY name', [ids]),
    );
    expect(inTx.rows.map((r) => r.id)).toEqual(ids);
    const read = await withSystemRead(db.pool, (sys) =>
      sys.query('SELECT count(*)::int AS n FROM tenants WHERE id = ANY($1)', [ids]),
    );
    expect(read.rows[0].n).toBe(2);
    await expect(
      withSystemRead(db.pool, (sys) =>
        sys.query("UPDATE tenants SET name = 'x' WHERE id = $1", [a.tenant.id]),
      ),
    ).rejects.toThrow(/read-only transaction/);
    expect(await scopeLeft(db.pool)).toEqual({ t: '', s: '' });
  });

  it('scopeToTenant narrows a system transaction to one tenant', async () => {
    const a = await createTenant(db.pool, { name: 'scope-narrow-a' });
    await createTenant(db.pool, { name: 'scope-narrow-b' });
    const seen = await withSystemTx(db.pool, async (sys) => {
      const tx = await scopeToTenant(sys, a.tenant.id);
      return (await tx.query('SELECT id FROM tenants')).rows;
    });
    expect(seen).toEqual([{ id: a.tenant.id }]);
  });
});
