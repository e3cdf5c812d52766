// IMAP ingress against a real Dovecot (dovecot-imapd, started on a loopback port for this file).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { type Dovecot, startDovecot, imapClient } from '../../../test/dovecot.ts';
import { createLogger } from '../../platform/logging.ts';
import { processInbound } from './process.ts';
import { ImapListeners } from './providers/imap/listener.ts';

let t: TestApp;
let dovecot: Dovecot;
let mailboxId: string;
const deps = () => t.inboundDeps();
const listenerDeps = () => ({
  pool: t.db.pool,
  connectionString: t.db.url,
  secretKey: t.secretKey,
  logger: createLogger('silent'),
  queue: t.queue,
});

async function append(subject: string, flags: string[] = []): Promise<void> {
  const client = imapClient(dovecot);
  await client.connect();
  const raw = [
    `From: Frank <frank@imap-customer.test>`,
    `To: ${dovecot.user}`,
    `Subject: ${subject}`,
    `Message-ID: <${randomBytes(6).toString('hex')}@imap-customer.test>`,
    '',
    subject,
  ].join('\r\n');
  await client.append('INBOX', raw, flags);
  await client.logout();
}

const queued = async () =>
  (
    await t.db.admin.query(
      "SELECT id, pointer FROM inbound_messages WHERE mailbox_id = $1 AND status = 'queued' ORDER BY created_at, id",
      [mailboxId],
    )
  ).rows;

async function processQueued(): Promise<string[]> {
  const out = [];
  for (const row of await queued()) {
    const o = await processInbound(deps(), {
      tenantId: t.a.tenant.id,
      inboundId: row.id,
      lastAttempt: false,
    });
    out.push(o.status);
  }
  return out;
}

const ticketCount = async () =>
  (await t.db.admin.query('SELECT count(*)::int AS n FROM tickets WHERE tenant_id = $1', [t.a.tenant.id]))
    .rows[0].n as number;

beforeAll(async () => {
  dovecot = await startDovecot();
  t = await useTestApp();
  await t.queue.boss.createQueue('inbound.process');
  const res = await t.call(t.a.adminToken.token, 'POST', '/api/v1/mailboxes', {
    kind: 'imap',
    address: dovecot.user,
    settings: { imap: { host: dovecot.host, port: dovecot.port, secure: false } },
    credentials: { password: dovecot.password },
  });
  expect(res.status).toBe(201);
  mailboxId = res.body.id;
}, 180_000);

afterAll(async () => {
  await dovecot?.stop();
});

describe('IMAP listener', { timeout: 60_000 }, () => {
  it('picks up mail already there, including mail another client has read, and mail that arrives while it IDLEs', async () => {
    await append('Before the listener (read elsewhere)', ['\\Seen']);
    await append('Before the listener (unread)');
    const listeners = new ImapListeners(listenerDeps());
    await listeners.start(60_000);
    try {
      expect(listeners.listening()).toEqual([mailboxId]);
      await expect.poll(async () => (await queued()).length, { timeout: 10_000 }).toBe(2);
      expect(await processQueued()).toEqual(['created', 'created']);
      await append('While idling');
      await expect.poll(async () => (await queued()).length, { timeout: 15_000 }).toBe(1);
      expect(await processQueued()).toEqual(['created']);
    } finally {
      await listeners.stop();
    }
    expect(await ticketCount()).toBe(3);
  });

  it('starts again where it stopped: nothing enqueued twice', async () => {
    await append('While nobody listened');
    const listeners = new ImapListeners(listenerDeps());
    await listeners.start(60_000);
    try {
      await expect.poll(async () => (await queued()).length, { timeout: 10_000 }).toBe(1);
      await new Promise((r) => setTimeout(r, 500));
      expect((await queued()).length).toBe(1);
      expect(await processQueued()).toEqual(['created']);
    } finally {
      await listeners.stop();
    }
  });

  it('lets only one worker listen to a mailbox', async () => {
    const first = new ImapListeners(listenerDeps());
    const second = new ImapListeners(listenerDeps());
    await first.start(60_000);
    await second.start(60_000);
    try {
      expect(first.listening()).toEqual([mailboxId]);
      expect(second.listening()).toEqual([]);
      await first.stop();
      await second.scan(); // the lock is free now: the other worker takes over
      expect(second.listening()).toEqual([mailboxId]);
    } finally {
      await first.stop();
      await second.stop();
    }
  });

  it('rescans after a UIDVALIDITY change, without duplicating anything', async () => {
    const before = await ticketCount();
    await dovecot.resetUidValidity();
    const listeners = new ImapListeners(listenerDeps());
    await listeners.start(60_000);
    try {
      await expect.poll(async () => (await queued()).length, { timeout: 10_000 }).toBe(4);
      expect(await processQueued()).toEqual(['duplicate', 'duplicate', 'duplicate', 'duplicate']);
      expect(await ticketCount()).toBe(before);
    } finally {
      await listeners.stop();
    }
  });

  it('skips a pointer whose UIDs were renumbered (source_unavailable)', async () => {
    const { rows } = await t.db.admin.query(
      "INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer) VALUES ($1, gen_random_uuid(), $2, 'imap', $3) RETURNING id",
      [t.a.tenant.id, mailboxId, JSON.stringify({ uidValidity: '1', uid: 1 })],
    );
    const outcome = await processInbound(deps(), {
      tenantId: t.a.tenant.id,
      inboundId: rows[0].id,
      lastAttempt: false,
    });
    expect(outcome).toMatchObject({ status: 'skipped', reason: 'source_unavailable' });
  });
});
