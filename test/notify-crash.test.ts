// Notifications under worker crashes, over real worker processes (`relaydesk start --role worker`:
// dispatcher, fan-out, delivery) on the file's database, killed with SIGKILL again and again:
//   - webhooks: 2,000 notifications (400 events recorded through the API, each for 5 subscribed
//     endpoints) while workers die at random moments and at the deliver job's fault points
//     (RELAYDESK_FAULT_KILL_AT: after reserving an attempt's key; after the receiver took it, before
//     it was recorded). Every event is fanned out once, every notification ends sent, and every
//     receiver took exactly the notifications the ledger has for it, each as one unique delivery. A
//     kill between send and record makes the next worker send the same webhook-id again, which the
//     receiver drops (what makes a webhook safe to resend): raw repeats are expected and reported,
//     a second id for one notification never.
//   - Slack, which cannot drop a repeat: an attempt interrupted between `sending` and its record
//     ends `unknown`, and no message is ever posted twice.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SlackSimulator, startSlackSimulator } from '../simulators/slack.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../simulators/webhook-receiver.ts';
import { notifyDeliverJob, notifyFanoutJob } from '../src/modules/notify/job-refs.ts';
import { makeTicket, type TestApp, useTestApp } from './app.ts';

/**
 * Jobs of a killed worker come back after their lease (and the queue's retry delay). pg-boss gives a
 * whole fetched batch (up to 50 deliveries side by side) this long: much shorter, and on a busy machine
 * batches outlive it and their sends are aborted (recorded failed; the next attempt follows).
 */
const LEASE_SECONDS = 6;
const ENDPOINTS = 5;
const TICKETS = 80;
/** Each ticket is created (ticket.created) and then goes through these (ticket.status_changed). */
const STATUSES = ['open', 'pending', 'solved', 'closed'] as const;
const EVENTS = TICKETS * (1 + STATUSES.length);
const NOTIFICATIONS = EVENTS * ENDPOINTS;

type KillAt = 'notify.after-reserve' | 'notify.after-send';

let t: TestApp;
const children: ChildProcess[] = [];

interface Worker {
  child: ChildProcess;
  /** Resolves once the process says it runs (its jobs may have begun a moment before). */
  ready: Promise<void>;
}

/** A `relaydesk start --role worker` on the test database; with `killAt`, it SIGKILLs itself there. */
function startWorker(killAt?: KillAt): Worker {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: t.db.url,
    RELAYDESK_SECRET_KEY: t.secretKey.toString('base64'),
    RELAYDESK_JOB_LEASE_SECONDS: String(LEASE_SECONDS),
    RELAYDESK_ALLOW_PRIVATE_WEBHOOKS: '1',
    LOG_LEVEL: 'error',
  };
  delete env['RELAYDESK_FAULT_KILL_AT'];
  if (killAt) env['RELAYDESK_FAULT_KILL_AT'] = killAt;
  const child = spawn(process.execPath, [path.resolve('bin/relaydesk.mjs'), 'start', '--role', 'worker'], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let out = '';
  const ready = new Promise<void>((resolve) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('Relaydesk is running')) resolve();
    });
    child.once('exit', () => resolve());
  });
  return { child, ready };
}

/** Resolves with how the process ended: its exit code or the signal that ended it. */
const ended = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.exitCode !== null || child.signalCode !== null
      ? resolve({ code: child.exitCode, signal: child.signalCode })
      : child.once('exit', (code, signal) => resolve({ code, signal })),
  );

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `done` answers true, polling; answers whether it did before `timeoutMs`. */
async function until(done: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await done()) return true;
    await pause(everyMs);
  }
  return done();
}

/** The tenant's notification work still to do: events not fanned out, attempts queued, jobs pending. */
async function pending(tenantId: string) {
  const { rows } = await t.db.admin.query(
    `SELECT (SELECT count(*)::int FROM events WHERE tenant_id = $1 AND fanned_out_at IS NULL) AS unfanned,
            (SELECT count(*)::int FROM deliveries WHERE tenant_id = $1 AND purpose = 'notification' AND status = 'queued') AS queued,
            (SELECT count(*)::int FROM pgboss.job WHERE name = ANY($2::text[]) AND data->>'tenantId' = $1::text
                AND state IN ('created', 'retry', 'active')) AS jobs,
            (SELECT count(*)::int FROM delivery_keys WHERE tenant_id = $1 AND state <> 'done') AS open_keys`,
    [tenantId, [notifyFanoutJob.name, notifyDeliverJob.name]],
  );
  return rows[0] as { unfanned: number; queued: number; jobs: number; open_keys: number };
}

