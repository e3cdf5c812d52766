// Subscription upkeep end to end: the API on a real port (Graph runs its validation handshake
// against it), real PostgreSQL, the queue's workers, and the Graph simulator, whose subscriptions
// expire on its own clock (moved with ours).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GraphSimulator, startGraphSimulator } from '../../../simulators/graph.ts';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { DEFAULT_UPKEEP } from '../../platform/config.ts';
import { createPool, type Pool } from '../../platform/db/pool.ts';
import { createLogger } from '../../platform/logging.ts';
import { JobQueue } from '../../platform/queue/queue.ts';
import { JobRegistry } from '../../platform/queue/registry.ts';
import { inboundJobs } from './jobs.ts';
import { GraphClient } from './providers/graph/client.ts';
import { reconcileMailbox, renewMailbox, renewNow, runUpkeepPass, type UpkeepDeps } from './upkeep.ts';
import { claimReconcile } from './health.ts';
import { withTenant } from '../../platform/db/tx.ts';

let t: TestApp;
let sim: GraphSimulator;
let appUrl: string;
let workers: JobQueue;
let token: string;
const logger = createLogger('silent');
const DAY = 86_400_000;

const deps = (pool?: Pool): UpkeepDeps => ({
  pool: pool ?? t.db.pool,
  secretKey: t.secretKey,
  clock: t.clock,
  logger,
  publicUrl: appUrl,
  upkeep: DEFAULT_UPKEEP,
});

/** Moves our clock and the simulator's together. */
const advance = (ms: number) => {
  t.clock.advance(ms);
  sim.advance(ms / 1000);
};

