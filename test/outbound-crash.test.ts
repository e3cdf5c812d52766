// An agent's reply whose worker is SIGKILLed in the middle of its send (RELAYDESK_FAULT_KILL_AT),
// over the real API, real worker processes and real SMTP (AUTH after STARTTLS, the simulator):
//   - killed after reserving the attempt's key, before the send: nothing left, and the next worker
//     sends it once;
//   - killed after the SMTP server took the mail, before it was recorded: the next worker cannot ask
//     an SMTP server whether it has the mail, so it marks the attempt `unknown` and sends no second copy.
// The job comes back to the next worker once its lease (3 s here) has run out and the queue's retry
// delay has passed.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SmtpSimulator, startSmtpSimulator } from '../simulators/smtp.ts';
import { defaultRegistry } from '../src/app.ts';
import { outboundSendJob } from '../src/modules/outbound/job-refs.ts';
import { createLogger } from '../src/platform/logging.ts';
import { JobQueue } from '../src/platform/queue/queue.ts';
import { makeTicket, type TestApp, useTestApp } from './app.ts';

const LEASE_SECONDS = 3;
const ADDRESS = 'support@crash-out.test';
const SMTP_USER = 'relay';
const SMTP_PASSWORD = 'crash-s3cret';

let t: TestApp;
let smtp: SmtpSimulator;
let queue: JobQueue;
let mailboxId: string;
const logger = createLogger('silent');
const children: ChildProcess[] = [];

const admin = () => t.a.adminToken.token;

/** A `relaydesk start --role worker` on the test database; with `killAt`, it SIGKILLs itself there. */
function startWorker(killAt?: 'outbound.after-reserve' | 'outbound.after-send'): ChildProcess {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: t.db.url,
    RELAYDESK_SECRET_KEY: t.secretKey.toString('base64'),
    RELAYDESK_JOB_LEASE_SECONDS: String(LEASE_SECONDS),
    LOG_LEVEL: 'error',
  };
  delete env['RELAYDESK_FAULT_KILL_AT'];
  if (killAt) env['RELAYDESK_FAULT_KILL_AT'] = killAt;
  const child = spawn(process.execPath, [path.resolve('bin/relaydesk.mjs'), 'start', '--role', 'worker'], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}

/** Resolves with how the process ended: its exit code or the signal that ended it. */
const ended = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.exitCode !== null || child.signalCode !== null
      ? resolve({ code: child.exitCode, signal: child.signalCode })
      : child.once('exit', (code, signal) => resolve({ code, signal })),
  );

async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  await ended(child);
}

/** An agent's public reply posted through the API: its delivery id and the Message-ID it goes out with. */
async function postReply(text: string): Promise<{ deliveryId: string; messageId: string }> {
  const ticket = await makeTicket(t, admin(), { requester: { email: 'carol@customer.test' } });
  const posted = await t.call(admin(), 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
    visibility: 'public',
    text,
    mailboxId,
  });
  expect(posted.status, JSON.stringify(posted.body)).toBe(201);
  expect(posted.body.delivery).toMatchObject({ status: 'queued', attempt: 1 });
  // The reply is the only thing to send: a worker that dies, dies on its job.
  const { rows } = await t.db.admin.query("SELECT id FROM deliveries WHERE status = 'queued'");
  expect(rows.map((r) => r.id)).toEqual([posted.body.delivery.id]);
  return { deliveryId: posted.body.delivery.id, messageId: `<${posted.body.messageId}>` };
}

const delivery = async (id: string) => {
  const res = await t.call(admin(), 'GET', `/api/v1/deliveries/${id}`);
  expect(res.status).toBe(200);
  return res.body as Record<string, any>;
};

const keyState = async (deliveryId: string) =>
  (await t.db.admin.query('SELECT state FROM delivery_keys WHERE delivery_id = $1', [deliveryId])).rows.map(
    (r) => r.state,
  );

const jobStates = async (deliveryId: string) =>
  (
    await t.db.admin.query("SELECT state FROM pgboss.job WHERE name = $1 AND data->>'deliveryId' = $2", [
      outboundSendJob.name,
      deliveryId,
    ])
  ).rows.map((r) => r.state);

const copiesOf = (messageId: string) => smtp.messages().filter((m) => m.messageId === messageId);

