// Numbered plain-SQL migrations (migrations/0001_name.sql ...), applied in order, each in its own
// transaction, forward only. A session-level advisory lock makes concurrent starts safe: the second
// process waits, then finds nothing left to apply.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Pool } from './pool.ts';

export const MIGRATIONS_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../migrations',
);
const LOCK_KEY = 7_240_115_001; // arbitrary, constant: "relaydesk migrations"

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    migrations.push({
      version: Number(file.slice(0, 4)),
      name: file.slice(5, -4),
      sql: await readFile(path.join(dir, file), 'utf8'),
    });
  }
  migrations.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new Error(`migration numbering has a gap or duplicate at ${m.version}_${m.name}`);
  });
  return migrations;
}

/** Applies pending migrations; returns the versions applied by this call. */
export async function migrate(pool: Pool, dir = MIGRATIONS_DIR): Promise<number[]> {
  const migrations = await loadMigrations(dir);
  const client = await pool.connect();
  const applied: number[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now())`);
      const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
      const done = new Set(rows.map((r) => r.version));
      for (const m of migrations) {
        if (done.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          // The owner is subject to row-level security too (FORCE, migration 0016): a migration that
          // moves data works across tenants.
          await client.query("SELECT set_config('app.system', 'on', true)");
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
            m.version,
            m.name,
          ]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw new Error(`migration ${m.version}_${m.name} failed: ${(err as Error).message}`, {
            cause: err,
          });
        }
        applied.push(m.version);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    }
  } finally {
    client.release();
  }
  return applied;
}

const expectedCounts = new Map<string, number>();

/** Latest version on disk versus latest applied; readiness requires them equal. */
export async function migrationStatus(
  pool: Pool,
  dir = MIGRATIONS_DIR,
): Promise<{ expected: number; applied: number }> {
  // The migrations on disk do not change while the process runs: read them once (/readyz is polled).
  let expected = expectedCounts.get(dir);
  if (expected === undefined) {
    expected = (await loadMigrations(dir)).length;
    expectedCounts.set(dir, expected);
  }
  // A database never migrated has no schema_migrations (to_regclass answers NULL, not an error).
  const { rows: found } = await pool.query<{ t: string | null }>(
    "SELECT to_regclass('schema_migrations')::text AS t",
  );
  if (!found[0]?.t) return { expected, applied: 0 };
  const { rows } = await pool.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
  return { expected, applied: rows[0]?.v ?? 0 };
}
