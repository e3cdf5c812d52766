// As root, a clone in a home directory that others cannot enter (/root is 0700): PostgreSQL runs as
// the `postgres` user and cannot reach <data dir>/pg, so its files go to /var/lib/relaydesk/<key>/pg,
// keyed by the data directory. The home directory keeps its permissions; start, the CLI beside the
// server, SIGKILL recovery and stop all work there. Skipped when not running as root.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, realpath, rm, rmdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, RelaydeskProcess } from './relaydesk-process.ts';

const asRoot = process.getuid?.() === 0;
let home: string;
let rd: RelaydeskProcess;

beforeAll(async () => {
  if (!asRoot) return;
  home = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-home-')); // mode 0700, like /root
  rd = await RelaydeskProcess.create('root-test', home);
  const key = createHash('sha256')
    .update(await realpath(rd.dataDir))
    .digest('hex')
    .slice(0, 16);
  rd.pgDir = path.join('/var/lib/relaydesk', key, 'pg');
});

afterAll(async () => {
  if (!asRoot) return;
  await rd.cleanup();
  await rm(path.dirname(rd.pgDir), { recursive: true, force: true });
  await rmdir('/var/lib/relaydesk').catch(() => undefined); // only if nothing else is in it
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
      expect((await stat(path.join(rd.pgDir, '..', 'data-dir'))).isFile()).toBe(true);
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
