// The real `relaydesk` process on its embedded PostgreSQL, as a new user runs it: first start,
// SIGTERM, second start on the same data, the database dying under it, SIGKILL and restart, and the
// CLI both beside a running server and on its own.
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, BIN, processEnv, RelaydeskProcess } from './relaydesk-process.ts';

let rd: RelaydeskProcess;

beforeAll(async () => {
  rd = await RelaydeskProcess.create('server-test');
});

afterAll(async () => {
  await rd.cleanup();
});

describe('relaydesk start', { timeout: 120_000 }, () => {
  let token: string;
  let ticketId: string;

  it('initialises the embedded PostgreSQL on first start, creates tenant default and prints its admin token once', async () => {
    rd.start();
    await rd.waitReady(90_000);
    await rd.waitForOutput(/rd_[A-Za-z0-9_-]{43}/);
    expect(rd.output).toContain(`Relaydesk is running at ${rd.base}`);
    expect(rd.output).toContain(`The console is at ${rd.base}/console/`);
    // Started with --data, so the command printed to run next names it too (else it would use ./.relaydesk).
    expect(rd.output).toContain(
      `relaydesk --public-url ${rd.base} --data ${rd.dataDir} user invite --tenant default`,
    );
    token = /(rd_[A-Za-z0-9_-]{43,})/.exec(rd.output)![1]!;
    const file = path.join(rd.dataDir, 'initial-admin-token');
    expect((await readFile(file, 'utf8')).trim()).toBe(token);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(rd.dataDir, 'secret-key'))).mode & 0o777).toBe(0o600);
    const me = await rd.api(token, 'GET', '/api/v1/me');
    expect(me.body.tenant.name).toBe('default');
    const created = await rd.api(token, 'POST', '/api/v1/tickets', {
      subject: 'Survives restarts',
      requester: { email: 'a@example.com' },
    });
    expect(created.status).toBe(201);
    ticketId = created.body.id;
    const health = await fetch(`${rd.base}/healthz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`${rd.base}/metrics`)).text();
    expect(metrics).toContain('relaydesk_http_request_duration_seconds_bucket');
    const docs = await fetch(`${rd.base}/docs/json`);
    expect(((await docs.json()) as any).paths['/api/v1/tickets']).toBeDefined();
  });

  it('reaches its PostgreSQL over the Unix socket in the data directory, and leaves TCP open for tools', async () => {
    const lines = (await readFile(path.join(rd.dataDir, 'pg', 'postmaster.pid'), 'utf8')).split('\n');
    expect(lines[4]).toBe(path.join(rd.dataDir, 'pg'));
    const password = (await readFile(path.join(rd.dataDir, 'pg-password'), 'utf8')).trim();
    const client = new pg.Client({
      host: '127.0.0.1',
      port: Number(lines[3]),
      user: 'postgres',
      password,
      database: 'relaydesk',
    });
    await client.connect();
    try {
      const { rows } = await client.query<{ tcp: number; socket: number }>(
        `SELECT count(*) FILTER (WHERE client_addr IS NOT NULL)::int AS tcp,
                count(*) FILTER (WHERE client_addr IS NULL)::int AS socket
           FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`,
      );
      expect(rows[0]!.socket).toBeGreaterThan(0);
      expect(rows[0]!.tcp).toBe(0);
    } finally {
      await client.end();
    }
  });

  it('lets the CLI work beside the running server, on its PostgreSQL', async () => {
    const list = rd.cli('tenant', 'list');
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^[0-9a-f-]{36}\tdefault$/m);
    const created = rd.cli('tenant', 'create', 'Acme MSP');
    expect(created.status, created.stderr).toBe(0);
    const acmeId = /^tenant\t([0-9a-f-]{36})\tAcme MSP$/m.exec(created.stdout)![1]!;
    const acmeToken = /^token\t(rd_\S+)$/m.exec(created.stdout)![1]!;
    expect((await rd.api(acmeToken, 'GET', '/api/v1/me')).body.tenant.id).toBe(acmeId);

    const minted = rd.cli('token', 'create', '--tenant', acmeId, '--role', 'viewer', '--label', 'dashboard');
    expect(minted.status, minted.stderr).toBe(0);
    const [tokenId, role, viewerToken] = minted.stdout.trim().split('\t');
    expect(role).toBe('viewer');
    expect((await rd.api(viewerToken!, 'GET', '/api/v1/tickets')).status).toBe(200);
    const revoked = rd.cli('token', 'revoke', viewerToken!.slice(-4));
    expect(revoked.status, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(tokenId);
    expect((await rd.api(viewerToken!, 'GET', '/api/v1/tickets')).status).toBe(401);

    // people resolve / merge
    const ann = await rd.api(token, 'POST', '/api/v1/people', {
      displayName: 'Ann',
      kind: 'contact',
      email: 'ann@example.com',
    });
    const annOld = await rd.api(token, 'POST', '/api/v1/people', {
      displayName: 'Ann (old)',
      kind: 'contact',
      email: 'ann.old@example.com',
    });
    await rd.api(token, 'POST', `/api/v1/people/${annOld.body.id}/identities`, {
      kind: 'slack',
      externalId: 'U-ANN',
    });
    const byEmail = rd.cli('people', 'resolve', '--tenant', 'default', '--email', 'ANN@example.com');
    expect(byEmail.status, byEmail.stderr).toBe(0);
    expect(byEmail.stdout).toBe(`${ann.body.id}\tAnn\n`);
    const byIdentity = rd.cli(
      'people',
      'resolve',
      '--tenant',
      'default',
      '--kind',
      'slack',
      '--external-id',
      'U-ANN',
    );
    expect(byIdentity.stdout).toBe(`${annOld.body.id}\tAnn (old)\n`);
    expect(rd.cli('people', 'resolve', '--tenant', 'default', '--email', 'nobody@example.com').status).toBe(
      1,
    );
    expect(rd.cli('people', 'resolve', '--tenant', 'default').status).toBe(2);
    const merged = rd.cli('people', 'merge', '--tenant', 'default', annOld.body.id, ann.body.id);
    expect(merged.status, merged.stderr).toBe(0);
    expect(
      rd.cli('people', 'resolve', '--tenant', 'default', '--kind', 'slack', '--external-id', 'U-ANN').stdout,
    ).toContain(ann.body.id);
    expect(rd.cli('people', 'merge', '--tenant', 'default', ann.body.id, ann.body.id).status).toBe(2);

    // ingest: one line per file, tab-separated; a second copy of a message is a duplicate
    await rd.api(token, 'POST', '/api/v1/mailboxes', { kind: 'mime', address: 'support@ingest.test' });
    const mailDir = path.join(rd.dataDir, 'mail');
    await mkdir(mailDir);
    const eml = (id: string, subject: string) =>
      [
        `From: Customer <c@example.org>`,
        'To: support@ingest.test',
        `Subject: ${subject}`,
        `Message-ID: <${id}@example.org>`,
        '',
        'Hello',
      ].join('\r\n');
    await writeFile(path.join(mailDir, 'a.eml'), eml('ingest-a', 'Printer'));
    await writeFile(path.join(mailDir, 'b.eml'), eml('ingest-a', 'Printer (again)'));
    const ingested = rd.cli('ingest', mailDir, '--tenant', 'default', '--mailbox', 'support@ingest.test');
    expect(ingested.status, ingested.stderr).toBe(0);
    const lines = ingested.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    expect(lines).toHaveLength(2);
    expect(lines[0]!.slice(0, 2)).toEqual([path.join(mailDir, 'a.eml'), 'created']);
    expect(lines[0]![2]).toMatch(/^T-\d+$/);
    expect(lines[1]!.slice(0, 2)).toEqual([path.join(mailDir, 'b.eml'), 'duplicate']);
    expect(
      rd.cli(
        'ingest',
        path.join(mailDir, 'missing.eml'),
        '--tenant',
        'default',
        '--mailbox',
        'support@ingest.test',
      ).status,
    ).toBe(2);

    const stats = rd.cli('queue', 'stats');
    expect(stats.status, stats.stderr).toBe(0);
    expect(stats.stdout.split('\n')[0]).toBe('queue\tready\tdeferred\tactive\toldest_s\tdead_letter');
    for (const limit of ['abc', '-5', '0', '1001']) {
      const dlq = rd.cli('queue', 'dlq', 'list', `--limit=${limit}`);
      expect(dlq.status).toBe(2);
      expect(dlq.stderr.trim()).toBe(
        `relaydesk: --limit must be a whole number from 1 to 1000, got "${limit}"`,
      );
    }

    // An unknown queue is refused, as the API answers 404 for it, not listed or redriven as empty.
    for (const command of ['list', 'redrive']) {
      const unknown = rd.cli('queue', 'dlq', command, '--queue', 'no.such.queue');
      expect(unknown.status).toBe(2);
      expect(unknown.stderr).toMatch(
        /^relaydesk: no queue named "no\.such\.queue" \(queues: .*inbound\.process/,
      );
    }
    const known = rd.cli('queue', 'dlq', 'redrive', '--queue', 'inbound.process');
    expect(known.status, known.stderr).toBe(0);
    expect(known.stdout.trim()).toBe('redriven 0');

    expect(rd.cli('tenant', 'delete', acmeId).status).toBe(2); // no --yes
    const deleted = rd.cli('tenant', 'delete', acmeId, '--yes');
    expect(deleted.status, deleted.stderr).toBe(0);
    expect(rd.cli('tenant', 'list').stdout).not.toContain(acmeId);
    expect((await rd.api(acmeToken, 'GET', '/api/v1/me')).status).toBe(401);
    const bad = rd.cli('token', 'create', '--tenant', acmeId, '--role', 'viewer');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('not found');
  });

  it('answers 503 while its database is down and recovers by itself', async () => {
    const pid = (await rd.postmasterPid())!;
    process.kill(pid, 'SIGKILL');
    let sawOutage = false;
    for (let i = 0; i < 100 && !sawOutage; i++) {
      const ready = await fetch(`${rd.base}/readyz`);
      if (ready.status === 503) {
        const body = (await ready.json()) as any;
        expect(body.code).toBe('database_unavailable');
        sawOutage = true;
        const write = await rd.api(token, 'POST', '/api/v1/tickets', {
          subject: 'during outage',
          requester: { email: 'a@example.com' },
        });
        if (write.status !== 201) {
          expect(write.status).toBe(503);
          expect(write.body.code).toBe('database_unavailable');
        }
      } else {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    expect(sawOutage).toBe(true);
    await rd.waitReady(30_000);
    await expect
      .poll(
        async () =>
          (
            await rd.api(token, 'POST', '/api/v1/tickets', {
              subject: 'after outage',
              requester: { email: 'a@example.com' },
            })
          ).status,
        {
          timeout: 15_000,
        },
      )
      .toBe(201);
  });

  it('stops cleanly on SIGTERM, taking its PostgreSQL with it', async () => {
    const pid = (await rd.postmasterPid())!;
    expect(await rd.stop('SIGTERM')).toBe(0);
    expect(alive(pid)).toBe(false);
    expect(await rd.postmasterPid()).toBeUndefined();
  });

  it('starts again on the same data, keeping it, saying where it runs, without a new token', async () => {
    rd.start();
    // How fast is a benchmark's question (`npm run bench -- startup`), not this test's.
    await rd.waitReady();
    await rd.waitForOutput(`Relaydesk is running at ${rd.base}`);
    expect(rd.output).not.toContain('rd_');
    const got = await rd.api(token, 'GET', `/api/v1/tickets/${ticketId}`);
    expect(got.body.subject).toBe('Survives restarts');
  });

  it('shows the first admin token on a later start when the start that made it never showed it', async () => {
    // What a start that died between creating the tenant and printing its token leaves behind.
    await writeFile(path.join(rd.dataDir, 'initial-admin-token.unshown'), '');
    expect(await rd.stop('SIGTERM')).toBe(0);
    rd.start();
    await rd.waitForOutput(token);
    expect(rd.output).toContain('created by an earlier start that stopped before showing it');
    // Shown once: the marker goes once it is printed.
    await expect.poll(() => existsSync(path.join(rd.dataDir, 'initial-admin-token.unshown'))).toBe(false);
  });

  it('starts after SIGKILL, despite the PostgreSQL and postmaster.pid the killed run left behind', async () => {
    await rd.stop('SIGKILL');
    const orphan = await rd.postmasterPid();
    expect(orphan && alive(orphan)).toBe(true);
    rd.start();
    await rd.waitReady();
    expect((await rd.api(token, 'GET', `/api/v1/tickets/${ticketId}`)).status).toBe(200);
    await rd.waitForOutput('Relaydesk is running at');
    expect(rd.output).not.toContain('rd_');
    expect(await rd.stop('SIGTERM')).toBe(0);
  });

  it('runs CLI commands with no server, starting and stopping the embedded PostgreSQL itself', async () => {
    const list = rd.cli('tenant', 'list');
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toContain('\tdefault');
    expect(await rd.postmasterPid()).toBeUndefined();
  });

  it('refuses bad configuration with every problem listed, each named as the user gave it, and exit code 2', () => {
    const res = spawnSync(
      process.execPath,
      [BIN, 'start', '--port', '70000', '--role', 'boss', '--data', rd.dataDir],
      { env: processEnv({ LOG_LEVEL: 'chatty' }), encoding: 'utf8' },
    );
    expect(res.status).toBe(2);
    expect(res.stderr).toContain('--port must be between 0 and 65535, got 70000');
    expect(res.stderr).toContain('--role must be one of all, api, worker, scheduler, got "boss"');
    expect(res.stderr).toContain('LOG_LEVEL must be one of');
  });
});
