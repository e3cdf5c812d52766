// docs/scale-out.md's Citus plan against the schema: every table with a tenant_id column is in its
// list of distributed tables, every other table of the application in its list of reference and local
// tables, and neither list names a table that is not there.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './db.ts';

const db = await useTestDatabase({ poolSize: 1 });
const doc = readFileSync(path.resolve(import.meta.dirname, '..', 'docs', 'scale-out.md'), 'utf8');

/** The `code` names in the part of the doc under the heading `### <title>`, up to the next heading. */
function namesUnder(title: string): Set<string> {
  const start = doc.indexOf(`\n### ${title}\n`);
  if (start < 0) throw new Error(`docs/scale-out.md has no "### ${title}" section`);
  const rest = doc.slice(start + title.length + 6);
  const end = rest.search(/\n#{2,3} /);
  const section = (end < 0 ? rest : rest.slice(0, end)).replace(/```[\s\S]*?```/g, '');
  return new Set([...section.matchAll(/`([a-z_][a-z0-9_.*]*)`/g)].map((m) => m[1]!));
}

async function tables(): Promise<{ name: string; tenant: boolean }[]> {
  // Partitions go with their parent (the ledger's months); pg-boss's schema is one entry, `pgboss.*`.
  const { rows } = await db.admin.query<{ name: string; tenant: boolean }>(
    `SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.*' END AS name,
            bool_or(EXISTS (SELECT 1 FROM pg_attribute a
                             WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)) AS tenant
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
        AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      GROUP BY 1 ORDER BY 1`,
  );
  return rows;
}

describe('docs/scale-out.md, Citus', () => {
  it('distributes every table with a tenant_id, and only those', async () => {
    const listed = namesUnder('Distributed tables');
    const tenantTables = (await tables()).filter((t) => t.tenant).map((t) => t.name);
    expect(tenantTables.length).toBeGreaterThan(10);
    expect(tenantTables.filter((t) => !listed.has(t))).toEqual([]);
    // Names in the list that are no tenant table (gone, renamed) are stale; function names are not.
    const stale = [...listed].filter(
      (n) => !tenantTables.includes(n) && !n.startsWith('create_') && n !== 'tenant_id',
    );
    expect(stale).toEqual([]);
  });

  it('names every other table as a reference or local table', async () => {
    const listed = namesUnder('Reference and local tables');
    const others = (await tables()).filter((t) => !t.tenant).map((t) => t.name);
    expect(others).toContain('tenants');
    expect(others.filter((t) => !listed.has(t))).toEqual([]);
  });
});
