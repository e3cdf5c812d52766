// Microsoft Graph ingress and fetch, against the local Graph simulator (simulators/graph.ts).
import { tokenAuthenticator } from '../tokens/service.ts';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGraphSimulator, type GraphSimulator } from '../../../simulators/graph.ts';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { createPool } from '../../platform/db/pool.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { buildServer } from '../../platform/http/server.ts';
import { createLogger } from '../../platform/logging.ts';
import { PermanentJobError } from '../../platform/queue/registry.ts';
import { RateLimited } from '../../platform/provider-errors.ts';
import { HOOK_ROUTES, ROUTES } from '../../app.ts';
import { processInboundJob } from './job-refs.ts';
import { inboundJobs } from './jobs.ts';
import { recordGraphSubscription } from './mailboxes.ts';
import { processInbound } from './process.ts';
import { GraphClient } from './providers/graph/client.ts';

let t: TestApp;
let sim: GraphSimulator;
let appUrl: string;
let mailboxId: string;
/** The subscription recorded for the mailbox, which every notification names. */
let subscriptionId: string;
const clientState = randomBytes(16).toString('hex');
const deps = () => t.inboundDeps();
const USER = 'helpdesk@contoso.test';

const raw = (subject: string) =>
  Buffer.from(
    [
      `From: Dana <dana@fabrikam.test>`,
      `To: ${USER}`,
      `Subject: ${subject}`,
      `Message-ID: <${randomBytes(6).toString('hex')}@fabrikam.test>`,
      '',
      `About ${subject}`,
    ].join('\r\n'),
  );

const inboundRows = async () =>
  (
    await t.db.admin.query(
      'SELECT id, status, reason, pointer FROM inbound_messages WHERE mailbox_id = $1 ORDER BY created_at, id',
      [mailboxId],
    )
  ).rows;
const jobCount = async (name: string) =>
  (await t.db.admin.query('SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1', [name])).rows[0]
    .n as number;

beforeAll(async () => {
  t = await useTestApp();
  await t.queue.boss.createQueue('inbound.process');
  await t.queue.boss.createQueue('mailbox.lifecycle');
  appUrl = await t.app.listen({ host: '127.0.0.1', port: 0 });
  sim = await startGraphSimulator();
  const res = await t.call(t.a.adminToken.token, 'POST', '/api/v1/mailboxes', {
    kind: 'graph',
    address: USER,
    settings: { graph: { apiBaseUrl: sim.apiBaseUrl, tokenUrl: sim.tokenUrl } },
    credentials: sim.credentials,
  });
  expect(res.status).toBe(201);
  mailboxId = res.body.id;
  // What subscription upkeep does: subscribe (Graph runs the handshake against us) and keep the clientState.
  const client = new GraphClient(
    { apiBaseUrl: sim.apiBaseUrl, tokenUrl: sim.tokenUrl },
    sim.credentials,
    t.clock,
  );
  const sub = await client.createSubscription({
    resource: `users/${USER}/mailFolders('inbox')/messages`,
    notificationUrl: `${appUrl}/hooks/graph/${mailboxId}`,
    clientState,
    expirationDateTime: new Date(Date.now() + 3 * 86_400_000).toISOString(),
  });
  await withTenant(t.db.pool, t.a.tenant.id, (tx) =>
    recordGraphSubscription(tx, mailboxId, {
      subscriptionId: sub.id,
      clientState,
      expiresAt: new Date(sub.expirationDateTime),
    }),
  );
  subscriptionId = sub.id;
});

afterAll(async () => {
  await sim?.close();
});

