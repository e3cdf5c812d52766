// Notifications end to end on a real database: events recorded where they happen, dispatched once,
// fanned out by the tenant's rules (recipients, preferred channels and fallbacks, quiet hours,
// conditions), delivered through a channel adapter to a webhook receiver and through outbound mail,
// a terminal failure becoming a `delivery.failed` event; the rules API and its tenant isolation.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startWebhookReceiver, type WebhookReceiver } from '../../../simulators/webhook-receiver.ts';
import { makePerson, makeTicket, type TestApp, useTestApp } from '../../../test/app.ts';
import { failWritesAsLostConnection } from '../../../test/outage.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { createLogger } from '../../platform/logging.ts';
import { messageIdKey } from '../inbound/signing.ts';
import { outboundSendJob } from '../outbound/job-refs.ts';
import { closeAbandonedAttempt } from '../outbound/ledger.ts';
import { appendMessage } from '../tickets/messages.ts';
import { createTenant } from '../tenants/service.ts';
import { dropOldEvents, recordEvent, redispatchEvent } from '../events/events.ts';
import { webhookChannel } from '../webhooks/channel.ts';
import type { AdapterChannel, ChannelAdapter } from './channel.ts';
import { deliverNotification, deliverNotificationBatch } from './deliver.ts';
import { dispatchEvents } from './dispatcher.ts';
import { fanOutEvent } from './fanout.ts';
import { notifyDeliverJob, notifyFanoutJob } from './job-refs.ts';
import { quietUntil } from './quiet-hours.ts';

let t: TestApp;
let receiver: WebhookReceiver;
let adapters: Map<AdapterChannel, ChannelAdapter>;
const logger = createLogger('silent');
const admin = () => t.a.adminToken.token;

const ctx = () => ({ send: t.queue.send.bind(t.queue), sendEach: t.queue.sendEach.bind(t.queue) }) as never;

/** Dispatches every recorded event and runs the fan-out jobs, as the worker would. */
async function fanOutAll(): Promise<void> {
  await dispatchEvents({ pool: t.db.pool, queue: t.queue, adapters });
  const { rows } = await t.db.admin.query<{ id: string; data: { tenantId: string; eventId: string } }>(
    `DELETE FROM pgboss.job WHERE name = $1 RETURNING id, data`,
    [notifyFanoutJob.name],
  );
  for (const job of rows) await fanOutEvent(deps(), job.data, ctx());
}

/** Runs the queued deliver jobs (those not held for later), as the worker would. */
async function deliverAll(): Promise<Record<string, unknown>[]> {
  const { rows } = await t.db.admin.query<{ data: { tenantId: string; deliveryId: string } }>(
    `DELETE FROM pgboss.job WHERE name = $1 AND start_after <= now() RETURNING data`,
    [notifyDeliverJob.name],
  );
  const out = [];
  for (const job of rows)
    out.push(
      await deliverNotification({ pool: t.db.pool, logger, adapters, leaseSeconds: 60 }, job.data, ctx()),
    );
  return out;
}

const deps = () => ({ pool: t.db.pool, clock: t.clock, messageIdKey: messageIdKey(t.secretKey), adapters });

async function notifications(ticketId: string) {
  const { rows } = await t.db.admin.query(
    `SELECT id, channel, destination, status, skip_reason, payload, notification_id, attempt, error_code
       FROM deliveries WHERE ticket_id = $1 AND purpose = 'notification' ORDER BY created_at, id`,
    [ticketId],
  );
  return rows;
}

let endpoints = 0;
async function makeEndpoint(events: string[]) {
  endpoints++;
  const res = await t.call(admin(), 'POST', '/api/v1/webhook-endpoints', {
    url: `${receiver.url}/hooks/${endpoints}`,
    events,
  });
  expect(res.status).toBe(201);
  receiver.setSecrets([res.body.secret]);
  return { ...res.body, path: `/hooks/${endpoints}` };
}

