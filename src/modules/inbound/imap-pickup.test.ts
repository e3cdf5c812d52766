// How IMAP mail is picked up, against a real Dovecot: a new mailbox at once (NOTIFY, not the scan),
// and a reconcile that enqueues what the listener has not, never the same UID twice.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { type Dovecot, startDovecot, imapClient } from '../../../test/dovecot.ts';
import { createLogger } from '../../platform/logging.ts';
import { processInbound } from './process.ts';
import { closeImapFetchPools } from './providers/imap/fetch-pool.ts';
import { ImapListeners } from './providers/imap/listener.ts';
import { reconcileImapMailbox } from './providers/imap/reconcile.ts';

let t: TestApp;
let dovecot: Dovecot;
const logger = createLogger('silent');
const listenerDeps = () => ({
  pool: t.db.pool,
  connectionString: t.db.url,
  secretKey: t.secretKey,
  logger,
  queue: t.queue,
});
const reconcileDeps = () => ({
  pool: t.db.pool,
  secretKey: t.secretKey,
  logger,
  send: t.queue.send.bind(t.queue),
});

async function append(subjects: string[]): Promise<void> {
  const client = imapClient(dovecot);
  await client.connect();
  for (const subject of subjects)
    await client.append(
      'INBOX',
      [
        `From: Heidi <heidi@imap-customer.test>`,
        `To: ${dovecot.user}`,
        `Subject: ${subject}`,
        `Message-ID: <${randomBytes(6).toString('hex')}@imap-customer.test>`,
        '',
        subject,
      ].join('\r\n'),
    );
  await client.logout();
}

async function createImapMailbox(address: string): Promise<string> {
  const res = await t.call(t.a.adminToken.token, 'POST', '/api/v1/mailboxes', {
    kind: 'imap',
    address,
    settings: { imap: { host: dovecot.host, port: dovecot.port, secure: false, user: dovecot.user } },
    credentials: { password: dovecot.password },
  });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

const pointers = async (mailboxId: string) =>
  (
    await t.db.admin.query<{ id: string; status: string; uid: number; v: string }>(
      `SELECT id, status, (pointer->>'uid')::int AS uid, pointer->>'uidValidity' AS v
         FROM inbound_messages WHERE mailbox_id = $1 ORDER BY created_at, id`,
      [mailboxId],
    )
  ).rows;

const folderUids = async (): Promise<number[]> => {
  const client = imapClient(dovecot);
  await client.connect();
  try {
    await client.mailboxOpen('INBOX');
    return ((await client.search({ all: true }, { uid: true })) || []).sort((a, b) => a - b);
  } finally {
    await client.logout();
  }
};

beforeAll(async () => {
  dovecot = await startDovecot();
  t = await useTestApp();
  await t.queue.boss.createQueue('inbound.process');
}, 180_000);

afterAll(async () => {
  await closeImapFetchPools();
  await dovecot?.stop();
});

describe('a new IMAP mailbox', { timeout: 60_000 }, () => {
  it('is picked up as soon as it is created, not at the next scan', async () => {
    await append(['Waiting before the mailbox existed']);
    const listeners = new ImapListeners(listenerDeps());
    // The scan runs at start and then every 10 minutes: only the notification can bring the mailbox.
    await listeners.start(600_000);
    try {
      expect(listeners.listening()).toEqual([]);
      const mailboxId = await createImapMailbox('new@imap.test');
      await expect.poll(async () => (await pointers(mailboxId)).length, { timeout: 10_000 }).toBe(1);
      expect(listeners.listening()).toEqual([mailboxId]);
      const [record] = await pointers(mailboxId);
      const outcome = await processInbound(t.inboundDeps(), {
        tenantId: t.a.tenant.id,
        inboundId: record!.id,
        lastAttempt: false,
      });
      expect(outcome.status).toBe('created');
    } finally {
      await listeners.stop();
    }
  });
});

describe('reconcileImapMailbox', { timeout: 60_000 }, () => {
  let mailboxId: string;

  it('enqueues what is above the stored UID, once', async () => {
    mailboxId = await createImapMailbox('reconciled@imap.test');
    await append(['Missed one', 'Missed two']);
    const all = await folderUids();
    const first = await reconcileImapMailbox(reconcileDeps(), t.a.tenant.id, mailboxId);
    expect(first).toEqual({ recovered: all.length });
    expect((await pointers(mailboxId)).map((p) => p.uid)).toEqual(all);
    expect(await reconcileImapMailbox(reconcileDeps(), t.a.tenant.id, mailboxId)).toEqual({ recovered: 0 });
    await append(['Missed three']);
    expect(await reconcileImapMailbox(reconcileDeps(), t.a.tenant.id, mailboxId)).toEqual({ recovered: 1 });
  });

  it('never enqueues a UID twice while a listener enqueues the same mail', async () => {
    const listeners = new ImapListeners(listenerDeps());
    await listeners.start(600_000);
    let recovered = 0;
    try {
      // Mail arrives in bursts; the listener hears each, and reconciles run at the same time.
      for (let burst = 0; burst < 5; burst++) {
        await append(Array.from({ length: 4 }, (_, i) => `Burst ${burst} message ${i}`));
        const results = await Promise.all(
          [0, 1, 2].map(() => reconcileImapMailbox(reconcileDeps(), t.a.tenant.id, mailboxId)),
        );
        recovered += results.reduce((n, r) => n + r.recovered, 0);
      }
      const all = await folderUids();
      await expect.poll(async () => (await pointers(mailboxId)).length, { timeout: 10_000 }).toBe(all.length);
      const uids = (await pointers(mailboxId)).map((p) => p.uid);
      expect(new Set(uids).size).toBe(uids.length);
      expect([...uids].sort((a, b) => a - b)).toEqual(all);
      // The listener's and the reconciles' shares add up to the 20 new messages (the 3 before were there).
      expect(recovered).toBeLessThanOrEqual(20);
    } finally {
      await listeners.stop();
    }
  });
});
