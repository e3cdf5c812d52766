// Gmail watches kept alive by upkeep, against the Gmail simulator (watches that expire on its
// clock, rotating and revoked refresh tokens, history that runs out).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GmailSimulator, startGmailSimulator } from '../../../simulators/gmail.ts';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { DEFAULT_UPKEEP } from '../../platform/config.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { createLogger } from '../../platform/logging.ts';
import { JobQueue } from '../../platform/queue/queue.ts';
import { JobRegistry } from '../../platform/queue/registry.ts';
import { inboundJobs } from './jobs.ts';
import { mailboxCredentials } from './mailboxes.ts';
import { runUpkeepPass } from './upkeep.ts';

let t: TestApp;
let sim: GmailSimulator;
let workers: JobQueue;
let token: string;
const logger = createLogger('silent');
const HOUR = 3_600_000;
const TOPIC = 'projects/relaydesk-sim/topics/gmail';

const advance = (ms: number) => {
  t.clock.advance(ms);
  sim.advance(ms / 1000);
};
const health = async (id: string) => (await t.call(token, 'GET', `/api/v1/mailboxes/${id}/health`)).body;
const pass = () =>
  runUpkeepPass(
    {
      pool: t.db.pool,
      secretKey: t.secretKey,
      clock: t.clock,
      logger,
      publicUrl: 'http://127.0.0.1:9',
      upkeep: DEFAULT_UPKEEP,
    },
    workers,
  );
const MIME = (subject: string) =>
  Buffer.from(
    `From: Customer <customer@example.org>\r\nTo: desk@gmail.test\r\nSubject: ${subject}\r\n` +
      `Message-ID: <${subject.replace(/\W/g, '')}.${Math.random()}@example.org>\r\n\r\nHello\r\n`,
  );

