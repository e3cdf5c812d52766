// `relaydesk deliveries`: the real CLI process on the test database: the ledger listed with the
// API's filters, a failed attempt retried, and bad input ending in one line and exit 2.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../test/app.ts';
import { BIN, processEnv } from '../../test/relaydesk-process.ts';
import { outboundSendJob } from '../modules/outbound/job-refs.ts';
import { sendDelivery } from '../modules/outbound/send.ts';
import { Transports } from '../modules/outbound/transports.ts';
import { createLogger } from '../platform/logging.ts';

let t: TestApp;
let dataDir: string;
let failedId: string;
let ticketId: string;
let ticketNumber: string;

function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    ...processEnv(),
    DATABASE_URL: t.db.url,
    RELAYDESK_SECRET_KEY: t.secretKey.toString('base64'),
  };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'deliveries', ...args, '--data', dataDir],
      { env, encoding: 'utf8', timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  t = await useTestApp();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-deliveries-cli-'));
  await t.queue.boss.createQueue(outboundSendJob.name);
  const admin = t.a.adminToken.token;
  // A mailbox with no SMTP server: its replies fail for good (permanent).
  const mailbox = await t.call(admin, 'POST', '/api/v1/mailboxes', {
    kind: 'mime',
    address: 'cli@desk.test',
  });
  const ticket = await t.call(admin, 'POST', '/api/v1/tickets', {
    subject: 'CLI ledger',
    requester: { email: 'someone@example.org' },
  });
  ticketId = ticket.body.id;
  ticketNumber = ticket.body.number;
  const reply = await t.call(admin, 'POST', `/api/v1/tickets/${ticketId}/messages`, {
    visibility: 'public',
    text: 'hello',
    mailboxId: mailbox.body.id,
  });
  failedId = reply.body.delivery.id;
  const transports = new Transports({ pool: t.db.pool, secretKey: t.secretKey, clock: t.clock });
  await sendDelivery(
    { pool: t.db.pool, clock: t.clock, logger: createLogger('silent'), transports },
    { tenantId: t.a.tenant.id, deliveryId: failedId },
    { send: (job, payload, options) => t.queue.send(job, payload, options) },
  );
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('relaydesk deliveries', () => {
  it('lists the attempts of a tenant with filters', async () => {
    const run = await cli(['list', '--tenant', 'Tenant A', '--status', 'failed']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines[0]).toBe(
      'id\tcreated_at\tchannel\tpurpose\tdestination\tstatus\tattempt\terror_code\terror',
    );
    expect(lines[1]!.split('\t').slice(2, 8)).toEqual([
      'email',
      'reply',
      'someone@example.org',
      'failed',
      '1',
      'permanent',
    ]);
    const json = JSON.parse(
      (await cli(['list', '--tenant', 'Tenant A', '--ticket', ticketId, '--json'])).stdout,
    );
    expect(json.items.map((d: { id: string }) => d.id)).toEqual([failedId]);
    const other = await cli(['list', '--tenant', 'Tenant B']);
    expect(other.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('retries a failed attempt once, then refuses', async () => {
    const run = await cli(['retry', failedId, '--tenant', 'Tenant A']);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^queued attempt 2 as [0-9a-f-]{36}\n$/);
    const again = await cli(['retry', failedId, '--tenant', 'Tenant A']);
    expect(again.status).toBe(2);
    expect(again.stderr).toContain('queued');
    // Another tenant's delivery is not there.
    const cross = await cli(['retry', failedId, '--tenant', 'Tenant B']);
    expect(cross.status).toBe(2);
    expect(cross.stderr).toContain(`no delivery ${failedId}`);
  });

  it('pages with --cursor, and takes the ticket by its number', async () => {
    const list = (...more: string[]) =>
      cli(['list', '--tenant', 'Tenant A', '--ticket', ticketNumber.toLowerCase(), '--limit', '1', ...more]);
    const first = await list();
    expect(first.status, first.stderr).toBe(0);
    const cursor = /^more: --cursor (\S+)$/m.exec(first.stderr)?.[1];
    expect(cursor).toBeDefined();
    const second = await list('--cursor', cursor!);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr).toBe('');
    const ids = [first, second].map((r) => r.stdout.trim().split('\n')[1]!.split('\t')[0]);
    // The retried attempt, then the failed one: each once, newest first.
    expect(ids[1]).toBe(failedId);
    expect(new Set(ids).size).toBe(2);
    const bad = await list('--cursor', 'not-a-cursor');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('cursor');
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.each([
    [['list', '--tenant', 'Tenant A', '--ticket', 'T-x'], '--ticket (an id or a number such as T-12)'],
    [['list', '--tenant', 'Tenant A', '--purpose', 'spam'], '--purpose must be one of'],
    [['list', '--tenant', 'Tenant A', '--status', 'lost'], '--status must be one of'],
    [['list', '--tenant', 'Tenant A', '--from', 'yesterday'], '--from must be an ISO-8601 instant'],
    // Dates Date.parse takes and PostgreSQL does not: refused here, not a database error (exit 1).
    [
      ['list', '--tenant', 'Tenant A', '--from', '2026-02-30T00:00:00Z'],
      '--from must be an ISO-8601 instant',
    ],
    [['list', '--tenant', 'Tenant A', '--to', '0000-01-01T00:00:00Z'], '--to must be an ISO-8601 instant'],
    [['list', '--tenant', 'Tenant A', '--limit', '0'], '--limit must be a whole number'],
    [['retry', 'not-an-id', '--tenant', 'Tenant A'], 'the delivery must be an id'],
  ])('refuses %j with one line and exit 2', async (args, message) => {
    const run = await cli(args);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });
});