beforeAll(async () => {
  t = await useTestApp();
  receiver = await startWebhookReceiver();
  adapters = new Map<AdapterChannel, ChannelAdapter>([
    [
      'webhook',
      webhookChannel({ pool: t.db.pool, secretKey: t.secretKey, clock: t.clock, logger, allowPrivate: true }),
    ],
  ]);
  for (const q of [notifyFanoutJob.name, notifyDeliverJob.name, outboundSendJob.name, 'inbound.process'])
    await t.queue.boss.createQueue(q).catch(() => undefined);
});
afterAll(() => receiver.close());
beforeEach(async () => {
  receiver.clear();
  t.clock.unfreeze();
  await fanOutAll(); // whatever earlier tests left
});

describe('rules', () => {
  it('starts a tenant with the defaults and keeps rules per tenant', async () => {
    const list = (await t.call(admin(), 'GET', '/api/v1/notification-rules')).body.items;
    expect(list.map((r: any) => [r.event, r.recipients, r.channel]).sort()).toEqual(
      [
        ['mailbox.health_changed', [{ type: 'role', role: 'admin' }], 'preferred'],
        ['sla.breached', [{ type: 'assignee' }], 'preferred'],
        ['ticket.assigned', [{ type: 'assignee' }], 'preferred'],
        ['ticket.customer_replied', [{ type: 'assignee' }], 'preferred'],
      ].sort(),
    );
    const created = await t.call(admin(), 'POST', '/api/v1/notification-rules', {
      event: 'ticket.created',
      recipients: [{ type: 'role', role: 'admin' }],
      channel: 'email',
      conditions: { priority: ['urgent'] },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const tokenB = t.b.adminToken.token;
    expect((await t.call(tokenB, 'GET', `/api/v1/notification-rules/${id}`)).status).toBe(404);
    const putByB = await t.call(tokenB, 'PUT', `/api/v1/notification-rules/${id}`, {
      event: 'ticket.created',
      channel: 'email',
      recipients: [{ type: 'assignee' }],
    });
    expect(putByB.body).toMatchObject({ code: 'not_found' });
    expect((await t.call(tokenB, 'DELETE', `/api/v1/notification-rules/${id}`)).status).toBe(404);
    expect((await t.call(tokenB, 'POST', `/api/v1/notification-rules/${id}/test`)).status).toBe(404);
    expect(
      (await t.call(tokenB, 'GET', '/api/v1/notification-rules')).body.items.some((r: any) => r.id === id),
    ).toBe(false);
    const replaced = await t.call(admin(), 'PUT', `/api/v1/notification-rules/${id}`, {
      event: 'ticket.created',
      recipients: [{ type: 'assignee' }],
      channel: 'preferred',
      fallback: ['slack'],
      enabled: false,
    });
    expect(replaced.body).toMatchObject({ enabled: false, fallback: ['slack'], conditions: {} });
    expect((await t.call(admin(), 'DELETE', `/api/v1/notification-rules/${id}`)).status).toBe(204);
    expect((await t.call(admin(), 'GET', `/api/v1/notification-rules/${id}`)).status).toBe(404);
  });

  it.each([
    ['no recipients and no destination', { event: 'ticket.created', channel: 'email' }],
    [
      'a webhook rule without its endpoint',
      { event: 'ticket.created', channel: 'webhook', recipients: [{ type: 'assignee' }] },
    ],
    [
      'an endpoint of nobody',
      { event: 'ticket.created', channel: 'webhook', destination: '0190f000-0000-7000-8000-000000000000' },
    ],
    ['a destination on email', { event: 'ticket.created', channel: 'email', destination: 'x@example.com' }],
    [
      'a role recipient without its role',
      { event: 'ticket.created', channel: 'email', recipients: [{ type: 'role' }] },
    ],
    ['an unknown event', { event: 'ticket.exploded', channel: 'email', recipients: [{ type: 'assignee' }] }],
    [
      'a person of no tenant',
      {
        event: 'ticket.created',
        channel: 'email',
        recipients: [{ type: 'person', personId: '0190f000-0000-7000-8000-000000000000' }],
      },
    ],
  ])('refuses %s', async (_name, body) => {
    const res = await t.call(admin(), 'POST', '/api/v1/notification-rules', body);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
  });

  it("refuses another tenant's person and endpoint", async () => {
    const tokenB = t.b.adminToken.token;
    const other = await makePerson(t, tokenB, {});
    const res = await t.call(admin(), 'POST', '/api/v1/notification-rules', {
      event: 'ticket.created',
      channel: 'email',
      recipients: [{ type: 'person', personId: other.id }],
    });
    expect(res.status).toBe(400);
    const endpoint = await t.call(tokenB, 'POST', '/api/v1/webhook-endpoints', {
      url: `${receiver.url}/b`,
      events: ['ticket.created'],
    });
    const viaB = await t.call(admin(), 'POST', '/api/v1/notification-rules', {
      event: 'ticket.created',
      channel: 'webhook',
      destination: endpoint.body.id,
    });
    expect(viaB.status).toBe(400);
  });
});

describe('fan-out and delivery', () => {
  it('tells the assignee of a customer reply by email, not the agent who caused it, once', async () => {
    const agent = await makePerson(t, admin(), { displayName: 'Ann Agent', email: 'ann@agents.test' });
    const ticket = await makeTicket(t, admin(), { assigneeId: agent.id });
    await fanOutAll();
    // Assigned at creation: the assignee hears of it (default rule) by email, their only channel;
    // the tenant has no mailbox yet, so the mail is recorded skipped.
    const { rows: skipped } = await t.db.admin.query(
      "SELECT channel, destination, skip_reason FROM deliveries WHERE ticket_id = $1 AND status = 'skipped'",
      [ticket.id],
    );
    expect(skipped).toEqual([
      { channel: 'email', destination: 'ann@agents.test', skip_reason: 'no_mailbox' },
    ]);

    // The customer replies: the assignee hears of it.
    await withTenant(t.db.pool, t.a.tenant.id, (tx) =>
      appendMessage(tx, {
        ticketId: ticket.id,
        authorId: ticket.requesterId,
        visibility: 'public',
        text: 'Still broken',
      }),
    );
    await fanOutAll();
    await fanOutAll(); // a second run finds nothing new
    const { rows: events } = await t.db.admin.query(
      'SELECT type, fanned_out_at IS NOT NULL AS done FROM events WHERE ticket_id = $1 ORDER BY occurred_at',
      [ticket.id],
    );
    expect(events).toEqual([
      { type: 'ticket.created', done: true },
      { type: 'ticket.assigned', done: true },
      { type: 'ticket.customer_replied', done: true },
    ]);
    const { rows: mails } = await t.db.admin.query(
      "SELECT destination, status, skip_reason FROM deliveries WHERE ticket_id = $1 AND purpose = 'notification' ORDER BY created_at",
      [ticket.id],
    );
    expect(mails).toEqual([
      { destination: 'ann@agents.test', status: 'skipped', skip_reason: 'no_mailbox' },
      { destination: 'ann@agents.test', status: 'skipped', skip_reason: 'no_mailbox' },
    ]);

    // The assignee changing the status is told to nobody (they caused it, and no rule asks).
    await t.call(admin(), 'PATCH', `/api/v1/tickets/${ticket.id}`, { status: 'pending' });
    await fanOutAll();
    expect((await notifications(ticket.id)).length).toBe(2);
  });

  it('delivers signed webhooks to subscribed endpoints exactly once and keeps their id across retries', async () => {
    const endpoint = await makeEndpoint(['ticket.created']);
    const ticket = await makeTicket(t, admin(), { subject: 'Webhook me' });
    await fanOutAll();
    const [row] = (await notifications(ticket.id)).filter((n) => n.channel === 'webhook');
    expect(row).toMatchObject({ destination: endpoint.id, status: 'queued' });

    // The receiver fails once with 503: the next attempt keeps the webhook id.
    receiver.fail({ status: 503, times: 1, pathPrefix: endpoint.path });
    await deliverAll();
    const attempts = (await notifications(ticket.id)).filter((n) => n.channel === 'webhook');
    expect(attempts.map((a) => [a.attempt, a.status, a.error_code])).toEqual([
      [1, 'failed', 'transient'],
      [2, 'queued', null],
    ]);
    expect(attempts[1]!.notification_id).toBe(attempts[0]!.notification_id);
    await t.db.admin.query(`UPDATE pgboss.job SET start_after = now() WHERE name = $1`, [
      notifyDeliverJob.name,
    ]);
    await deliverAll();
    await deliverAll();
    const received = receiver.requests().filter((r) => r.status < 300);
    expect(received).toHaveLength(1);
    expect(received[0]!.verified).toBe(true);
    expect(received[0]!.id).toBe(attempts[0]!.notification_id);
    const body = JSON.parse(received[0]!.body);
    expect(body).toMatchObject({
      type: 'ticket.created',
      data: { ticket: { id: ticket.id, number: ticket.number, subject: 'Webhook me' } },
    });
    expect(receiver.duplicates()).toEqual([]);
  });

  it('delivers a batch of webhooks across tenants once each, a failure on its own, a repeated job skipped', async () => {
    const good = await makeEndpoint(['ticket.created']);
    const bad = await makeEndpoint(['ticket.created']);
    const resB = await t.call(t.b.adminToken.token, 'POST', '/api/v1/webhook-endpoints', {
      url: `${receiver.url}/hooks/b-batch`,
      events: ['ticket.created'],
    });
    expect(resB.status).toBe(201);
    receiver.setSecrets([good.secret, resB.body.secret]);
    const before = receiver.requests().filter((r) => r.status < 300).length;
    const ticketA = await makeTicket(t, admin(), { subject: 'Batch A' });
    const ticketB = await makeTicket(t, t.b.adminToken.token, { subject: 'Batch B' });
    await fanOutAll();
    const { rows } = await t.db.admin.query<{ data: { tenantId: string; deliveryId: string } }>(
      `DELETE FROM pgboss.job WHERE name = $1 RETURNING data`,
      [notifyDeliverJob.name],
    );
    const mine = new Set([good.id, bad.id, resB.body.id]);
    const rowsOf = async (ticketId: string) =>
      (await notifications(ticketId)).filter((n) => n.channel === 'webhook' && mine.has(n.destination));
    const queued = [...(await rowsOf(ticketA.id)), ...(await rowsOf(ticketB.id))];
    expect(queued).toHaveLength(3);
    receiver.fail({ status: 400, times: 1, pathPrefix: bad.path });
    // The jobs of these three attempts (endpoints of earlier tests take the same events).
    const jobs = rows.filter((r) => queued.some((q) => q.id === r.data.deliveryId));
    expect(jobs).toHaveLength(3);
    const batchCtx = { send: t.queue.send.bind(t.queue), signal: new AbortController().signal } as never;
    const items = [...jobs, jobs[0]!].map((j) => ({ payload: j.data, ctx: batchCtx }));
    const results = await deliverNotificationBatch(
      { pool: t.db.pool, logger, adapters, leaseSeconds: 60 },
      items,
    );
    expect(results.every((r) => r.ok)).toBe(true);
    const byStatus = [...(await rowsOf(ticketA.id)), ...(await rowsOf(ticketB.id))]
      .map((n) => `${n.destination === bad.id ? 'bad' : 'good'}:${n.status}:${n.error_code ?? ''}`)
      .sort();
    expect(byStatus).toEqual(['bad:failed:permanent', 'good:sent:', 'good:sent:']);
    const received = receiver.requests().filter((r) => r.status < 300);
    expect(received.length - before).toBe(2);
    expect(received.slice(before).every((r) => r.verified)).toBe(true);
    // The same batch again (a redelivered fetch): nothing more goes out.
    const again = await deliverNotificationBatch(
      { pool: t.db.pool, logger, adapters, leaseSeconds: 60 },
      items,
    );
    expect(again.every((r) => r.ok)).toBe(true);
    expect(receiver.requests().filter((r) => r.status < 300).length - before).toBe(2);
    expect(receiver.duplicates()).toEqual([]);
  });

  it('records a webhook sent once the database answers again after an outage, instead of resending it', async () => {
    const endpoint = await makeEndpoint(['ticket.created']);
    receiver.setSecrets([endpoint.secret]);
    const ticket = await makeTicket(t, admin(), { subject: 'During an outage' });
    await fanOutAll();
    const { rows } = await t.db.admin.query<{ data: { tenantId: string; deliveryId: string } }>(
      `DELETE FROM pgboss.job WHERE name = $1 RETURNING data`,
      [notifyDeliverJob.name],
    );
    const mine = (await notifications(ticket.id)).filter((n) => n.destination === endpoint.id);
    expect(mine).toHaveLength(1);
    const job = rows.find((r) => r.data.deliveryId === mine[0]!.id)!;
    // The first two tries to record it sent fail as a lost connection does (SQLSTATE 08006).
    const outage = await failWritesAsLostConnection(t.db.admin, {
      table: 'deliveries',
      ids: [mine[0]!.id],
      status: 'sent',
      times: 2,
    });
    const before = receiver.requests().filter((r) => r.status < 300).length;
    const pauses: number[] = [];
    try {
      const results = await deliverNotificationBatch(
        { pool: t.db.pool, logger, adapters, leaseSeconds: 60, sleep: async (ms) => void pauses.push(ms) },
        [
          {
            payload: job.data,
            ctx: { send: t.queue.send.bind(t.queue), signal: new AbortController().signal } as never,
          },
        ],
      );
      expect(results).toEqual([{ ok: true, output: { sent: expect.anything() } }]);
    } finally {
      await outage.remove();
    }
    expect(pauses).toEqual([100, 200]);
    expect((await notifications(ticket.id)).find((n) => n.id === mine[0]!.id)).toMatchObject({
      status: 'sent',
    });
    expect(receiver.requests().filter((r) => r.status < 300).length - before).toBe(1);
    expect(receiver.duplicates()).toEqual([]);
  });

  it('reaches a person on their preferred channel, falls back, and records who could not be reached', async () => {
    const endpoint = await makeEndpoint(['sla.breached']);
    const unreachable = await makePerson(t, admin(), { displayName: 'No Address', email: undefined });
    const rule = await t.call(admin(), 'POST', '/api/v1/notification-rules', {
      event: 'ticket.created',
      recipients: [{ type: 'person', personId: unreachable.id }],
      channel: 'preferred',
      fallback: ['slack'],
    });
    expect(rule.status).toBe(201);
    const ticket = await makeTicket(t, admin());
    await fanOutAll();
    const rows = await notifications(ticket.id);
    expect(rows.filter((r) => r.destination === `person:${unreachable.id}`)).toEqual([
      expect.objectContaining({ status: 'skipped', skip_reason: 'no_destination' }),
    ]);
    // The endpoint subscribed to sla.breached only: nothing for ticket.created.
    expect(rows.some((r) => r.destination === endpoint.id)).toBe(false);
    await t.call(admin(), 'DELETE', `/api/v1/notification-rules/${rule.body.id}`);
  });

  it('holds non-urgent notifications in quiet hours until they end, and lets urgent ones pass', async () => {
    const mailbox = await t.call(admin(), 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: 'helpdesk@agents.test',
      settings: { smtp: { host: '127.0.0.1', port: 2525, security: 'none' } },
    });
    expect(mailbox.status).toBe(201);
    // 23:30 in Berlin on the night the clocks go back.
    t.clock.freeze(new Date('2026-10-24T21:30:00Z'));
    const quiet = await makePerson(t, admin(), {
      displayName: 'Quiet Quinn',
      email: 'quinn@agents.test',
      timeZone: 'Europe/Berlin',
      notifications: { quietHours: { start: '22:00', end: '07:00' } },
    });
    const ticket = await makeTicket(t, admin(), { assigneeId: quiet.id });
    await fanOutAll();
    const held = (await notifications(ticket.id)).filter((n) => n.destination === 'quinn@agents.test');
    expect(held).toHaveLength(1);
    // The mail's send job starts at 07:00 CET, which is 06:00 UTC after the change.
    const { rows: jobs } = await t.db.admin.query(
      `SELECT start_after FROM pgboss.job WHERE name = $1 AND data->>'deliveryId' IN
         (SELECT id::text FROM deliveries WHERE ticket_id = $2)`,
      [outboundSendJob.name, ticket.id],
    );
    expect(jobs.map((j) => new Date(j.start_after).toISOString())).toEqual(['2026-10-25T06:00:00.000Z']);
    expect(
      quietUntil(new Date('2026-10-24T21:30:00Z'), { start: '22:00', end: '07:00' }, 'Europe/Berlin'),
    ).toEqual(new Date('2026-10-25T06:00:00.000Z'));
    t.clock.unfreeze();
  });
});

describe('dispatch', () => {
  it('marks an event nobody listens to fanned out without a job; a rule, an endpoint of the tenant or an escalation gets one', async () => {
    const c = await createTenant(t.db.pool, { name: 'Listeners' });
    const token = c.adminToken.token;
    const record = (type: 'ticket.status_changed' | 'ticket.customer_replied' | 'sla.escalated') =>
      withTenant(t.db.pool, c.tenant.id, (tx) => recordEvent(tx, { type }));
    /** Whether the event has a fan-out job, and whether it is marked fanned out, after a pass. */
    const dispatched = async (eventId: string) => {
      await dispatchEvents({ pool: t.db.pool, queue: t.queue, adapters });
      const jobs = await t.db.admin.query(
        "SELECT 1 FROM pgboss.job WHERE name = $1 AND data->>'eventId' = $2",
        [notifyFanoutJob.name, eventId],
      );
      const { rows } = await t.db.admin.query<{ dispatched: boolean; fanned: boolean }>(
        'SELECT dispatched_at IS NOT NULL AS dispatched, fanned_out_at IS NOT NULL AS fanned FROM events WHERE id = $1',
        [eventId],
      );
      return { job: jobs.rowCount, ...rows[0] };
    };
    const silent = { job: 0, dispatched: true, fanned: true };
    const heard = { job: 1, dispatched: true, fanned: false };

    // A new tenant's default rules are about replies, assignments, breaches and mailboxes.
    expect(await dispatched(await record('ticket.status_changed'))).toEqual(silent);
    expect(await dispatched(await record('ticket.customer_replied'))).toEqual(heard);
    // An escalation names whom to tell in its own data.
    expect(await dispatched(await record('sla.escalated'))).toEqual(heard);

    // A disabled rule, or an endpoint of another tenant, listens to nothing here.
    const rule = await t.call(token, 'POST', '/api/v1/notification-rules', {
      event: 'ticket.status_changed',
      recipients: [{ type: 'assignee' }],
      channel: 'preferred',
      enabled: false,
    });
    expect(rule.status).toBe(201);
    await makeEndpoint(['ticket.status_changed']);
    expect(await dispatched(await record('ticket.status_changed'))).toEqual(silent);

    // An endpoint of the tenant subscribed to the type listens; so does the rule once enabled.
    const endpoint = await t.call(token, 'POST', '/api/v1/webhook-endpoints', {
      url: `${receiver.url}/hooks/listeners`,
      events: ['ticket.status_changed'],
    });
    expect(endpoint.status).toBe(201);
    expect(await dispatched(await record('ticket.status_changed'))).toEqual(heard);
    expect((await t.call(token, 'DELETE', `/api/v1/webhook-endpoints/${endpoint.body.id}`)).status).toBe(204);
    expect(await dispatched(await record('ticket.status_changed'))).toEqual(silent);
    const enabled = await t.call(token, 'PUT', `/api/v1/notification-rules/${rule.body.id}`, {
      event: 'ticket.status_changed',
      recipients: [{ type: 'assignee' }],
      channel: 'preferred',
      enabled: true,
    });
    expect(enabled.status).toBe(200);
    expect(await dispatched(await record('ticket.status_changed'))).toEqual(heard);
    // Their fan-out, as the worker would run it (nobody is reached: the events name no ticket).
    await fanOutAll();
  });

  it('hands an event whose fan-out failed for good back to the dispatcher, and fans it out once', async () => {
    const ticket = await makeTicket(t, admin());
    await dispatchEvents({ pool: t.db.pool, queue: t.queue, adapters });
    const { rows } = await t.db.admin.query<{ id: string }>(
      "SELECT id FROM events WHERE ticket_id = $1 AND type = 'ticket.created'",
      [ticket.id],
    );
    const eventId = rows[0]!.id;
    // As the fan-out job's onFailedForGood does: the event is dispatched again at the next pass.
    await t.db.admin.query('DELETE FROM pgboss.job WHERE name = $1', [notifyFanoutJob.name]);
    await withTenant(t.db.pool, t.a.tenant.id, (tx) => redispatchEvent(tx, eventId));
    expect(await dispatchEvents({ pool: t.db.pool, queue: t.queue, adapters })).toBeGreaterThanOrEqual(1);
    await fanOutAll();
    await withTenant(t.db.pool, t.a.tenant.id, (tx) => redispatchEvent(tx, eventId)); // fanned out: no effect
    expect(await dispatchEvents({ pool: t.db.pool, queue: t.queue, adapters })).toBe(0);
    const { rows: done } = await t.db.admin.query('SELECT fanned_out_at FROM events WHERE id = $1', [
      eventId,
    ]);
    expect(done[0].fanned_out_at).not.toBeNull();
  });
});

describe('housekeeping', () => {
  it('drops fanned-out events past retention, tenant by tenant in batches, and keeps the rest', async () => {
    const ticket = await makeTicket(t, admin());
    await makeTicket(t, t.b.adminToken.token);
    await fanOutAll();
    const pending = await withTenant(t.db.pool, t.a.tenant.id, (tx) =>
      recordEvent(tx, { type: 'ticket.status_changed', ticketId: ticket.id }),
    );
    const count = async () => Number((await t.db.admin.query('SELECT count(*) AS n FROM events')).rows[0].n);
    const before = await count();
    // Nothing is old yet.
    expect(await dropOldEvents(t.db.pool, new Date(Date.now() - 86_400_000), 2)).toBe(0);
    // Everything fanned out is "old" a minute from now, in batches of two; the undispatched one stays.
    const dropped = await dropOldEvents(t.db.pool, new Date(Date.now() + 60_000), 2);
    expect(dropped).toBe(before - 1);
    expect((await t.db.admin.query('SELECT id FROM events')).rows.map((r) => r.id)).toEqual([pending]);
  });
});

describe('assignments', () => {
  it('tell each assignee of their own assignment, even when the ticket moved on before fan-out', async () => {
    const first = await makePerson(t, admin(), { displayName: 'First', email: 'first@agents.test' });
    const second = await makePerson(t, admin(), { displayName: 'Second', email: 'second@agents.test' });
    const ticket = await makeTicket(t, admin(), { assigneeId: first.id });
    await t.call(admin(), 'PATCH', `/api/v1/tickets/${ticket.id}`, { assigneeId: second.id });
    await fanOutAll();
    const told = (await notifications(ticket.id))
      .filter((n) => n.channel === 'email')
      .map((n) => n.destination)
      .sort();
    expect(told).toEqual(['first@agents.test', 'second@agents.test']);
  });

  it('names in an assignment the person it assigned, even when the ticket moved on before fan-out', async () => {
    const endpoint = await makeEndpoint(['ticket.assigned']);
    const first = await makePerson(t, admin(), { displayName: 'Frieda', email: 'frieda@agents.test' });
    const second = await makePerson(t, admin(), { displayName: 'Sven', email: 'sven@agents.test' });
    const ticket = await makeTicket(t, admin(), { assigneeId: first.id });
    await t.call(admin(), 'PATCH', `/api/v1/tickets/${ticket.id}`, { assigneeId: second.id });
    await fanOutAll();
    await deliverAll();
    const titles = receiver
      .requests()
      .filter((r) => r.path === endpoint.path && r.status < 300)
      .map((r) => JSON.parse(r.body).data.title as string)
      .sort();
    expect(titles).toEqual([`${ticket.number} assigned to Frieda`, `${ticket.number} assigned to Sven`]);
  });
});

describe('a rule test', () => {
  it('sends a sample through the rule alone, to whom it reaches', async () => {
    const ops = await makePerson(t, admin(), { displayName: 'Ops', email: 'ops@agents.test' });
    const endpoint = await makeEndpoint(['ticket.created']);
    const rule = await t.call(admin(), 'POST', '/api/v1/notification-rules', {
      event: 'ticket.status_changed',
      recipients: [{ type: 'person', personId: ops.id }],
      channel: 'email',
      enabled: false,
    });
    const sample = await t.call(admin(), 'POST', `/api/v1/notification-rules/${rule.body.id}/test`);
    expect(sample.status).toBe(202);
    await fanOutAll();
    const { rows } = await t.db.admin.query(
      `SELECT channel, destination, payload->'content'->>'type' AS type FROM deliveries
        WHERE notification_id IS NOT NULL AND created_at > now() - interval '1 minute'
          AND (destination = 'ops@agents.test' OR destination = $1)`,
      [endpoint.id],
    );
    // Email notifications keep their mail, not the content: the sample reached Ops and no endpoint.
    expect(rows.map((r) => [r.channel, r.destination])).toEqual([['email', 'ops@agents.test']]);
  });
});

describe('failures', () => {
  it('turns a terminal failure into a delivery.failed event, and a 410 disables the endpoint', async () => {
    const endpoint = await makeEndpoint(['ticket.created']);
    const ticket = await makeTicket(t, admin());
    await fanOutAll();
    receiver.fail({ status: 410, times: 1, pathPrefix: endpoint.path });
    await deliverAll();
    const [row] = (await notifications(ticket.id)).filter((n) => n.destination === endpoint.id);
    expect(row).toMatchObject({ status: 'failed', error_code: 'not_found' });
    const { rows: failed } = await t.db.admin.query(
      "SELECT data FROM events WHERE type = 'delivery.failed' AND ticket_id = $1",
      [ticket.id],
    );
    expect(failed.map((f) => f.data)).toContainEqual(
      expect.objectContaining({ channel: 'webhook', destination: endpoint.id, errorCode: 'not_found' }),
    );
    expect((await t.call(admin(), 'GET', `/api/v1/webhook-endpoints/${endpoint.id}`)).body.enabled).toBe(
      false,
    );
  });
});

describe('abandoned attempts', () => {
  it('close as failed, or unknown once the send had begun, when their job fails for good', async () => {
    const endpoint = await makeEndpoint(['ticket.created']);
    const [one, two] = [await makeTicket(t, admin()), await makeTicket(t, admin())];
    await fanOutAll();
    await t.db.admin.query(`DELETE FROM pgboss.job WHERE name = $1`, [notifyDeliverJob.name]);
    const rowOf = async (ticketId: string) =>
      (await notifications(ticketId)).find((n) => n.destination === endpoint.id)!;
    const ids = await t.db.admin.query<{ id: string; ticket_id: string }>(
      'SELECT id, ticket_id FROM deliveries WHERE destination = $1 AND ticket_id = ANY($2::uuid[])',
      [endpoint.id, [one.id, two.id]],
    );
    const idOf = (ticketId: string) => ids.rows.find((r) => r.ticket_id === ticketId)!.id;
    await t.db.admin.query('UPDATE deliveries SET started_at = now() WHERE id = $1', [idOf(two.id)]);
    await withTenant(t.db.pool, t.a.tenant.id, async (tx) => {
      await closeAbandonedAttempt(tx, idOf(one.id), 'the job failed for good');
      await closeAbandonedAttempt(tx, idOf(two.id), 'the job failed for good');
      await closeAbandonedAttempt(tx, idOf(two.id), 'again: nothing changes');
    });
    expect(await rowOf(one.id)).toMatchObject({ status: 'failed', error_code: 'transient' });
    expect(await rowOf(two.id)).toMatchObject({ status: 'unknown' });
  });
});

describe('SLA escalations', () => {
  it('turn into sla.escalated events that reach whom the escalation names', async () => {
    const lead = await makePerson(t, admin(), { displayName: 'Lead', email: 'lead@agents.test' });
    const ticket = await makeTicket(t, admin());
    await withTenant(t.db.pool, t.a.tenant.id, async (tx) => {
      const { recordEvent } = await import('../events/events.ts');
      await recordEvent(tx, {
        type: 'sla.escalated',
        ticketId: ticket.id,
        urgent: true,
        data: { metric: 'first_response', percent: 120, notify: [{ personId: lead.id }] },
      });
    });
    await fanOutAll();
    expect((await notifications(ticket.id)).filter((n) => n.destination === 'lead@agents.test')).toHaveLength(
      1,
    );
  });
});
