// A real connection pooler for tests: Debian's PgBouncer in transaction pooling mode on a loopback
// port, in front of the test server. Installed by apt-get when missing (the tests need it; so does
// CI). Every database of the server is reachable through it under its own name.
import { type ChildProcess, spawn } from 'node:child_process';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { postgresUser } from '../src/platform/db/run-as-postgres.ts';
import { createLogger } from '../src/platform/logging.ts';
import { ensureDebianPackage } from './debian-packages.ts';
import { freePort } from './relaydesk-process.ts';

const PGBOUNCER = '/usr/sbin/pgbouncer';

export function ensurePgBouncerInstalled(): void {
  ensureDebianPackage('pgbouncer', PGBOUNCER);
}

export interface PgBouncer {
  port: number;
  pid: number;
  /** The same database and role as `url` (a URL of the server behind), through the pooler. */
  through(url: string): string;
  /** What the pooler logged (connections, errors). */
  log(): Promise<string>;
  stop(): Promise<void>;
}

export interface PgBouncerOptions {
  /** Any URL of the server behind (its host, or `?host=` socket directory, and port are used). */
  serverUrl: string;
  /** The roles that log in through the pooler, with their passwords. */
  users: { name: string; password: string }[];
  /** Server connections per database and role (PgBouncer's default_pool_size). */
  poolSize?: number;
}

/** Where the server listens, as PgBouncer's `host=` (an address, or a Unix socket directory) and port. */
function serverAddress(url: string): { host: string; port: number } {
  const u = new URL(url);
  const socket = u.searchParams.get('host');
  const host = socket ?? (u.hostname === 'localhost' || u.hostname === '' ? '127.0.0.1' : u.hostname);
  return { host, port: Number(u.searchParams.get('port') ?? (u.port || 5432)) };
}

const quoted = (s: string) => `"${s.replaceAll('"', '""')}"`;

export async function startPgBouncer(options: PgBouncerOptions): Promise<PgBouncer> {
  ensurePgBouncerInstalled();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-pgbouncer-'));
  const port = await freePort();
  const server = serverAddress(options.serverUrl);
  const users = path.join(dir, 'userlist.txt');
  const logFile = path.join(dir, 'pgbouncer.log');
  await writeFile(users, options.users.map((u) => `${quoted(u.name)} ${quoted(u.password)}\n`).join(''));
  // `*`: every database of the server under its own name. timezone=UTC: Relaydesk reads timestamps
  // as UTC text and cannot ask for it through a transaction pooler (docs/scale-out.md).
  await writeFile(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${server.host} port=${server.port} timezone=UTC`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${users}`,
      'pool_mode = transaction',
      `default_pool_size = ${options.poolSize ?? 20}`,
      'max_client_conn = 2000',
      // While PostgreSQL is out of reach a query waits this long for a server connection, then
      // fails (08P01) and Relaydesk answers 503; PgBouncer's default would hold it for 2 minutes.
      'query_wait_timeout = 10',
      // After a failed server login PgBouncer refuses every client for this long before it tries
      // PostgreSQL again: its default 15 s would keep Relaydesk out that long after a restart.
      'server_login_retry = 2',
      `logfile = ${logFile}`,
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n'),
  );
  // PgBouncer refuses to run as root; as root, it runs as the user the embedded PostgreSQL runs as.
  const runAs = await postgresUser(createLogger('warn'));
  if (runAs.uid !== undefined) {
    for (const f of [dir, users, path.join(dir, 'pgbouncer.ini')]) await chown(f, runAs.uid, runAs.gid!);
  }
  const child: ChildProcess = spawn(PGBOUNCER, [path.join(dir, 'pgbouncer.ini')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(runAs.uid === undefined ? {} : { uid: runAs.uid, gid: runAs.gid }),
  });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  await waitListening(port, child, () => stderr);
  return {
    port,
    pid: child.pid!,
    through(url: string) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      u.searchParams.delete('host');
      u.searchParams.delete('port');
      return u.toString();
    },
    log: async () => {
      const { readFile } = await import('node:fs/promises');
      return readFile(logFile, 'utf8').catch(() => '');
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function waitListening(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited (${child.exitCode}): ${stderr()}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`pgbouncer did not listen on ${port}: ${stderr()}`);
}
