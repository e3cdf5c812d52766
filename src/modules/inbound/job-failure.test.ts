// An inbound record follows its job to the end. A job that fails every attempt (here with a retry
// limit of 2 and no delay, instead of the minutes of the real policy), one whose attempts all fail
// before the record is even marked, and one whose worker died on its last attempt (nothing ran to
// say so; the job reached the dead-letter queue through its expired lease) all leave the record
// `failed`, with the error and the attempts made, never `queued` or `processing`.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { createLogger } from '../../platform/logging.ts';
import { JobQueue } from '../../platform/queue/queue.ts';
import { deadLetterName, JobRegistry } from '../../platform/queue/registry.ts';
import { processInboundJob } from './job-refs.ts';
import { inboundJobs } from './jobs.ts';

let t: TestApp;
let queue: JobQueue;
let graphMailbox: string;
let mimeMailbox: string;

const record = async (id: string) =>
  (
    await t.db.admin.query<{ status: string; reason: string | null; attempts: number }>(
      'SELECT status, reason, attempts FROM inbound_messages WHERE id = $1',
      [id],
    )
  ).rows[0]!;

/** An inbound record as Graph ingress writes it (the test's own setup: the webhook is tested elsewhere). */
async function graphRecord(): Promise<string> {
  const id = randomUUID();
  await t.db.admin.query(
    `INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer) VALUES ($1, $2, $3, 'graph', $4)`,
    [t.a.tenant.id, id, graphMailbox, JSON.stringify({ messageId: `AAMk-${id}` })],
  );
  return id;
}

beforeAll(async () => {
  t = await useTestApp();
  const token = t.a.adminToken.token;
  // Nothing listens on port 1 of the loopback: every fetch fails as a transient provider error.
  graphMailbox = (
    await t.call(token, 'POST', '/api/v1/mailboxes', {
      kind: 'graph',
      address: 'unreachable@contoso.test',
      settings: { graph: { apiBaseUrl: 'http://127.0.0.1:1/v1.0', tokenUrl: 'http://127.0.0.1:1/token' } },
      credentials: { tenantId: 'contoso', clientId: 'relaydesk', clientSecret: 'secret' },
    })
  ).body.id;
  mimeMailbox = (
    await t.call(token, 'POST', '/api/v1/mailboxes', { kind: 'mime', address: 'mime@failure.test' })
  ).body.id;
  // The inbound jobs with a small retry policy; the queue supervised every second (expired leases).
  const registry = new JobRegistry().register(
    ...inboundJobs(t.inboundDeps()).map((d) => ({
      ...d,
      retry: { limit: 2, delaySeconds: 0, backoff: false },
    })),
  );
  queue = new JobQueue({
    connectionString: t.db.url,
    logger: createLogger('silent'),
    registry,
    supervise: true,
    schedule: false,
    superviseIntervalSeconds: 1,
    poolSize: 4,
  });
  await queue.start();
  await queue.ensureQueues();
});

afterAll(async () => {
  await queue?.stop({ graceful: false });
});

