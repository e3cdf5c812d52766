// Per-file test databases, cloned from the template that test/global-setup.ts prepared.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createPool, type Pool } from '../src/platform/db/pool.ts';
import { appDatabaseUrl, withDatabase } from './urls.ts';
import { atFileEnd } from './file-end.ts';

export interface TestDatabase {
  /** The file's database as the application role: what code under test is given. */
  url: string;
  name: string;
  /** A pool as the application role (row-level security applies): for the code under test. */
  pool: Pool;
  /** The file's database as its owner (a superuser): for a test's own setup and inspection SQL. */
  adminUrl: string;
  admin: Pool;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('adminDatabaseUrl') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A fresh, migrated database for this test file, dropped after the file's tests. */
export async function useTestDatabase(options: { poolSize?: number } = {}): Promise<TestDatabase> {
  const name = `relaydesk_test_f_${randomBytes(6).toString('hex')}`;
  const template = inject('templateDatabase');
  for (let attempt = 0; ; attempt++) {
    try {
      await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
      break;
    } catch (err) {
      // Two files cloning the template at the same instant can collide; retry briefly.
      if (attempt >= 20 || !String((err as Error).message).includes('being accessed by other users'))
        throw err;
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
  }
  const adminUrl = withDatabase(inject('adminDatabaseUrl'), name);
  const url = appDatabaseUrl(adminUrl, inject('appRolePassword'));
  const pool = createPool({ connectionString: url, max: options.poolSize ?? 10 });
  const adminPool = createPool({ connectionString: adminUrl, max: 2 });
  atFileEnd(async () => {
    await pool.end();
    await adminPool.end();
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  });
  return { url, name, pool, adminUrl, admin: adminPool };
}
