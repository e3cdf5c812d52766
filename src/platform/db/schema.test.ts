// The schema rules of DESIGN §3.5, checked against the real migrated database: a new table that
// breaks them fails here.
import { beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase, useTestDatabase } from '../../../test/db.ts';

let db: TestDatabase;
let tenantTables: string[];

beforeAll(async () => {
  db = await useTestDatabase();
  const { rows } = await db.pool.query<{ table_name: string }>(
    `SELECT c.table_name FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'
      ORDER BY 1`,
  );
  tenantTables = rows.map((r) => r.table_name);
});

const keyColumns = async (table: string, contype: string) => {
  const { rows } = await db.pool.query<{ conname: string; cols: string[] }>(
    `SELECT con.conname, array_agg(a.attname::text ORDER BY k.ord) AS cols
       FROM pg_constraint con
       CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
      WHERE con.conrelid = $1::regclass AND con.contype = $2
      GROUP BY con.conname`,
    [`public.${table}`, contype],
  );
  return rows;
};

describe('tenant tables', () => {
  it('exist', () => {
    expect(tenantTables).toEqual(
      expect.arrayContaining(['people', 'tickets', 'ticket_messages', 'api_tokens', 'ticket_status_history']),
    );
  });

  it('have tenant_id first in the primary key', async () => {
    for (const table of tenantTables) {
      const pk = await keyColumns(table, 'p');
      expect(pk, `${table} has a primary key`).toHaveLength(1);
      expect(pk[0]!.cols[0], `${table} primary key starts with tenant_id`).toBe('tenant_id');
    }
  });

  it('have tenant_id first in every unique key and unique index', async () => {
    for (const table of tenantTables) {
      const { rows } = await db.pool.query<{ indexname: string; first: string | null }>(
        `SELECT i.indexrelid::regclass::text AS indexname, a.attname AS first
           FROM pg_index i
           LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
          WHERE i.indrelid = $1::regclass AND i.indisunique`,
        [`public.${table}`],
      );
      for (const r of rows)
        expect(r.first, `${table}.${r.indexname} starts with tenant_id`).toBe('tenant_id');
    }
  });

  it('have tenant_id first in every foreign key, and reach tenants through cascading keys', async () => {
    // Every foreign key of a tenant table that cascades on delete, as table → referenced table.
    const { rows: cascades } = await db.pool.query<{ child: string; parent: string }>(
      `SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent
         FROM pg_constraint WHERE contype = 'f' AND confdeltype = 'c'`,
    );
    const parentsOf = (table: string) => cascades.filter((c) => c.child === table).map((c) => c.parent);
    // A table is removed with its tenant when a chain of cascading keys leads from it to tenants, or
    // to one of the tables deleteTenant empties itself before it removes the tenant (their keys to
    // tenants cost a lock of the tenant's row per insert: migrations 0011 and 0013). The tenant
    // deletion test checks that no row of any table outlives its tenant.
    const roots = new Set(['tenants', 'tickets', 'ticket_wakeups']);
    const reachesTenants = (table: string, seen = new Set<string>()): boolean => {
      if (roots.has(table)) return true;
      if (seen.has(table)) return false;
      seen.add(table);
      return parentsOf(table).some((p) => reachesTenants(p, seen));
    };
    for (const table of tenantTables) {
      const fks = await keyColumns(table, 'f');
      for (const fk of fks)
        expect(fk.cols[0], `${table}.${fk.conname} starts with tenant_id`).toBe('tenant_id');
      expect(reachesTenants(table), `${table} reaches tenants through ON DELETE CASCADE keys`).toBe(true);
    }
  });

  it('have row-level security enabled with a tenant policy', async () => {
    for (const table of [...tenantTables, 'tenants']) {
      const { rows } = await db.pool.query<{ relrowsecurity: boolean; policies: number }>(
        `SELECT c.relrowsecurity, (SELECT count(*)::int FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
           FROM pg_class c WHERE c.oid = $1::regclass`,
        [`public.${table}`],
      );
      expect(rows[0], `${table} RLS`).toEqual({ relrowsecurity: true, policies: 1 });
    }
  });
});