describe('an inbound record follows its job', () => {
  it('ends failed when the worker died on the last attempt and the job expired into the dead-letter queue', async () => {
    const id = await graphRecord();
    // One attempt allowed, a one-second lease; a "worker" takes it and is never heard of again.
    await queue.boss.send(
      processInboundJob.name,
      { tenantId: t.a.tenant.id, inboundId: id },
      {
        retryLimit: 0,
        expireInSeconds: 1,
      },
    );
    const [taken] = await queue.boss.fetch(processInboundJob.name);
    expect(taken?.data).toEqual({ tenantId: t.a.tenant.id, inboundId: id });
    // What that worker had written before it died: its record under way.
    await t.db.admin.query("UPDATE inbound_messages SET status = 'processing', attempts = 1 WHERE id = $1", [
      id,
    ]);
    // The supervisor expires the lease and dead-letters the job; the queue reports the dead letter.
    await expect
      .poll(
        async () => {
          await queue.settleDeadLetters();
          return (await record(id)).status;
        },
        { timeout: 20_000, interval: 200 },
      )
      .toBe('failed');
    expect(await record(id)).toMatchObject({
      attempts: 1,
      reason: expect.stringMatching(/^failed after 1 attempt: /),
    });
    // Re-driven and reprocessed since, a record is left to its new job (the old dead letter is history).
    await t.db.admin.query("UPDATE inbound_messages SET status = 'queued', reason = NULL WHERE id = $1", [
      id,
    ]);
    const fresh = new JobQueue({
      connectionString: t.db.url,
      logger: createLogger('silent'),
      registry: queue.registry,
      supervise: false,
      schedule: false,
      poolSize: 1,
    });
    await fresh.start();
    try {
      expect(await fresh.settleDeadLetters()).toBeGreaterThanOrEqual(1); // a new process reads every dead letter
    } finally {
      await fresh.stop({ graceful: false });
    }
    expect((await record(id)).status).toBe('queued');
    await t.db.admin.query("UPDATE inbound_messages SET status = 'failed' WHERE id = $1", [id]);
  });

  it('ends failed after the last of its attempts, with the error and every attempt counted', async () => {
    await queue.startWorkers([processInboundJob.name]);
    const id = await graphRecord();
    await queue.send(processInboundJob, { tenantId: t.a.tenant.id, inboundId: id });
    await expect
      .poll(async () => (await record(id)).status, { timeout: 20_000, interval: 100 })
      .toBe('failed');
    expect(await record(id)).toMatchObject({ attempts: 3, reason: expect.stringMatching(/^Transient: /) });
    // A provider that stays unreachable is what the dead-letter queue is for.
    await expect
      .poll(async () => (await queue.deadLetters({ queue: processInboundJob.name })).map((d) => d.payload))
      .toContainEqual({ tenantId: t.a.tenant.id, inboundId: id });
  });

  it('ends failed when every attempt fails before the record is even marked, attempts counted', async () => {
    // No worker may take the upload's job before the failure is in place.
    await queue.boss.offWork(processInboundJob.name);
    const accepted = await t.app.inject({
      method: 'POST',
      url: `/api/v1/mailboxes/${mimeMailbox}/messages`,
      headers: { authorization: `Bearer ${t.a.adminToken.token}`, 'content-type': 'message/rfc822' },
      payload: 'From: a@example.org\r\nSubject: doomed\r\n\r\nbody',
    });
    // Injected before the job can run: marking this record processing fails, every time.
    const id = accepted.json().inboundId as string;
    await t.db.admin.query(`CREATE FUNCTION refuse_marking() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.status = 'processing' THEN RAISE EXCEPTION 'cannot mark'; END IF; RETURN NEW; END $$`);
    await t.db.admin.query(
      `CREATE TRIGGER refuse_marking BEFORE UPDATE ON inbound_messages FOR EACH ROW
       WHEN (NEW.id = '${id}'::uuid) EXECUTE FUNCTION refuse_marking()`,
    );
    try {
      await queue.startWorkers([processInboundJob.name]);
      await queue.send(processInboundJob, { tenantId: t.a.tenant.id, inboundId: id });
      await expect
        .poll(async () => (await record(id)).status, { timeout: 20_000, interval: 100 })
        .toBe('failed');
      // The record never reached processing, yet it says how many attempts its job made.
      await expect.poll(async () => (await record(id)).attempts, { timeout: 5_000 }).toBe(3);
      expect((await record(id)).reason).toMatch(/cannot mark/);
    } finally {
      await t.db.admin.query('DROP TRIGGER refuse_marking ON inbound_messages');
      await t.db.admin.query('DROP FUNCTION refuse_marking()');
    }
    // The record is marked failed inside the last attempt; the job reaches the dead-letter queue
    // when that attempt's failure is recorded, a moment later.
    await expect
      .poll(async () => await queue.deadLetters({ queue: processInboundJob.name }))
      .toContainEqual(
        expect.objectContaining({
          queue: processInboundJob.name,
          payload: { tenantId: t.a.tenant.id, inboundId: id },
        }),
      );
    expect(deadLetterName(processInboundJob.name)).toBe('inbound.process__dlq');
  });
});