let counter = 0;
async function gmailMailbox(): Promise<any> {
  counter++;
  const res = await t.call(token, 'POST', '/api/v1/mailboxes', {
    kind: 'gmail',
    address: `desk${counter}@gmail.test`,
    settings: {
      gmail: { apiBaseUrl: sim.apiBaseUrl, tokenUrl: sim.tokenUrl, jwksUrl: sim.jwksUrl, topic: TOPIC },
    },
    credentials: { ...sim.credentials },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

beforeAll(async () => {
  t = await useTestApp();
  token = t.a.adminToken.token;
  sim = await startGmailSimulator();
  workers = new JobQueue({
    connectionString: t.db.url,
    logger,
    registry: new JobRegistry().register(...inboundJobs(t.inboundDeps())),
    supervise: true,
    schedule: false,
    poolSize: 4,
  });
  await workers.start();
  await workers.ensureQueues();
  await workers.startWorkers();
});

afterAll(async () => {
  await workers?.stop({ graceful: false });
  await sim?.close();
});

describe('a Gmail mailbox', () => {
  it('is watched at once, and the watch is renewed daily', async () => {
    const mailbox = await gmailMailbox();
    expect(mailbox.health).toMatchObject({
      status: 'healthy',
      lastRenewalResult: 'created',
      subscriptionId: TOPIC,
    });
    const watch = sim.watch(mailbox.address);
    expect(watch).toMatchObject({ topicName: TOPIC, labelIds: ['INBOX'] });
    expect(Date.parse(mailbox.health.expiresAt)).toBe(Number(watch!.expiration));
    const watches = sim.counts().watches;
    // Within the day nothing is due; a day later the watch is renewed (it would lapse after 7).
    await pass();
    expect(sim.counts().watches).toBe(watches);
    advance(25 * HOUR);
    await pass();
    await expect.poll(async () => (await health(mailbox.id)).lastRenewalResult).toBe('renewed');
    expect(sim.counts().watches).toBe(watches + 1);
    expect(Date.parse((await health(mailbox.id)).expiresAt)).toBeGreaterThan(
      t.clock.now().getTime() + 6 * 24 * HOUR,
    );
  });

  it('keeps a rotated refresh token even when the step after it fails', async () => {
    // A simulator of its own: the earlier mailbox's background work (a reconciliation) shares the
    // refresh token of the shared one and could take the one rotation meant for this mailbox.
    const own = await startGmailSimulator();
    const shared = sim;
    sim = own;
    try {
      const mailbox = await gmailMailbox();
      // Its first watch queued a reconciliation, which refreshes the token too: the one rotation
      // is for the renewal below, so that job ends first.
      await expect
        .poll(
          async () =>
            (
              await t.db.admin.query(
                `SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'mailbox.reconcile'
                    AND data->>'mailboxId' = $1 AND state IN ('created', 'retry', 'active')`,
                [mailbox.id],
              )
            ).rows[0].n,
        )
        .toBe(0);
      const rotated = sim.rotateRefreshTokenOnce();
      sim.fault({
        pathPrefix: `/gmail/v1/users/${encodeURIComponent(mailbox.address)}/watch`,
        method: 'POST',
        status: 400,
      });
      expect((await t.call(token, 'POST', `/api/v1/mailboxes/${mailbox.id}/renew`)).status).toBe(202);
      await expect.poll(async () => (await health(mailbox.id)).lastRenewalResult).toBe('failed');
      const stored = await withTenant(t.db.pool, t.a.tenant.id, (tx) =>
        mailboxCredentials(tx, t.secretKey, mailbox.id),
      );
      expect(stored?.['refreshToken']).toBe(rotated);
      expect(sim.tokenRequests()).toMatchObject({ refresh_token: expect.any(Number) });
    } finally {
      sim = shared;
      await own.close();
    }
  });

  it('needs reauthorisation when the refresh token is revoked (invalid_grant), and is left alone', async () => {
    const mailbox = await gmailMailbox();
    sim.revokeRefreshTokens();
    {
      expect((await t.call(token, 'POST', `/api/v1/mailboxes/${mailbox.id}/renew`)).status).toBe(202);
      await expect.poll(async () => (await health(mailbox.id)).status).toBe('needs_reauth');
      expect((await health(mailbox.id)).failureReason).toMatch(/invalid_grant/);
      const jobs = async () =>
        (
          await t.db.admin.query(
            "SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'mailbox.renew' AND data->>'mailboxId' = $1",
            [mailbox.id],
          )
        ).rows[0].n;
      const before = { health: await health(mailbox.id), jobs: await jobs() };
      advance(25 * HOUR);
      await pass();
      // Not claimed, not tried again: only new credentials or connecting again mend it.
      expect({ health: await health(mailbox.id), jobs: await jobs() }).toEqual(before);
    }
  });

  it('resynchronises recent mail when its history ran out, each message once', async () => {
    // The last test revoked every refresh token of this simulator: a fresh one.
    const fresh = await startGmailSimulator();
    const old = sim;
    sim = fresh;
    try {
      const mailbox = await gmailMailbox();
      await expect.poll(async () => (await health(mailbox.id)).lastReconcileAt).not.toBeNull();
      for (const n of [1, 2]) sim.deliver(mailbox.address, MIME(`Unpushed ${n}`));
      sim.expireHistory(mailbox.address);
      expect((await t.call(token, 'POST', `/api/v1/mailboxes/${mailbox.id}/reconcile`)).status).toBe(202);
      await expect.poll(async () => (await health(mailbox.id)).recoveredByLastReconcile).toBe(2);
      const created = async () =>
        (
          await t.db.admin.query(
            "SELECT count(*)::int AS n FROM inbound_messages WHERE mailbox_id = $1 AND status = 'created'",
            [mailbox.id],
          )
        ).rows[0].n;
      await expect.poll(created).toBe(2);
      expect((await t.call(token, 'POST', `/api/v1/mailboxes/${mailbox.id}/reconcile`)).status).toBe(202);
      await expect.poll(async () => (await health(mailbox.id)).recoveredByLastReconcile).toBe(0);
      expect(await created()).toBe(2);
    } finally {
      await old.close();
    }
  });
});
