// A renewal whose worker is SIGKILLed while its PATCH is in flight: nothing is left half-written,
// and the next worker finishes the job (the queue gives it back after its lease; its claim is still
// the mailbox's, so it acts).
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GraphSimulator, startGraphSimulator } from '../simulators/graph.ts';
import { defaultRegistry } from '../src/app.ts';
import { enqueueRenewal } from '../src/modules/inbound/upkeep.ts';
import { DEFAULT_UPKEEP } from '../src/platform/config.ts';
import { createLogger } from '../src/platform/logging.ts';
import { JobQueue } from '../src/platform/queue/queue.ts';
import { type TestApp, useTestApp } from './app.ts';

let t: TestApp;
let sim: GraphSimulator;
let appUrl: string;
let queue: JobQueue;
const logger = createLogger('silent');
const children: ChildProcess[] = [];

function startWorker(): ChildProcess {
  const child = spawn(process.execPath, [path.resolve('bin/relaydesk.mjs'), 'start', '--role', 'worker'], {
    env: {
      ...process.env,
      DATABASE_URL: t.db.url,
      RELAYDESK_SECRET_KEY: t.secretKey.toString('base64'),
      RELAYDESK_PUBLIC_URL: appUrl,
      RELAYDESK_PROVIDER_ORIGINS: 'http://127.0.0.1:*',
      RELAYDESK_JOB_LEASE_SECONDS: '3',
      LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}

const exited = (child: ChildProcess) =>
  new Promise<void>((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()),
  );

beforeAll(async () => {
  t = await useTestApp();
  appUrl = await t.app.listen({ host: '127.0.0.1', port: 0 });
  t.config.publicUrl = appUrl;
  sim = await startGraphSimulator();
  // The queues as a worker with a 3-second lease makes them (jobs take their queue's lease).
  queue = new JobQueue({
    connectionString: t.db.url,
    logger,
    registry: defaultRegistry({
      pool: t.db.pool,
      secretKey: t.secretKey,
      logger,
      clock: t.clock,
      jobLeaseSeconds: 3,
    }),
    supervise: false,
    schedule: false,
    poolSize: 2,
  });
  await queue.start();
  await queue.ensureQueues();
});

afterAll(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(children.map(exited));
  await queue?.stop({ graceful: false });
  await sim?.close();
});

describe('a renewal under a worker crash', () => {
  it(
    'is finished by the next worker after a SIGKILL mid-renewal, with nothing half-written',
    { timeout: 120_000 },
    async () => {
      const token = t.a.adminToken.token;
      const created = await t.call(token, 'POST', '/api/v1/mailboxes', {
        kind: 'graph',
        address: 'crash@upkeep.test',
        settings: { graph: { apiBaseUrl: sim.apiBaseUrl, tokenUrl: sim.tokenUrl } },
        credentials: sim.credentials,
      });
      expect(created.status).toBe(201);
      const mailbox = created.body;
      expect(mailbox.health.status).toBe('healthy');
      const subscriptionId = mailbox.health.subscriptionId as string;
      const before = mailbox.health.expiresAt as string;

      // The renewal's PATCH will hang long enough for its worker to die with it in flight.
      sim.fault({ pathPrefix: `/v1.0/subscriptions/${subscriptionId}`, method: 'PATCH', delayMs: 8_000 });
      const tokensBefore = sim.tokenRequests()['client_credentials'] ?? 0;
      const deps = {
        pool: t.db.pool,
        secretKey: t.secretKey,
        clock: t.clock,
        logger,
        publicUrl: appUrl,
        upkeep: DEFAULT_UPKEEP,
      };
      expect(
        await enqueueRenewal(deps, t.a.tenant.id, mailbox.id, (job, payload, options) =>
          queue.send(job, payload, options ?? {}),
        ),
      ).toBe(true);

      const first = startWorker();
      // The worker took the job and asked for a token: its PATCH follows at once, and hangs.
      await expect
        .poll(() => sim.tokenRequests()['client_credentials'] ?? 0, { timeout: 60_000, interval: 50 })
        .toBeGreaterThan(tokensBefore);
      await new Promise((r) => setTimeout(r, 500)); // let the PATCH leave (there is no event for "sent")
      first.kill('SIGKILL');
      await exited(first);

      // Nothing half-written: the mailbox still has its subscription and says it is healthy.
      const row = async () =>
        (
          await t.db.admin.query(
            'SELECT status, subscription_id, claim_id, last_renewal_result, expires_at FROM mailbox_health WHERE mailbox_id = $1',
            [mailbox.id],
          )
        ).rows[0];
      expect(await row()).toMatchObject({ status: 'healthy', subscription_id: subscriptionId });
      expect((await row()).claim_id).not.toBeNull();

      const second = startWorker();
      try {
        await expect
          .poll(async () => (await row()).last_renewal_result, { timeout: 60_000, interval: 200 })
          .toBe('renewed');
        const after = await row();
        expect(after).toMatchObject({ status: 'healthy', subscription_id: subscriptionId, claim_id: null });
        expect(new Date(after.expires_at).getTime()).toBeGreaterThan(Date.parse(before));
        // One subscription still, the same one: the crash made no second subscription.
        expect(sim.subscriptions().map((s) => s.id)).toEqual([subscriptionId]);
        await expect
          .poll(async () =>
            (
              await t.db.admin.query(
                "SELECT state FROM pgboss.job WHERE name = 'mailbox.renew' AND data->>'mailboxId' = $1",
                [mailbox.id],
              )
            ).rows.map((r) => r.state),
          )
          .toEqual(['completed']);
      } finally {
        second.kill('SIGTERM');
        await exited(second);
      }
    },
  );
});