afterAll(async () => {
  for (const child of children) if (running(child)) child.kill('SIGKILL');
  await Promise.all(children.map(ended));
});

beforeAll(async () => {
  t = await useTestApp();
});

describe('webhook notifications under worker crashes', () => {
  const receivers: WebhookReceiver[] = [];
  /** Endpoint id → its receiver. */
  const receiverOf = new Map<string, WebhookReceiver>();
  const admin = () => t.a.adminToken.token;
  const received = () => receivers.reduce((n, r) => n + r.counts().size, 0);
  beforeAll(async () => {
    for (let i = 0; i < ENDPOINTS; i++) {
      const receiver = await startWebhookReceiver();
      const res = await t.call(admin(), 'POST', '/api/v1/webhook-endpoints', {
        url: `${receiver.url}/hooks/${i}`,
        events: ['ticket.created', 'ticket.status_changed'],
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      receiver.setSecrets([res.body.secret]);
      receivers.push(receiver);
      receiverOf.set(res.body.id, receiver);
    }
  });
  afterAll(() => Promise.all(receivers.map((r) => r.close())));

  it(
    'delivers 2,000 notifications, each counted exactly once, while workers are SIGKILLed',
    { timeout: 300_000 },
    async () => {
      const started = Date.now();
      // The events, recorded through the API (four callers side by side) while workers come and go.
      let producing = true;
      let next = 0;
      const produce = Promise.all(
        [...Array(4).keys()].map(async () => {
          for (let i = next++; i < TICKETS; i = next++) {
            const ticket = await makeTicket(t, admin(), { subject: `Crash ${i}` });
            for (const status of STATUSES) {
              const res = await t.call(admin(), 'PATCH', `/api/v1/tickets/${ticket.id}`, { status });
              expect(res.status, JSON.stringify(res.body)).toBe(200);
            }
          }
        }),
      ).finally(() => (producing = false));

      // Workers killed at random moments once they deliver, and runs that kill themselves at the
      // deliver job's fault points: through the plan, and for as long as events are recorded.
      const plan: (KillAt | undefined)[] = [
        undefined,
        'notify.after-send',
        undefined,
        'notify.after-reserve',
        undefined,
        'notify.after-send',
        undefined,
        'notify.after-reserve',
      ];
      const kills = { random: 0, 'notify.after-send': 0, 'notify.after-reserve': 0 };
      /** Attempts that a kill left between reserving their key and recording their outcome. */
      const interrupted = new Set<string>();
      for (let round = 0; (round < plan.length || producing) && received() < NOTIFICATIONS; round++) {
        const killAt = plan[round % plan.length];
        const worker = startWorker(killAt);
        if (killAt) {
          // It dies by itself at the first delivery that reaches the point (ended here if none does).
          await until(() => !running(worker.child), 30_000, 50);
          if (worker.child.signalCode === 'SIGKILL') kills[killAt]++;
          else worker.child.kill('SIGKILL');
        } else {
          // Once it is running and delivering, at a random moment.
          await worker.ready;
          const before = received();
          await until(() => received() > before, 30_000);
          await pause(500 + Math.random() * 1500);
          worker.child.kill('SIGKILL');
          kills.random++;
        }
        expect(await ended(worker.child)).toEqual({ code: null, signal: 'SIGKILL' });
        const { rows } = await t.db.admin.query(
          "SELECT delivery_id FROM delivery_keys WHERE tenant_id = $1 AND state <> 'done'",
          [t.a.tenant.id],
        );
        for (const r of rows) interrupted.add(r.delivery_id);
      }
      await produce;

      // One worker finishes what the killed ones left (their jobs come back after lease and retry delay).
      const last = startWorker();
      const settled = await until(
        async () => {
          const p = await pending(t.a.tenant.id);
          return p.unfanned === 0 && p.queued === 0 && p.jobs === 0;
        },
        150_000,
        250,
      );
      last.child.kill('SIGTERM');
      expect(await ended(last.child)).toEqual({ code: 0, signal: null });
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      expect(await pending(t.a.tenant.id)).toEqual({ unfanned: 0, queued: 0, jobs: 0, open_keys: 0 });
      expect(settled).toBe(true);

      // Every event of the flow, fanned out once: one first attempt per endpoint.
      const { rows: events } = await t.db.admin.query(
        'SELECT id, type, fanned_out_at FROM events WHERE tenant_id = $1',
        [t.a.tenant.id],
      );
      expect(events).toHaveLength(EVENTS);
      expect(events.filter((e) => e.type === 'ticket.created')).toHaveLength(TICKETS);
      expect(events.filter((e) => e.fanned_out_at === null)).toEqual([]);
      const { rows: attempts } = await t.db.admin.query(
        `SELECT id, channel, notification_id, destination, attempt, status, retryable, error_message,
                payload->'content'->>'eventId' AS event_id
           FROM deliveries WHERE tenant_id = $1 AND purpose = 'notification'`,
        [t.a.tenant.id],
      );
      expect(attempts.filter((a) => a.channel !== 'webhook')).toEqual([]);
      const first = attempts.filter((a) => a.attempt === 1);
      expect(first).toHaveLength(NOTIFICATIONS);
      const perEvent = new Map<string, string[]>();
      for (const a of first) perEvent.set(a.event_id, [...(perEvent.get(a.event_id) ?? []), a.destination]);
      expect(new Set(perEvent.keys())).toEqual(new Set(events.map((e) => e.id)));
      const endpoints = [...receiverOf.keys()].sort();
      for (const destinations of perEvent.values()) expect(destinations.sort()).toEqual(endpoints);

      // Every notification ended sent, in its last attempt: none left queued, none unknown, none
      // failed for good. An earlier attempt may have failed only as one whose batch outlived the
      // job's short lease here: its signal aborted the request and the next attempt, with the same
      // webhook-id, was queued behind it.
      const chains = new Map<string, any[]>();
      for (const a of attempts) chains.set(a.notification_id, [...(chains.get(a.notification_id) ?? []), a]);
      expect(chains.size).toBe(NOTIFICATIONS);
      const wrong = [...chains.values()]
        .map((chain) => chain.sort((x, y) => x.attempt - y.attempt))
        .filter(
          (chain) =>
            chain.at(-1).status !== 'sent' ||
            chain.some(
              (a, i) =>
                a.attempt !== i + 1 ||
                (i < chain.length - 1 &&
                  !(a.status === 'failed' && a.retryable && /aborted/.test(a.error_message))),
            ),
        );
      expect(wrong.slice(0, 3)).toEqual([]);
      const byStatus: Record<string, number> = {};
      for (const a of attempts) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
      expect(byStatus['sent']).toBe(NOTIFICATIONS);

      // Each receiver took exactly the notifications of its endpoint, every one as one unique
      // delivery, and refused nothing (a bad signature, a stale timestamp).
      let repeats = 0;
      let repeated = 0;
      for (const [endpointId, receiver] of receiverOf) {
        const expected = new Set(
          first.filter((a) => a.destination === endpointId).map((a) => a.notification_id),
        );
        expect(expected.size).toBe(EVENTS);
        const counts = receiver.counts();
        expect([...expected].filter((id) => !counts.has(id))).toEqual([]);
        expect(new Set(counts.keys())).toEqual(expected);
        expect(receiver.requests().filter((r) => r.status !== 200)).toEqual([]);
        for (const id of receiver.duplicates()) {
          repeated++;
          repeats += counts.get(id)! - 1;
          // A resend is the same notification: the same body every time.
          const bodies = new Set(
            receiver
              .requests()
              .filter((r) => r.id === id)
              .map((r) => r.body),
          );
          expect(bodies.size).toBe(1);
        }
      }
      expect(received()).toBe(NOTIFICATIONS);
      // Both fault points were reached, and a kill after the send had the next worker send that
      // notification again with its id.
      expect(kills['notify.after-send']).toBeGreaterThanOrEqual(1);
      expect(kills['notify.after-reserve']).toBeGreaterThanOrEqual(1);
      expect(repeated).toBeGreaterThanOrEqual(1);
      console.info(
        `notify crash (webhooks): ${NOTIFICATIONS} notifications in ${seconds} s; kills ${JSON.stringify(kills)}; ` +
          `${interrupted.size} attempts left mid-way by kills; ${repeats} raw repeats of ${repeated} webhook-ids ` +
          `(each counted once); attempts ${JSON.stringify(byStatus)}`,
      );
    },
  );
});

describe('Slack notifications under worker crashes', () => {
  const CHANNELS = ['C0CRASH001', 'C0CRASH002', 'C0CRASH003', 'C0CRASH004'];
  const SLACK_TICKETS = 4;
  let slack: SlackSimulator;
  // Tenant b: tenant a's webhook endpoints take no part here.
  const admin = () => t.b.adminToken.token;

  beforeAll(async () => {
    // Posts are paced by Relaydesk (one a second per channel); the simulator does not throttle here.
    slack = await startSlackSimulator({ postsPerSecond: 1000, burst: 1000 });
    for (const id of CHANNELS) slack.addChannel({ id, name: id.toLowerCase(), botIsMember: true });
    const connected = await t.call(admin(), 'PUT', '/api/v1/integrations/slack', {
      botToken: slack.botToken,
      apiBaseUrl: slack.apiBaseUrl,
    });
    expect(connected.status, JSON.stringify(connected.body)).toBe(200);
    for (const destination of CHANNELS) {
      const rule = await t.call(admin(), 'POST', '/api/v1/notification-rules', {
        event: 'ticket.created',
        channel: 'slack',
        destination,
      });
      expect(rule.status, JSON.stringify(rule.body)).toBe(201);
    }
  });
  afterAll(() => slack?.close());

  it(
    'ends an attempt interrupted between sending and its record unknown, never posted twice',
    { timeout: 120_000 },
    async () => {
      const subjects = [...Array(SLACK_TICKETS).keys()].map((i) => `Slack crash [${i}]`);
      for (const subject of subjects) await makeTicket(t, admin(), { subject });
      const notifications = SLACK_TICKETS * CHANNELS.length;

      // A run that dies right after Slack took a post, one killed at a random moment while it posts,
      // then one that finishes.
      for (const killAt of ['notify.after-send', undefined] as const) {
        const worker = startWorker(killAt);
        if (killAt) {
          expect(await until(() => !running(worker.child), 30_000, 50)).toBe(true);
        } else {
          await worker.ready;
          const before = slack.posts().length;
          await until(() => slack.posts().length > before, 30_000);
          await pause(Math.random() * 1500);
          worker.child.kill('SIGKILL');
        }
        expect(await ended(worker.child)).toEqual({ code: null, signal: 'SIGKILL' });
      }
      const last = startWorker();
      const settled = await until(
        async () => {
          const p = await pending(t.b.tenant.id);
          return p.unfanned === 0 && p.queued === 0 && p.jobs === 0;
        },
        90_000,
        250,
      );
      last.child.kill('SIGTERM');
      expect(await ended(last.child)).toEqual({ code: 0, signal: null });
      expect(settled).toBe(true);

      const { rows: attempts } = await t.db.admin.query(
        `SELECT id, channel, destination, attempt, status, error_message, started_at,
                payload->'content'->'ticket'->>'subject' AS subject
           FROM deliveries WHERE tenant_id = $1 AND purpose = 'notification' ORDER BY created_at, id`,
        [t.b.tenant.id],
      );
      expect(attempts.filter((a) => a.channel !== 'slack')).toEqual([]);
      // One attempt per ticket and channel: an unknown outcome is not tried again.
      expect(attempts).toHaveLength(notifications);
      expect(attempts.filter((a) => a.attempt !== 1)).toEqual([]);
      expect(new Set(attempts.map((a) => `${a.subject}|${a.destination}`)).size).toBe(notifications);

      // No message posted twice; each sent attempt posted once; an unknown one at most once.
      const postsOf = (a: { subject: string; destination: string }) =>
        slack.posts().filter((p) => p.channel === a.destination && p.text?.includes(a.subject));
      for (const a of attempts) {
        if (a.status === 'sent') expect(postsOf(a)).toHaveLength(1);
        else {
          expect(a.status).toBe('unknown');
          expect(a.error_message).toMatch(/stopped after the send began/);
          expect(postsOf(a).length).toBeLessThanOrEqual(1);
        }
      }
      const seen = new Set<string>();
      for (const p of slack.posts()) {
        const key = `${p.channel}|${subjects.find((s) => p.text?.includes(s))}`;
        expect(seen.has(key), `posted twice: ${key}`).toBe(false);
        seen.add(key);
      }
      // The kills after the send left attempts that Slack had taken: they are unknown, posted once.
      const unknownPosted = attempts.filter((a) => a.status === 'unknown' && postsOf(a).length === 1);
      expect(unknownPosted.length).toBeGreaterThanOrEqual(1);
      console.info(
        `notify crash (slack): ${notifications} notifications; ${slack.posts().length} posts; ` +
          `${attempts.filter((a) => a.status === 'unknown').length} unknown (${unknownPosted.length} of them posted)`,
      );
    },
  );
});
