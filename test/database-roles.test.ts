// The two database roles as an operator sets them up on an external PostgreSQL (README, "An
// external PostgreSQL"): a schema owner that is no superuser runs the migrations, the application
// role runs everything else, and a process refuses a role that row-level security does not bind.
// And the same split on the embedded PostgreSQL, which sets it up by itself.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { applicationRoleProblems, migrateAll, openDatabase } from '../src/platform/db/database.ts';
import { APP_ROLE } from '../src/platform/db/tx.ts';
import { loadConfig } from '../src/platform/config.ts';
import { createLogger } from '../src/platform/logging.ts';
import { BIN, processEnv } from './relaydesk-process.ts';
import { appDatabaseUrl, withDatabase } from './urls.ts';

const suffix = randomBytes(4).toString('hex');
const OWNER = `relaydesk_owner_${suffix}`;
const OWNER_PASSWORD = randomBytes(12).toString('base64url');
const DATABASE = `relaydesk_test_roles_${suffix}`;
let dataDir: string;

async function asSuperuser<T>(fn: (c: pg.Client) => Promise<T>, database?: string): Promise<T> {
  const admin = inject('adminDatabaseUrl');
  const client = new pg.Client({ connectionString: database ? withDatabase(admin, database) : admin });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const ownerUrl = () => {
  const u = new URL(withDatabase(inject('adminDatabaseUrl'), DATABASE));
  u.username = OWNER;
  u.password = OWNER_PASSWORD;
  return u.toString();
};
const appUrl = () =>
  appDatabaseUrl(withDatabase(inject('adminDatabaseUrl'), DATABASE), inject('appRolePassword'));
const superuserUrl = () => withDatabase(inject('adminDatabaseUrl'), DATABASE);

const cli = (env: NodeJS.ProcessEnv, ...args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args, '--data', dataDir], {
    env: { ...processEnv(), ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-roles-'));
  // What the README asks of a DBA: an owner that is no superuser, a member of the application role
  // (to hand it the queue's schema), and a database it owns. The application role exists on the test
  // server already (with LOGIN and a password: the suite's setup did what the README's SQL does).
  await asSuperuser(async (c) => {
    await c.query(`CREATE ROLE ${OWNER} LOGIN PASSWORD '${OWNER_PASSWORD}'`);
    await c.query(`GRANT ${APP_ROLE} TO ${OWNER}`);
    await c.query(`CREATE DATABASE ${DATABASE} OWNER ${OWNER}`);
  });
});

afterAll(async () => {
  await asSuperuser(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
    await c.query(`DROP ROLE IF EXISTS ${OWNER}`);
  });
  await rm(dataDir, { recursive: true, force: true });
});

describe('an external PostgreSQL with two roles', { timeout: 180_000 }, () => {
  it('refuses to run on a schema that is not migrated, saying what to run', () => {
    const res = cli({ DATABASE_URL: appUrl() }, 'tenant', 'list');
    expect(res.status, res.stderr).toBe(2);
    expect(res.stderr).toContain('the database is at migration 0');
    expect(res.stderr).toContain('relaydesk migrate');
    expect(res.stderr).toContain('DATABASE_MIGRATION_URL');
  });

  it('migrates as the owner, who is no superuser, and then runs on the application role alone', () => {
    const migrate = cli({ DATABASE_URL: appUrl(), DATABASE_MIGRATION_URL: ownerUrl() }, 'migrate');
    expect(migrate.status, migrate.stderr).toBe(0);
    expect(migrate.stdout).toMatch(/^database is at migration \d+$/m);
    const created = cli({ DATABASE_URL: appUrl() }, 'tenant', 'create', 'Acme');
    expect(created.status, created.stderr).toBe(0);
    const list = cli({ DATABASE_URL: appUrl() }, 'tenant', 'list');
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toContain('Acme');
  });

  it('leaves the tables to the owner, forced row-level security on each, and the queue to the application', async () => {
    const { tables, queue } = await asSuperuser(async (c) => {
      const tables = await c.query(
        `SELECT c.relname, o.rolname AS owner, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles o ON o.oid = c.relowner
          WHERE n.nspname = 'public' AND c.relkind = 'r'
            AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')`,
      );
      const queue = await c.query(
        "SELECT DISTINCT o.rolname AS owner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles o ON o.oid = c.relowner WHERE n.nspname = 'pgboss'",
      );
      return { tables: tables.rows, queue: queue.rows };
    }, DATABASE);
    expect(tables.length).toBeGreaterThan(20);
    expect(tables.filter((t) => t.owner !== OWNER || !t.enabled || !t.forced)).toEqual([]);
    expect(queue).toEqual([{ owner: APP_ROLE }]);
  });

  it('refuses to start as a superuser, saying how to fix it', () => {
    const res = cli(
      { DATABASE_URL: superuserUrl(), RELAYDESK_SECRET_KEY: randomBytes(32).toString('base64') },
      'start',
      '--port',
      '0',
    );
    expect(res.status).toBe(2);
    expect(res.stderr).toMatch(/the role "\w+" is a superuser/);
    expect(res.stderr).toContain('row-level security would not keep tenants apart');
    expect(res.stderr).toContain(`Log in as the role ${APP_ROLE}`);
  });

  it("refuses to run as the tables' owner", () => {
    const res = cli({ DATABASE_URL: ownerUrl() }, 'tenant', 'list');
    expect(res.status).toBe(2);
    expect(res.stderr).toContain(`the role "${OWNER}" owns Relaydesk's tables`);
  });

  it('names a DATABASE_MIGRATION_URL without DATABASE_URL as a configuration problem', () => {
    const res = cli({ DATABASE_MIGRATION_URL: ownerUrl() }, 'migrate');
    expect(res.status).toBe(2);
    expect(res.stderr).toContain('DATABASE_MIGRATION_URL is only for an external PostgreSQL');
  });
});

describe('the embedded PostgreSQL', { timeout: 180_000 }, () => {
  it('runs Relaydesk as the application role, with its password kept in the data directory', async () => {
    const embeddedDir = path.join(dataDir, 'embedded');
    const config = loadConfig({ RELAYDESK_DATA_DIR: embeddedDir });
    const db = await openDatabase(config, createLogger('silent'), { purpose: 'test', poolSize: 2 });
    try {
      await migrateAll(db);
      const { rows } = await db.pool.query('SELECT current_user AS u');
      expect(rows[0].u).toBe(APP_ROLE);
      expect(await applicationRoleProblems(db.pool)).toEqual([]);
      expect(new URL(db.ownerUrl!).username).toBe('postgres');
      const file = path.join(embeddedDir, 'app-password');
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect(new URL(db.url).password).toBe(encodeURIComponent((await readFile(file, 'utf8')).trim()));
      // Row-level security binds it: outside a scope it sees no tenant.
      const owner = new pg.Client({ connectionString: db.ownerUrl });
      await owner.connect();
      try {
        await owner.query("INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'hidden')");
        expect((await owner.query('SELECT count(*)::int AS n FROM tenants')).rows[0].n).toBe(1);
      } finally {
        await owner.end();
      }
      expect((await db.pool.query('SELECT count(*)::int AS n FROM tenants')).rows[0].n).toBe(0);
    } finally {
      await db.close();
    }
  });
});
