// The CLI on DATABASE_URL as an operator first meets it: commands that do not touch credentials
// work without RELAYDESK_SECRET_KEY, what needs the key says how to make one, and a database that
// cannot be reached is named (host:port/database, never the password), waited for, and reported.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase, useTestDatabase } from './db.ts';
import { BIN, exitOf, freePort, processEnv } from './relaydesk-process.ts';

let db: TestDatabase;
let dataDir: string;
const proxy = net.createServer();

beforeAll(async () => {
  db = await useTestDatabase({ poolSize: 2 });
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-external-db-'));
});

afterAll(async () => {
  proxy.close();
  await rm(dataDir, { recursive: true, force: true });
});

const cli = (env: NodeJS.ProcessEnv, ...args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args, '--data', dataDir], {
    // processEnv() drops DATABASE_URL and RELAYDESK_SECRET_KEY; these tests set their own.
    env: { ...processEnv(), ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });

/** The test database's address over TCP (the test server may hand out a Unix socket URL). */
function tcpTarget(): { host: string; port: number; user: string; password: string; database: string } {
  const u = new URL(db.url);
  const socketHost = u.searchParams.get('host');
  return {
    host: socketHost?.startsWith('/') || !u.hostname || u.hostname === 'localhost' ? '127.0.0.1' : u.hostname,
    port: Number(u.searchParams.get('port') ?? (u.port || 5432)),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.slice(1),
  };
}

describe('the CLI on DATABASE_URL', { timeout: 120_000 }, () => {
  it('lists tenants and migrates without RELAYDESK_SECRET_KEY', () => {
    const list = cli({ DATABASE_URL: db.url }, 'tenant', 'list');
    expect(list.status, list.stderr).toBe(0);
    const migrate = cli({ DATABASE_URL: db.url }, 'migrate');
    expect(migrate.status, migrate.stderr).toBe(0);
    expect(migrate.stdout).toMatch(/^database is at migration \d+$/m);
  });

  it('asks for the key where it is needed, saying how to make one', () => {
    const start = cli({ DATABASE_URL: db.url }, 'start', '--port', '0');
    expect(start.status).toBe(2);
    expect(start.stderr).toContain('RELAYDESK_SECRET_KEY is required with DATABASE_URL');
    expect(start.stderr).toContain('openssl rand -base64 32');
  });

  it('names the database it cannot reach, without the password, and exits 1', async () => {
    const port = await freePort();
    const res = cli(
      { DATABASE_URL: `postgres://relaydesk:hunter2@127.0.0.1:${port}/desk`, RELAYDESK_DB_WAIT_SECONDS: '0' },
      'tenant',
      'list',
    );
    expect(res.status).toBe(1);
    expect(res.stderr).toContain(`cannot reach the database at 127.0.0.1:${port}/desk (DATABASE_URL)`);
    expect(res.stderr).toContain('connection refused');
    expect(res.stderr).not.toContain('hunter2');
    expect(res.stderr).not.toContain('ECONNREFUSED');
  });

  it('refuses a wrong password at once as a configuration problem', () => {
    const t = tcpTarget();
    const res = cli(
      {
        DATABASE_URL: `postgres://${t.user}:not-the-password@${t.host}:${t.port}/${t.database}`,
        RELAYDESK_DB_WAIT_SECONDS: '60',
      },
      'tenant',
      'list',
    );
    expect(res.status).toBe(2);
    expect(res.stderr).toContain(`the database at ${t.host}:${t.port}/${t.database} refused the connection`);
    expect(res.stderr).not.toContain('not-the-password');
  });

  it('waits for a database that comes up while it waits (--db-wait)', async () => {
    const t = tcpTarget();
    const port = await freePort();
    const url = `postgres://${encodeURIComponent(t.user)}:${encodeURIComponent(t.password)}@127.0.0.1:${port}/${t.database}`;
    const child = spawn(process.execPath, [BIN, 'tenant', 'list', '--db-wait', '60', '--data', dataDir], {
      env: { ...processEnv(), DATABASE_URL: url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const exited = exitOf(child);
    child.stdout.resume();
    // Nothing listens yet; once it says it is waiting, the database "comes up" (a proxy to it).
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        if (stderr.includes('waiting for the database')) resolve();
      });
      child.once('close', () => reject(new Error(`exited before waiting; stderr:\n${stderr}`)));
    });
    expect(stderr).toContain(`127.0.0.1:${port}/${t.database}`);
    await new Promise<void>((resolve) => {
      proxy.on('connection', (client) => {
        const upstream = net.connect(t.port, t.host);
        client.pipe(upstream).pipe(client);
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
      });
      proxy.listen(port, '127.0.0.1', resolve);
    });
    expect(await exited, stderr).toBe(0);
  });
});