let counter = 0;
async function graphMailbox(credentials: Record<string, unknown> = sim.credentials): Promise<any> {
  counter++;
  const res = await t.call(token, 'POST', '/api/v1/mailboxes', {
    kind: 'graph',
    address: `desk${counter}@upkeep.test`,
    settings: { graph: { apiBaseUrl: sim.apiBaseUrl, tokenUrl: sim.tokenUrl } },
    credentials,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

/**
 * Runs `fn` on a Graph mailbox past its first reconciliation whose claim the test holds, as a
 * running reconciliation holds it, with the reconcile workers off until `fn` ends.
 */
async function whileReconciling(fn: (mailbox: any) => Promise<void>): Promise<any> {
  const mailbox = await graphMailbox();
  await expect.poll(async () => (await health(mailbox.id)).lastReconcileAt).not.toBeNull();
  await workers.boss.offWork('mailbox.reconcile');
  try {
    expect(
      await withTenant(t.db.pool, t.a.tenant.id, (tx) => claimReconcile(tx, mailbox.id, t.clock.now(), 900)),
    ).toBe(true);
    await fn(mailbox);
  } finally {
    await workers.startWorkers(['mailbox.reconcile']);
  }
  return mailbox;
}

const health = async (mailboxId: string, tenantToken = token) =>
  (await t.call(tenantToken, 'GET', `/api/v1/mailboxes/${mailboxId}/health`)).body;
const subscriptionsOf = (address: string) =>
  sim.subscriptions().filter((s) => s.resource.toLowerCase().includes(`users/${address.toLowerCase()}/`));
const recordsOf = async (mailboxId: string) =>
  (
    await t.db.admin.query(
      "SELECT pointer->>'messageId' AS m, status FROM inbound_messages WHERE mailbox_id = $1",
      [mailboxId],
    )
  ).rows as { m: string; status: string }[];
const MIME = (subject: string) =>
  Buffer.from(
    `From: Customer <customer@example.org>\r\nTo: desk@upkeep.test\r\nSubject: ${subject}\r\n` +
      `Message-ID: <${subject.replace(/\W/g, '')}.${Math.random()}@example.org>\r\n\r\nHello\r\n`,
  );

beforeAll(async () => {
  t = await useTestApp();
  token = t.a.adminToken.token;
  appUrl = await t.app.listen({ host: '127.0.0.1', port: 0 });
  t.config.publicUrl = appUrl;
  sim = await startGraphSimulator();
  workers = new JobQueue({
    connectionString: t.db.url,
    logger,
    registry: new JobRegistry().register(...inboundJobs({ ...t.inboundDeps(), publicUrl: appUrl })),
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

describe('a Graph mailbox', () => {
  it('is subscribed at once when created with credentials, and its mail flows', async () => {
    const mailbox = await graphMailbox();
    expect(mailbox.health).toMatchObject({
      status: 'healthy',
      lastRenewalResult: 'created',
      consecutiveFailures: 0,
    });
    const [sub, ...others] = subscriptionsOf(mailbox.address);
    expect(others).toEqual([]);
    expect(sub).toMatchObject({
      id: mailbox.health.subscriptionId,
      resource: `users/${mailbox.address}/mailFolders('Inbox')/messages`,
      changeType: 'created',
      notificationUrl: `${appUrl}/hooks/graph/${mailbox.id}`,
      lifecycleNotificationUrl: `${appUrl}/hooks/graph/${mailbox.id}`,
    });
    expect(sub!.clientState!.length).toBeGreaterThanOrEqual(32);
    // The longest expiry upkeep asks for (10,070 minutes), as Graph granted it.
    expect(Date.parse(mailbox.health.expiresAt) - t.clock.now().getTime()).toBeGreaterThan(10_000 * 60_000);

    await sim.deliver(mailbox.address, MIME('Printer on fire'));
    // One ticket. (The reconciliation that follows a new subscription may find the message too, as
    // the notification brings it: that second record ends as a duplicate.)
    await expect
      .poll(async () => (await recordsOf(mailbox.id)).filter((r) => r.status === 'created').length)
      .toBe(1);
    await expect.poll(async () => (await health(mailbox.id)).lastMessageAt).not.toBeNull();
    expect((await health(mailbox.id)).lastNotificationAt).not.toBeNull();

    // Each subscription has its own clientState: another mailbox's is different.
    const second = await graphMailbox();
    expect(subscriptionsOf(second.address)[0]!.clientState).not.toBe(sub!.clientState);
  });

  it('is renewed before it expires, once per due time, by three schedulers at once', async () => {
    const boxes = await Promise.all([1, 2, 3, 4, 5].map(() => graphMailbox()));
    const before = new Map(boxes.map((b) => [b.id, b.health.subscriptionId as string]));
    // Not due yet: nothing is claimed.
    expect((await runUpkeepPass(deps(), workers)).renewals).toBe(0);
    // Six and a half days later every subscription expires within the look-ahead (24 h).
    advance(6.5 * DAY);
    const pools = [
      createPool({ connectionString: t.db.url, max: 2 }),
      createPool({ connectionString: t.db.url, max: 2 }),
      createPool({ connectionString: t.db.url, max: 2 }),
    ];
    try {
      // Three schedulers pass at once, again and again until every one is renewed: a row that other
      // work (a reconciliation recording its result) holds locked at that moment is skipped by a
      // pass and taken by a later one. However many passes, each subscription is renewed once.
      const renewed = async () =>
        (await Promise.all(boxes.map(async (b) => (await health(b.id)).lastRenewalResult))).every(
          (r) => r === 'renewed',
        );
      let claimed = 0;
      for (let round = 0; round < 100 && !(await renewed()); round++) {
        const passes = await Promise.all(pools.map((p) => runUpkeepPass(deps(p), workers)));
        claimed += passes.reduce((n, p) => n + p.renewals, 0);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(claimed).toBeGreaterThanOrEqual(boxes.length);
      for (const b of boxes) {
        await expect.poll(async () => (await health(b.id)).lastRenewalResult).toBe('renewed');
        const h = await health(b.id);
        expect(h.subscriptionId).toBe(before.get(b.id));
        expect(Date.parse(h.expiresAt)).toBeGreaterThan(t.clock.now().getTime() + 6 * DAY);
        expect(sim.renewalsBySubscription().get(h.subscriptionId)).toBe(1);
      }
      // Renewed: nothing is due any more.
      const again = await Promise.all(pools.map((p) => runUpkeepPass(deps(p), workers)));
      expect(again.reduce((n, p) => n + p.renewals, 0)).toBe(0);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('gets a new subscription when Graph has lost it (404), the stale one deleted, and missed mail reconciled', async () => {
    const mailbox = await graphMailbox();
    const old = mailbox.health.subscriptionId as string;
    // Graph forgot the subscription; mail arrived meanwhile that nobody was told of.
    await new GraphClient(
      { apiBaseUrl: sim.apiBaseUrl, tokenUrl: sim.tokenUrl },
      sim.credentials,
      t.clock,
    ).deleteSubscription(old);
    await sim.deliver(mailbox.address, MIME('While unsubscribed'), { notify: false });
    const res = await t.call(token, 'POST', `/api/v1/mailboxes/${mailbox.id}/renew`);
    expect(res.status).toBe(202);
    await expect.poll(async () => (await health(mailbox.id)).lastRenewalResult).toBe('recreated');
    const h = await health(mailbox.id);
    expect(h.status).toBe('healthy');
    expect(h.subscriptionId).not.toBe(old);
    expect(subscriptionsOf(mailbox.address).map((s) => s.id)).toEqual([h.subscriptionId]);
    // The recreation reconciled: the mail that came while there was no subscription is in (found by
    // the reconciliation after the recreation, or by the one still running from the creation, then
    // the next one finds nothing new).
    await expect.poll(async () => (await recordsOf(mailbox.id)).map((r) => r.status)).toEqual(['created']);
  });

  it('runs a reconciliation asked for while one runs once that one ends, not never', async () => {
    const tenantId = t.a.tenant.id;
    // A reconciliation starts (it holds the claim) …
    const mailbox = await whileReconciling(async (mailbox) => {
      // … Graph says notifications were missed: the reconciliation that asks for waits for it …
      expect(await sim.lifecycle(mailbox.health.subscriptionId, 'missed')).toBe(202);
      await expect
        .poll(
          async () =>
            (
              await t.db.admin.query('SELECT reconcile_again FROM mailbox_health WHERE mailbox_id = $1', [
                mailbox.id,
              ])
            ).rows[0].reconcile_again,
        )
        .toBe(true);
      // … the running one reads the folder and ends, finding nothing …
      const send: Parameters<typeof reconcileMailbox>[2] = (job, payload, options) =>
        workers.send(job, payload, options ?? {});
      expect(await reconcileMailbox(deps(), { tenantId, mailboxId: mailbox.id }, send)).toEqual({
        recovered: 0,
      });
      // … and mail arrives unnotified after it read the folder.
      await sim.deliver(mailbox.address, MIME('Missed while reconciling'), { notify: false });
    });
    // The reconciliation asked for meanwhile runs now, and finds it.
    await expect.poll(async () => (await health(mailbox.id)).recoveredByLastReconcile).toBe(1);
    await expect.poll(async () => (await recordsOf(mailbox.id)).map((r) => r.status)).toEqual(['created']);
  });

  it('asks again when Graph said to after a 429 in reconciliation, holding the claim until then', async () => {
    const tenantId = t.a.tenant.id;
    await whileReconciling(async (mailbox) => {
      // The delta query is throttled for two minutes, longer than the queue's first retry (60 s).
      sim.fault({ pathPrefix: '/v1.0/users/', method: 'GET', status: 429, retryAfter: 120 });
      const sent: { name: string; payload: unknown; delaySeconds: number | undefined }[] = [];
      const send: Parameters<typeof reconcileMailbox>[2] = async (job, payload, options) => {
        sent.push({ name: job.name, payload, delaySeconds: options?.delaySeconds });
        return null;
      };
      expect(await reconcileMailbox(deps(), { tenantId, mailboxId: mailbox.id }, send)).toEqual({
        skipped: 'throttled by the provider: again in 120 s',
      });
      expect(sent).toEqual([
        { name: 'mailbox.reconcile', payload: { tenantId, mailboxId: mailbox.id }, delaySeconds: 120 },
      ]);
      // Nobody else starts one meanwhile: the claim lasts the wait and a reconciliation's lease.
      const { rows } = await t.db.admin.query<{ seconds: number }>(
        'SELECT extract(epoch FROM reconcile_claimed_until - $2::timestamptz)::float8 AS seconds FROM mailbox_health WHERE mailbox_id = $1',
        [mailbox.id, t.clock.now()],
      );
      expect(rows[0]!.seconds).toBeCloseTo(120 + 900, 0);
      expect(
        await withTenant(t.db.pool, tenantId, (tx) => claimReconcile(tx, mailbox.id, t.clock.now(), 900)),
      ).toBe(false);
    }).finally(() => sim.clearFaults());
  });

  it('acts on each lifecycle notification: reauthorize, recreate, reconcile', async () => {
    const mailbox = await graphMailbox();
    const first = mailbox.health.subscriptionId as string;
    const reauthorized = sim.counts().reauthorized;
    expect(await sim.lifecycle(first, 'reauthorizationRequired')).toBe(202);
    await expect.poll(async () => (await health(mailbox.id)).lastRenewalResult).toBe('reauthorized');
    expect(sim.counts().reauthorized).toBe(reauthorized + 1);
    expect((await health(mailbox.id)).subscriptionId).toBe(first);

    await sim.deliver(mailbox.address, MIME('Missed one'), { notify: false });
    expect(await sim.lifecycle(first, 'missed')).toBe(202);
    await expect.poll(async () => (await health(mailbox.id)).recoveredByLastReconcile).toBe(1);
    await expect.poll(async () => (await recordsOf(mailbox.id)).map((r) => r.status)).toEqual(['created']);

    // Graph removed the subscription (and says so): a new one at once.
    expect(await sim.lifecycle(first, 'subscriptionRemoved')).toBe(202);
    await expect.poll(async () => (await health(mailbox.id)).lastRenewalResult).toBe('recreated');
    const second = (await health(mailbox.id)).subscriptionId;
    expect(second).not.toBe(first);
    expect(subscriptionsOf(mailbox.address).map((s) => s.id)).toEqual([second]);
  });

  it('recovers mail whose notifications were dropped, each message exactly once', async () => {
    const mailbox = await graphMailbox();
    // The reconciliation that follows the new subscription first (it finds nothing).
    await expect.poll(async () => (await health(mailbox.id)).lastReconcileAt).not.toBeNull();
    await sim.deliver(mailbox.address, MIME('Notified'));
    await expect.poll(async () => (await recordsOf(mailbox.id)).length).toBe(1);
    for (const n of [1, 2, 3]) await sim.deliver(mailbox.address, MIME(`Dropped ${n}`), { notify: false });
    expect((await t.call(token, 'POST', `/api/v1/mailboxes/${mailbox.id}/reconcile`)).status).toBe(202);
    await expect.poll(async () => (await health(mailbox.id)).recoveredByLastReconcile).toBe(3);
    await expect
      .poll(async () => (await recordsOf(mailbox.id)).filter((r) => r.status === 'created').length)
      .toBe(4);
    // Again: nothing new, nothing twice.
    expect((await t.call(token, 'POST', `/api/v1/mailboxes/${mailbox.id}/reconcile`)).status).toBe(202);
    await expect.poll(async () => (await health(mailbox.id)).recoveredByLastReconcile).toBe(0);
    const records = await recordsOf(mailbox.id);
    expect(records).toHaveLength(4);
    expect(new Set(records.map((r) => r.m)).size).toBe(4);
  });

  it('needs reauthorisation when the provider refuses its credentials, with no retry loop', async () => {
    const mailbox = await graphMailbox({ ...sim.credentials, clientSecret: 'wrong' });
    expect(mailbox.health.status).toBe('needs_reauth');
    expect(mailbox.health.failureReason).toMatch(/invalid_client/);
    const queued = await t.db.admin.query(
      "SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'mailbox.renew' AND data->>'mailboxId' = $1",
      [mailbox.id],
    );
    expect(queued.rows[0].n).toBe(0);
    // Upkeep leaves it alone until a person mends it …
    advance(2 * DAY);
    await runUpkeepPass(deps(), workers);
    expect((await health(mailbox.id)).consecutiveFailures).toBe(1);
    // … with new credentials, which subscribe it at once.
    const fixed = await t.call(token, 'PATCH', `/api/v1/mailboxes/${mailbox.id}`, {
      credentials: sim.credentials,
    });
    expect(fixed.status).toBe(200);
    expect(fixed.body.health).toMatchObject({ status: 'healthy', lastRenewalResult: 'created' });
  });

  it('goes into error after repeated failed renewals and back to healthy, telling admins only of those two', async () => {
    const mailbox = await graphMailbox();
    const tenantId = t.a.tenant.id;
    sim.fault({
      pathPrefix: `/v1.0/subscriptions/${mailbox.health.subscriptionId}`,
      method: 'PATCH',
      status: 503,
      times: Infinity,
    });
    // The renewal's own retries are driven here, one at a time, instead of waiting for their
    // backoff: each failure hands its retry (same claim) to `send`, which keeps it.
    const retries: { tenantId: string; mailboxId: string; claimId: string }[] = [];
    const keep = (async (_job: unknown, payload: (typeof retries)[number]) => {
      retries.push(payload);
      return null;
    }) as unknown as Parameters<typeof renewNow>[3];
    const statuses = [(await renewNow(deps(), tenantId, mailbox.id, keep))?.status];
    for (let i = 0; i < 3; i++) statuses.push((await renewMailbox(deps(), retries.at(-1)!, keep)).status);
    // errorAfter (3) failures in a row: error. It stays there while the provider fails.
    expect(statuses).toEqual(['degraded', 'degraded', 'error', 'error']);
    expect(await health(mailbox.id)).toMatchObject({ status: 'error', consecutiveFailures: 4 });
    sim.clearFaults();
    expect((await renewMailbox(deps(), retries.at(-1)!, keep)).status).toBe('healthy');
    expect(await health(mailbox.id)).toMatchObject({
      status: 'healthy',
      consecutiveFailures: 0,
      lastRenewalResult: 'renewed',
    });
    // healthy → degraded → error → healthy: admins hear that mail stopped and that it flows again,
    // not of the passing failures before (mailbox.health_changed, fanned out by notification rules).
    const told = await t.db.admin.query(
      `SELECT data FROM events WHERE mailbox_id = $1 AND type = 'mailbox.health_changed'
        ORDER BY occurred_at, id`,
      [mailbox.id],
    );
    expect(told.rows.map((r) => [r.data.from, r.data.status])).toEqual([
      ['degraded', 'error'],
      ['error', 'healthy'],
    ]);
    expect(told.rows[0].data).toMatchObject({
      address: mailbox.address,
      error: expect.stringMatching(/503/),
    });
    // Healthy again is no error: what mended it is the reason.
    expect(told.rows[1].data).toMatchObject({ error: null, reason: 'renewed' });
  });

  it("honours Graph's Retry-After, then renews", async () => {
    const mailbox = await graphMailbox();
    sim.fault({
      pathPrefix: `/v1.0/subscriptions/${mailbox.health.subscriptionId}`,
      method: 'PATCH',
      status: 429,
      retryAfter: 2,
    });
    expect((await t.call(token, 'POST', `/api/v1/mailboxes/${mailbox.id}/renew`)).status).toBe(202);
    await expect.poll(async () => (await health(mailbox.id)).status).toBe('degraded');
    expect((await health(mailbox.id)).failureReason).toMatch(/429|TooManyRequests|simulated/);
    // A second renewal is refused while the first waits out the Retry-After (it holds the claim).
    expect((await t.call(token, 'POST', `/api/v1/mailboxes/${mailbox.id}/renew`)).status).toBe(409);
    await expect
      .poll(async () => (await health(mailbox.id)).lastRenewalResult, { timeout: 15_000 })
      .toBe('renewed');
    expect((await health(mailbox.id)).status).toBe('healthy');
    expect(sim.retryAfterViolations()).toBe(0);
  });

  it('finishes a renewal whose scheduler died mid-way, and renews once', async () => {
    const mailbox = await graphMailbox();
    await workers.boss.offWork('mailbox.renew');
    try {
      advance(6.5 * DAY);
      expect((await runUpkeepPass(deps(), workers)).renewals).toBeGreaterThanOrEqual(1);
      // The renewal never ran (its process died with the claim); after the claim's lease the
      // next pass claims it again, and the job of the lost claim, should it ever run, does nothing.
      advance(301_000);
      expect((await runUpkeepPass(deps(), workers)).renewals).toBeGreaterThanOrEqual(1);
    } finally {
      await workers.startWorkers(['mailbox.renew']);
    }
    await expect.poll(async () => (await health(mailbox.id)).lastRenewalResult).toBe('renewed');
    await expect
      .poll(
        async () =>
          (
            await t.db.admin.query(
              "SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'mailbox.renew' AND state <> 'completed' AND data->>'mailboxId' = $1",
              [mailbox.id],
            )
          ).rows[0].n,
      )
      .toBe(0);
    expect(sim.renewalsBySubscription().get(mailbox.health.subscriptionId)).toBe(1);
  });
  it('lets new credentials supersede a renewal claimed with the old ones, which then writes nothing', async () => {
    const mailbox = await graphMailbox();
    const first = mailbox.health.subscriptionId as string;
    await workers.boss.offWork('mailbox.renew');
    try {
      // A renewal is claimed and queued with the old credentials …
      advance(6.5 * DAY);
      expect((await runUpkeepPass(deps(), workers)).renewals).toBeGreaterThanOrEqual(1);
      // … and before it runs, an admin gives new credentials: subscribed again at once.
      const changed = await t.call(token, 'PATCH', `/api/v1/mailboxes/${mailbox.id}`, {
        credentials: sim.credentials,
      });
      expect(changed.body.health).toMatchObject({ status: 'healthy', lastRenewalResult: 'recreated' });
    } finally {
      await workers.startWorkers(['mailbox.renew']);
    }
    const second = (await health(mailbox.id)).subscriptionId;
    expect(second).not.toBe(first);
    // The old claim's job runs now and finds its claim gone: nothing renewed, nothing written.
    await expect
      .poll(
        async () =>
          (
            await t.db.admin.query(
              "SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'mailbox.renew' AND state <> 'completed' AND data->>'mailboxId' = $1",
              [mailbox.id],
            )
          ).rows[0].n,
      )
      .toBe(0);
    const h = await health(mailbox.id);
    expect(h).toMatchObject({ status: 'healthy', subscriptionId: second, lastRenewalResult: 'recreated' });
    expect(sim.renewalsBySubscription().get(second) ?? 0).toBe(0);
    expect(subscriptionsOf(mailbox.address).map((x) => x.id)).toEqual([second]);
  });

  it('is tested step by step, also when its credentials cannot give a token at all', async () => {
    const working = await graphMailbox();
    const ok = await t.call(token, 'POST', `/api/v1/mailboxes/${working.id}/test`);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({
      ok: true,
      steps: [
        { step: 'token', ok: true },
        { step: 'read', ok: true },
      ],
    });

    // Its own app registration's secret alone (waiting to be connected), and a refresh token with no
    // app registration to use it with (the install has none): said as a failed step, never a 500.
    const cases = [
      { settings: { oauth: { clientId: 'own-app' } }, credentials: { oauthClientSecret: 's' } },
      { settings: {}, credentials: { refreshToken: 'r' } },
    ];
    for (const c of cases) {
      counter++;
      const made = await t.call(token, 'POST', '/api/v1/mailboxes', {
        kind: 'graph',
        address: `untestable${counter}@upkeep.test`,
        settings: { graph: { apiBaseUrl: sim.apiBaseUrl, tokenUrl: sim.tokenUrl }, ...c.settings },
        credentials: c.credentials,
      });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
      const res = await t.call(token, 'POST', `/api/v1/mailboxes/${made.body.id}/test`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.ok).toBe(false);
      expect(res.body.steps).toEqual([
        {
          step: 'credentials',
          ok: false,
          message: expect.stringMatching(/not connected yet|names no app registration/),
        },
      ]);
    }
  });

  it('takes its Graph subscription along when deleted', async () => {
    const mailbox = await graphMailbox();
    expect(subscriptionsOf(mailbox.address)).toHaveLength(1);
    expect((await t.call(token, 'DELETE', `/api/v1/mailboxes/${mailbox.id}`)).status).toBe(204);
    expect(subscriptionsOf(mailbox.address)).toEqual([]);
  });
});

describe('tenant isolation', () => {
  it("keeps another tenant's mailbox out of reach of every upkeep route", async () => {
    const mailbox = await graphMailbox();
    const other = t.b.adminToken.token;
    for (const [method, path] of [
      ['GET', 'health'],
      ['POST', 'renew'],
      ['POST', 'reconcile'],
      ['POST', 'test'],
    ] as const) {
      const res = await t.call(other, method, `/api/v1/mailboxes/${mailbox.id}/${path}`);
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    const list = await t.call(other, 'GET', '/api/v1/mailboxes');
    expect(list.body.items.map((m: { id: string }) => m.id)).not.toContain(mailbox.id);
  });
});