describe('Graph webhook', () => {
  it('answers the validation handshake with the decoded token as text/plain', async () => {
    const res = await fetch(
      `${appUrl}/hooks/graph/${mailboxId}?validationToken=${encodeURIComponent('Validation: Token <1> & more')}`,
      {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
      },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe('Validation: Token <1> & more');
    expect(sim.subscriptions()).toHaveLength(1); // the simulator's own handshake passed too
  });

  it('turns a change notification into one pointer job, and the job into a ticket fetched from Graph', async () => {
    const before = (await inboundRows()).length;
    const id = await sim.deliver(USER, raw('Laptop will not boot'));
    const rows = await inboundRows();
    expect(rows.length).toBe(before + 1);
    const row = rows.at(-1)!;
    expect(row).toMatchObject({ status: 'queued', pointer: { messageId: id } });
    const outcome = await processInbound(deps(), {
      tenantId: t.a.tenant.id,
      inboundId: row.id,
      lastAttempt: false,
    });
    expect(outcome.status).toBe('created');
    const ticket = await t.call(t.a.adminToken.token, 'GET', `/api/v1/tickets/${outcome.ticketId}`);
    expect(ticket.body.subject).toBe('Laptop will not boot');
    expect(sim.log.some((l) => l.path.endsWith(`/messages/${id}/$value`) && l.status === 200)).toBe(true);
  });

  it('accepts a batch of ten notifications in one POST: ten records, ten jobs', async () => {
    const before = (await inboundRows()).length;
    const jobsBefore = await jobCount('inbound.process');
    const value = Array.from({ length: 10 }, (_, i) => ({
      subscriptionId,
      clientState,
      changeType: 'created',
      resource: `Users/${USER}/Messages/batch-${i}`,
      resourceData: { id: `batch-${i}` },
    }));
    const res = await fetch(`${appUrl}/hooks/graph/${mailboxId}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value }),
    });
    expect(res.status).toBe(202);
    expect((await inboundRows()).length).toBe(before + 10);
    expect(await jobCount('inbound.process')).toBe(jobsBefore + 10);
  });

  it('refuses a wrong clientState with 401 and stores nothing', async () => {
    const before = (await inboundRows()).length;
    const jobsBefore = await jobCount('inbound.process');
    for (const states of [['forged'], [clientState, 'forged'], [undefined]]) {
      const value = states.map((s, i) => ({
        subscriptionId,
        clientState: s,
        changeType: 'created',
        resourceData: { id: `x-${i}` },
      }));
      const res = await fetch(`${appUrl}/hooks/graph/${mailboxId}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ value }),
      });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { code: string }).code).toBe('webhook_signature_invalid');
    }
    expect((await inboundRows()).length).toBe(before);
    expect(await jobCount('inbound.process')).toBe(jobsBefore);
    const unknown = await fetch(`${appUrl}/hooks/graph/01a20430-e963-7a16-98d1-c69cf56067c7`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: [{ clientState }] }),
    });
    expect(unknown.status).toBe(404);
  });

  it('refuses a notification for another subscription, even with the right clientState', async () => {
    const before = (await inboundRows()).length;
    for (const other of ['forged-subscription', undefined]) {
      const res = await fetch(`${appUrl}/hooks/graph/${mailboxId}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          value: [
            { subscriptionId, clientState, changeType: 'created', resourceData: { id: 'sub-ok' } },
            { subscriptionId: other, clientState, changeType: 'created', resourceData: { id: 'sub-other' } },
          ],
        }),
      });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { code: string }).code).toBe('webhook_signature_invalid');
    }
    expect((await inboundRows()).length).toBe(before);
  });

  it('answers the validation handshake only for a Graph mailbox that exists', async () => {
    const ours = await fetch(`${appUrl}/hooks/graph/${mailboxId}?validationToken=abc%20def`, {
      method: 'POST',
    });
    expect(ours.status).toBe(200);
    expect(await ours.text()).toBe('abc def');
    const mime = await t.call(t.a.adminToken.token, 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: 'handshake-mime@a.example',
    });
    for (const id of ['01a20430-e963-7a16-98d1-c69cf56067c7', mime.body.id]) {
      const res = await fetch(`${appUrl}/hooks/graph/${id}?validationToken=abc`, { method: 'POST' });
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(await res.text()).not.toContain('abc');
    }
  });

  it('enqueues lifecycle notifications for subscription upkeep', async () => {
    const before = await jobCount('mailbox.lifecycle');
    const status = await sim.lifecycle(sim.subscriptions()[0]!.id, 'reauthorizationRequired');
    expect(status).toBe(202);
    expect(await jobCount('mailbox.lifecycle')).toBe(before + 1);
  });

  it('answers 503 for the whole batch when the database is down, so Graph retries', async () => {
    const deadPool = createPool({
      connectionString: 'postgres://nobody:x@127.0.0.1:1/none',
      connectionTimeoutMillis: 500,
    });
    const down = await buildServer(
      {
        config: { bodyLimit: 1024 * 1024 },
        pool: deadPool,
        logger: createLogger('silent'),
        queue: t.queue,
        secretKey: t.secretKey,
        clock: t.clock,
        authenticate: tokenAuthenticator({ pool: deadPool, clock: t.clock }),
      },
      ROUTES,
      HOOK_ROUTES,
    );
    try {
      const res = await down.inject({
        method: 'POST',
        url: `/hooks/graph/${mailboxId}`,
        headers: { 'content-type': 'application/json' },
        payload: {
          value: [
            { subscriptionId, clientState, resourceData: { id: 'a' } },
            { subscriptionId, clientState, resourceData: { id: 'b' } },
          ],
        },
      });
      expect(res.statusCode).toBe(503);
      expect(res.json().code).toBe('database_unavailable');
    } finally {
      await down.close();
      await deadPool.end();
    }
  });
});

describe('Graph fetch failures', () => {
  const enqueueNotification = async (messageId: string) => {
    await fetch(`${appUrl}/hooks/graph/${mailboxId}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        value: [{ subscriptionId, clientState, changeType: 'created', resourceData: { id: messageId } }],
      }),
    });
    return (await inboundRows()).at(-1)!;
  };

  it('skips a message that is gone by the time it is fetched (source_unavailable), without retrying', async () => {
    const id = await sim.deliver(USER, raw('Deleted quickly'), { notify: false });
    const row = await enqueueNotification(id);
    sim.remove(USER, id);
    const outcome = await processInbound(deps(), {
      tenantId: t.a.tenant.id,
      inboundId: row.id,
      lastAttempt: false,
    });
    expect(outcome).toMatchObject({ status: 'skipped', reason: 'source_unavailable' });
  });

  it('honours 429 Retry-After by rescheduling the job for then', async () => {
    const id = await sim.deliver(USER, raw('Throttled'), { notify: false });
    const row = await enqueueNotification(id);
    sim.fault({ pathPrefix: `/v1.0/users/`, status: 429, retryAfter: 7 });
    await expect(
      processInbound(deps(), { tenantId: t.a.tenant.id, inboundId: row.id, lastAttempt: false }),
    ).rejects.toBeInstanceOf(RateLimited);
    const sent: { payload: unknown; delaySeconds?: number }[] = [];
    const handler = inboundJobs(deps()).find((d) => d.name === processInboundJob.name)!.handler;
    sim.fault({ pathPrefix: `/v1.0/users/`, status: 429, retryAfter: 7 });
    t.clock.freeze();
    const result = await handler(
      { tenantId: t.a.tenant.id, inboundId: row.id },
      {
        jobId: 'j',
        attempt: 1,
        lastAttempt: false,
        logger: createLogger('silent'),
        signal: new AbortController().signal,
        send: async (_ref, payload, options) => {
          sent.push({
            payload,
            ...(options?.delaySeconds !== undefined ? { delaySeconds: options.delaySeconds } : {}),
          });
          return 'next';
        },
        sendEach: async () => {
          throw new Error('not expected here');
        },
      },
    );
    expect(result).toEqual({ rescheduledInSeconds: 7 });
    expect(sent).toHaveLength(1);
    // Exactly the seven seconds Graph asked for, counted by the queue's database.
    expect(sent[0]!.delaySeconds).toBe(7);
    // Once Graph answers, the same record completes.
    const outcome = await processInbound(deps(), {
      tenantId: t.a.tenant.id,
      inboundId: row.id,
      lastAttempt: false,
    });
    expect(outcome.status).toBe('created');
  });

  it('retries a 5xx, and marks the record failed on the last attempt', async () => {
    const id = await sim.deliver(USER, raw('Flaky'), { notify: false });
    const row = await enqueueNotification(id);
    sim.fault({ pathPrefix: `/v1.0/users/`, status: 503, times: 2 });
    await expect(
      processInbound(deps(), { tenantId: t.a.tenant.id, inboundId: row.id, lastAttempt: false }),
    ).rejects.toThrow();
    expect((await inboundRows()).find((r) => r.id === row.id)).toMatchObject({ status: 'queued' });
    await expect(
      processInbound(deps(), { tenantId: t.a.tenant.id, inboundId: row.id, lastAttempt: true }),
    ).rejects.toThrow();
    expect((await inboundRows()).find((r) => r.id === row.id)).toMatchObject({ status: 'failed' });
  });

  it('dead-letters at once when Graph refuses the credentials (401)', async () => {
    const id = await sim.deliver(USER, raw('No access'), { notify: false });
    const row = await enqueueNotification(id);
    sim.fault({ pathPrefix: `/v1.0/users/`, status: 401 });
    await expect(
      processInbound(deps(), { tenantId: t.a.tenant.id, inboundId: row.id, lastAttempt: false }),
    ).rejects.toBeInstanceOf(PermanentJobError);
    expect((await inboundRows()).find((r) => r.id === row.id)).toMatchObject({ status: 'failed' });
  });
});