beforeAll(async () => {
  t = await useTestApp();
  smtp = await startSmtpSimulator({
    tls: 'starttls',
    auth: { username: SMTP_USER, password: SMTP_PASSWORD },
  });
  // The queues as a worker with the short lease makes them: a job takes its queue's lease when it
  // is enqueued, so they must exist like this before the API enqueues.
  queue = new JobQueue({
    connectionString: t.db.url,
    logger,
    registry: defaultRegistry({
      pool: t.db.pool,
      secretKey: t.secretKey,
      logger,
      clock: t.clock,
      jobLeaseSeconds: LEASE_SECONDS,
    }),
    supervise: false,
    schedule: false,
    poolSize: 2,
  });
  await queue.start();
  await queue.ensureQueues();
  const res = await t.call(admin(), 'POST', '/api/v1/mailboxes', {
    kind: 'mime',
    address: ADDRESS,
    displayName: 'Crash Support',
    settings: {
      smtp: { host: smtp.host, port: smtp.port, security: 'starttls', username: SMTP_USER, ca: smtp.ca },
    },
    credentials: { smtpPassword: SMTP_PASSWORD },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  mailboxId = res.body.id;
});

afterAll(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(children.map(ended));
  await queue?.stop({ graceful: false });
  await smtp?.close();
});

describe('an outbound send under a worker crash', () => {
  it(
    'killed after reserving its key, before the send: the next worker sends it exactly once',
    { timeout: 60_000 },
    async () => {
      const before = smtp.counts();
      const { deliveryId, messageId } = await postReply('Killed before the send.');

      const first = startWorker('outbound.after-reserve');
      expect(await ended(first)).toEqual({ code: null, signal: 'SIGKILL' });
      // Nothing reached the SMTP server; the key is reserved and the attempt never started.
      expect(smtp.counts()).toEqual(before);
      expect(copiesOf(messageId)).toEqual([]);
      expect(await keyState(deliveryId)).toEqual(['reserved']);
      expect(await delivery(deliveryId)).toMatchObject({ status: 'queued', startedAt: null });

      const second = startWorker();
      try {
        await smtp.waitFor(before.messages + 1, 45_000);
        await expect
          .poll(async () => (await delivery(deliveryId)).status, { timeout: 10_000, interval: 100 })
          .toBe('sent');
        await expect
          .poll(() => jobStates(deliveryId), { timeout: 10_000, interval: 100 })
          .toEqual(['completed']);
        expect(await keyState(deliveryId)).toEqual(['done']);
        expect(await delivery(deliveryId)).toMatchObject({
          status: 'sent',
          attempt: 1,
          errorCode: null,
          providerResponse: expect.stringMatching(/^250 /),
        });
        // Exactly one copy, the reply, sent over TLS by the mailbox's SMTP user.
        const copies = copiesOf(messageId);
        expect(copies).toHaveLength(1);
        expect(copies[0]).toMatchObject({ secure: true, authUser: SMTP_USER, to: ['carol@customer.test'] });
        expect(copies[0]!.raw.toString('utf8')).toContain('Killed before the send.');
        expect(smtp.counts().messages).toBe(before.messages + 1);
      } finally {
        await stopWorker(second);
      }
    },
  );

  it(
    'killed after the SMTP server took the mail, before it was recorded: unknown, never a second copy',
    { timeout: 60_000 },
    async () => {
      const before = smtp.counts();
      const { deliveryId, messageId } = await postReply('Killed after the send.');

      const first = startWorker('outbound.after-send');
      expect(await ended(first)).toEqual({ code: null, signal: 'SIGKILL' });
      // The server has the mail; the ledger only knows the send began.
      expect(copiesOf(messageId)).toHaveLength(1);
      expect(smtp.counts().messages).toBe(before.messages + 1);
      expect(await keyState(deliveryId)).toEqual(['sending']);
      const started = await delivery(deliveryId);
      expect(started).toMatchObject({ status: 'queued' });
      expect(started.startedAt).not.toBeNull();

      const second = startWorker();
      try {
        await expect
          .poll(async () => (await delivery(deliveryId)).status, { timeout: 45_000, interval: 200 })
          .toBe('unknown');
        await expect
          .poll(() => jobStates(deliveryId), { timeout: 10_000, interval: 100 })
          .toEqual(['completed']);
        expect(await keyState(deliveryId)).toEqual(['done']);
        const after = await delivery(deliveryId);
        expect(after).toMatchObject({ status: 'unknown', attempt: 1, sentAt: null, errorCode: null });
        expect(after.errorMessage).toMatch(/stopped after the send began/);
        expect(after.errorMessage).toMatch(/cannot be asked whether it took the mail/);
        // No second copy, and no further attempt queued behind this one.
        expect(copiesOf(messageId)).toHaveLength(1);
        expect(smtp.counts().messages).toBe(before.messages + 1);
        const { rows } = await t.db.admin.query('SELECT id FROM deliveries WHERE previous_id = $1', [
          deliveryId,
        ]);
        expect(rows).toEqual([]);
      } finally {
        await stopWorker(second);
      }
    },
  );
});
