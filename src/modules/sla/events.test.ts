// SLA events and stored clocks, end to end on real PostgreSQL: every lifecycle event once with the
// instant it happened (also when the scheduler only looks long after), recomputed on priority,
// policy and calendar changes, cancelled when no policy matches any more, a pause that holds back a
// threshold, and a breach followed by a late first response.
//
// Most tests write the ticket's timeline straight into the tables at chosen instants (a fixed
// Monday in March 2026) and run scheduler passes at simulated times, so the expected instants are
// exact; the configuration tests go through the API in real time.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makePerson, type TestApp, useTestApp } from '../../../test/app.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { createTenant } from '../tenants/service.ts';
import { formatInstant } from './calendar.ts';
import { createPolicy } from './config.ts';
import { runSlaPass } from './scheduler.ts';

let t: TestApp;
let n = 0;

beforeAll(async () => {
  t = await useTestApp();
});

// Wake-ups left at simulated instants would be claimed by the next test's passes.
afterEach(async () => {
  await t.db.admin.query('DELETE FROM ticket_wakeups');
});

interface Desk {
  token: string;
  tenantId: string;
  agentId: string;
  base: number;
}

/** A tenant with one policy; `base` is the instant (seconds) the test's tickets are created at. */
async function desk(policy: Record<string, unknown>, base = '2026-03-02T14:00:00Z'): Promise<Desk> {
  const c = await createTenant(t.db.pool, { name: `sla-events-${++n}` });
  const token = c.adminToken.token;
  const res = await t.call(token, 'POST', '/api/v1/sla-policies', {
    name: 'P',
    position: 1,
    calendarId: null,
    ...policy,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const agent = await makePerson(t, token, { kind: 'agent' });
  return { token, tenantId: c.tenant.id, agentId: agent.id, base: Date.parse(base) / 1000 };
}

const ts = (seconds: number) => new Date(seconds * 1000).toISOString();

/** A ticket created at base + `at` seconds (no messages). */
async function ticketAt(d: Desk, at: number, body: Record<string, unknown> = {}): Promise<any> {
  const res = await t.call(d.token, 'POST', '/api/v1/tickets', {
    subject: `Ticket ${++n}`,
    requester: { email: `req${n}@example.com` },
    ...body,
  });
  expect(res.status).toBe(201);
  await t.db.admin.query('UPDATE tickets SET created_at = $2 WHERE id = $1', [res.body.id, ts(d.base + at)]);
  await t.db.admin.query('UPDATE ticket_status_history SET changed_at = $2 WHERE ticket_id = $1', [
    res.body.id,
    ts(d.base + at),
  ]);
  await t.db.admin.query('DELETE FROM ticket_wakeups WHERE ticket_id = $1', [res.body.id]);
  return res.body;
}

/** A status change at base + `at`. */
async function status(d: Desk, ticket: any, at: number, to: string): Promise<void> {
  const { rows } = await t.db.admin.query('SELECT status FROM tickets WHERE id = $1', [ticket.id]);
  await t.db.admin.query('UPDATE tickets SET status = $2 WHERE id = $1', [ticket.id, to]);
  await t.db.admin.query(
    `INSERT INTO ticket_status_history (tenant_id, ticket_id, from_status, to_status, changed_at)
     VALUES ($1, $2, $3, $4, $5)`,
    [d.tenantId, ticket.id, rows[0].status, to, ts(d.base + at)],
  );
}

/** A public message at base + `at` by the agent or the requester. */
async function message(d: Desk, ticket: any, at: number, by: 'agent' | 'requester'): Promise<void> {
  await t.db.admin.query(
    `INSERT INTO ticket_messages (tenant_id, id, ticket_id, author_id, visibility, direction, body_text, created_at)
     VALUES ($1, $2, $3, $4, 'public', $5, 'text', $6)`,
    [
      d.tenantId,
      uuidv7(),
      ticket.id,
      by === 'agent' ? d.agentId : ticket.requesterId,
      by === 'agent' ? 'outbound' : 'inbound',
      ts(d.base + at),
    ],
  );
}

/** A scheduler pass at base + `at`, with the ticket woken (as the change's transaction would have). */
async function pass(d: Desk, ticket: any, at: number): Promise<number> {
  await t.db.admin.query(
    `INSERT INTO ticket_wakeups (tenant_id, ticket_id, next_wake_at) VALUES ($1, $2, $3)
     ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET next_wake_at = least(ticket_wakeups.next_wake_at, excluded.next_wake_at)`,
    [d.tenantId, ticket.id, ts(d.base + at)],
  );
  return runSlaPass({ pool: t.db.pool, queue: t.queue }, d.base + at);
}

/** The ticket's SLA events as [type, metric#cycle, seconds after base], oldest first. */
async function events(d: Desk, ticketId: string, types?: string[]): Promise<[string, string, number][]> {
  const { rows } = await t.db.admin.query(
    `SELECT type, metric, cycle, extract(epoch FROM at)::bigint AS at FROM sla_events
      WHERE ticket_id = $1 AND ($2::text[] IS NULL OR type = ANY($2)) ORDER BY at, id`,
    [ticketId, types ?? null],
  );
  return rows.map((r) => [r.type, `${r.metric}#${r.cycle}`, Number(r.at) - d.base]);
}

async function clocks(ticketId: string): Promise<any[]> {
  const { rows } = await t.db.admin.query(
    `SELECT metric, cycle, status, target_seconds, used_seconds, paused_since, due_at, next_wake_at,
            breached_at, fulfilled_at, cancelled_at, priority
       FROM sla_clocks WHERE ticket_id = $1 ORDER BY metric, cycle`,
    [ticketId],
  );
  return rows;
}

const LIFECYCLE = ['started', 'paused', 'resumed', 'fulfilled'];
const EXPECTED_LIFECYCLE: [string, string, number][] = [
  ['started', 'first_response#1', 0],
  ['started', 'resolution#1', 0],
  ['fulfilled', 'first_response#1', 100],
  ['paused', 'resolution#1', 200],
  ['resumed', 'resolution#1', 500],
  ['started', 'next_response#1', 500],
  ['fulfilled', 'next_response#1', 700],
  ['fulfilled', 'resolution#1', 900],
];
const sortEvents = (e: [string, string, number][]) =>
  [...e].sort((a, b) => a[2] - b[2] || a[1].localeCompare(b[1]) || a[0].localeCompare(b[0]));

describe('clock lifecycle events', () => {
  const policy = {
    targets: { normal: { firstResponse: 600, nextResponse: 600, resolution: 3600 } },
  };
  // created 0 · agent reply 100 (opens) · pending 200 · requester writes 500 and the ticket
  // reopens · agent reply 700 · solved 900.
  async function story(d: Desk, ticket: any, passAt?: (at: number) => Promise<void>) {
    const step = async (at: number, fn: () => Promise<void>) => {
      await fn();
      await passAt?.(at);
    };
    await step(100, async () => {
      await message(d, ticket, 100, 'agent');
      await status(d, ticket, 100, 'open');
    });
    await step(200, () => status(d, ticket, 200, 'pending'));
    await step(500, async () => {
      await message(d, ticket, 500, 'requester');
      await status(d, ticket, 500, 'open');
    });
    await step(700, () => message(d, ticket, 700, 'agent'));
    await step(900, () => status(d, ticket, 900, 'solved'));
  }

  it('records started, paused, resumed and fulfilled once each, at the instant they happened', async () => {
    const d = await desk(policy);
    const ticket = await ticketAt(d, 0);
    await pass(d, ticket, 1);
    await story(d, ticket, async (at) => {
      await pass(d, ticket, at + 1);
    });
    // Evaluating again (and again) adds nothing.
    await pass(d, ticket, 1000);
    await pass(d, ticket, 5000);
    expect(sortEvents(await events(d, ticket.id, LIFECYCLE))).toEqual(sortEvents(EXPECTED_LIFECYCLE));
    const paused = (
      await t.db.admin.query("SELECT data FROM sla_events WHERE ticket_id = $1 AND type = 'paused'", [
        ticket.id,
      ])
    ).rows;
    expect(paused).toEqual([{ data: { status: 'pending' } }]);
    const stored = await clocks(ticket.id);
    expect(stored.map((c) => [c.metric, c.cycle, c.status, c.used_seconds])).toEqual([
      ['first_response', 1, 'fulfilled', 100],
      ['next_response', 1, 'fulfilled', 200],
      ['resolution', 1, 'fulfilled', 600],
    ]);
  });

  it('records the same events with the same instants when the scheduler only looks at the end', async () => {
    const d = await desk(policy, '2026-03-09T14:00:00Z');
    const ticket = await ticketAt(d, 0);
    await story(d, ticket);
    await pass(d, ticket, 1000);
    await pass(d, ticket, 1001);
    expect(sortEvents(await events(d, ticket.id, LIFECYCLE))).toEqual(sortEvents(EXPECTED_LIFECYCLE));
  });

  it('stores the clock while paused: paused_since set, no due time or wake-up; resumed recomputes them', async () => {
    const d = await desk({ targets: { normal: { resolution: 1000 } } }, '2026-03-16T14:00:00Z');
    const ticket = await ticketAt(d, 0);
    await status(d, ticket, 400, 'on_hold');
    await pass(d, ticket, 401);
    let [res] = await clocks(ticket.id);
    expect(res).toMatchObject({ status: 'paused', used_seconds: 400, due_at: null, next_wake_at: null });
    expect(Date.parse(res.paused_since) / 1000 - d.base).toBe(400);
    await status(d, ticket, 1000, 'open');
    await pass(d, ticket, 1001);
    [res] = await clocks(ticket.id);
    expect(res).toMatchObject({ status: 'active', used_seconds: 401, paused_since: null });
    expect(Date.parse(res.due_at) / 1000 - d.base).toBe(1600); // 600 business seconds left
    expect(Date.parse(res.next_wake_at) / 1000 - d.base).toBe(1100); // 50 %
    expect(await events(d, ticket.id, LIFECYCLE)).toEqual([
      ['started', 'resolution#1', 0],
      ['paused', 'resolution#1', 400],
      ['resumed', 'resolution#1', 1000],
    ]);
  });
});

describe('a pause that interrupts a pending threshold', () => {
  it('holds the threshold back while paused; after the resume it fires once, on business time', async () => {
    const d = await desk({ targets: { normal: { resolution: 1000 } } }, '2026-03-23T14:00:00Z');
    const ticket = await ticketAt(d, 0);
    await pass(d, ticket, 1);
    // 50 % is due at 500; the ticket goes on hold at 400.
    await status(d, ticket, 400, 'on_hold');
    await pass(d, ticket, 401);
    expect(await runSlaPass({ pool: t.db.pool, queue: t.queue }, d.base + 600)).toBe(0);
    expect(await runSlaPass({ pool: t.db.pool, queue: t.queue }, d.base + 999)).toBe(0);
    // Resumed at 1000 with 400 s used: 50 % (500 s) comes due at 1100.
    await status(d, ticket, 1000, 'open');
    await pass(d, ticket, 1001);
    expect(await runSlaPass({ pool: t.db.pool, queue: t.queue }, d.base + 1099)).toBe(0);
    expect(await runSlaPass({ pool: t.db.pool, queue: t.queue }, d.base + 1100)).toBe(1);
    await pass(d, ticket, 1101);
    const { rows } = await t.db.admin.query(
      'SELECT percent, due_at, fired_at FROM sla_threshold_fires WHERE ticket_id = $1',
      [ticket.id],
    );
    expect(rows.map((r) => [r.percent, Date.parse(r.due_at) / 1000 - d.base])).toEqual([[50, 1100]]);
    expect(await events(d, ticket.id, ['threshold'])).toEqual([['threshold', 'resolution#1', 1100]]);
  });
});

describe('breach followed by a late first response', () => {
  it('keeps breached_at, records the breach once and the real fulfilment time', async () => {
    const d = await desk(
      { targets: { normal: { firstResponse: 100 } }, thresholds: [100] },
      '2026-03-30T13:00:00Z',
    );
    const ticket = await ticketAt(d, 0);
    await pass(d, ticket, 1);
    expect(await runSlaPass({ pool: t.db.pool, queue: t.queue }, d.base + 150)).toBe(1);
    let [fr] = await clocks(ticket.id);
    expect(fr.status).toBe('breached');
    expect(Date.parse(fr.breached_at) / 1000 - d.base).toBe(100);
    await message(d, ticket, 300, 'agent');
    await pass(d, ticket, 301);
    [fr] = await clocks(ticket.id);
    expect(fr.status).toBe('fulfilled');
    expect(Date.parse(fr.breached_at) / 1000 - d.base).toBe(100);
    expect(Date.parse(fr.fulfilled_at) / 1000 - d.base).toBe(300);
    expect(fr.used_seconds).toBe(300);
    expect(await events(d, ticket.id)).toEqual([
      ['started', 'first_response#1', 0],
      ['breached', 'first_response#1', 100],
      ['fulfilled', 'first_response#1', 300],
    ]);
    // The read side (computed at the real now) says the same.
    const sla = (await t.call(d.token, 'GET', `/api/v1/tickets/${ticket.id}/sla`)).body;
    expect(sla.metrics[0]).toMatchObject({
      status: 'fulfilled',
      breachedAt: formatInstant(d.base + 100),
      fulfilledAt: formatInstant(d.base + 300),
      remainingSeconds: -200,
    });
  });
});

describe('recomputed and cancelled', () => {
  /** Runs a pass now (real time) and returns the ticket's recomputed/cancelled events. */
  const settle = async (ticketId: string) => {
    await runSlaPass({ pool: t.db.pool, queue: t.queue }, Date.now() / 1000);
    const { rows } = await t.db.admin.query(
      `SELECT type, metric, cycle, data FROM sla_events WHERE ticket_id = $1 AND type IN ('recomputed', 'cancelled') ORDER BY type, metric, at`,
      [ticketId],
    );
    return rows;
  };

  it('records recomputed with before and after when the priority changes, once', async () => {
    const d = await desk({
      targets: { normal: { firstResponse: 3600 }, urgent: { firstResponse: 600 } },
    });
    const ticket = (
      await t.call(d.token, 'POST', '/api/v1/tickets', {
        subject: 'x',
        requester: { email: 'p@example.com' },
      })
    ).body;
    expect(await settle(ticket.id)).toEqual([]);
    const created = Math.floor(Date.parse(ticket.createdAt) / 1000);
    expect(
      (await t.call(d.token, 'PATCH', `/api/v1/tickets/${ticket.id}`, { priority: 'urgent' })).status,
    ).toBe(200);
    const recomputed = await settle(ticket.id);
    expect(recomputed).toEqual([
      {
        type: 'recomputed',
        metric: 'first_response',
        cycle: 1,
        data: {
          reasons: ['priority'],
          before: expect.objectContaining({
            priority: 'normal',
            targetSeconds: 3600,
            dueAt: formatInstant(created + 3600),
          }),
          after: expect.objectContaining({
            priority: 'urgent',
            targetSeconds: 600,
            dueAt: formatInstant(created + 600),
          }),
        },
      },
    ]);
    expect(await settle(ticket.id)).toHaveLength(1);
    const [fr] = await clocks(ticket.id);
    expect(fr).toMatchObject({ priority: 'urgent', target_seconds: 600 });
  });

  it('records recomputed when the calendar is edited, for the clocks on that calendar', async () => {
    const c = await createTenant(t.db.pool, { name: `sla-cal-${++n}` });
    const token = c.adminToken.token;
    const cal = (await t.call(token, 'POST', '/api/v1/calendars', { timeZone: 'UTC', alwaysOpen: true }))
      .body;
    await t.call(token, 'POST', '/api/v1/sla-policies', {
      name: 'Cal',
      position: 1,
      calendarId: cal.id,
      targets: { normal: { resolution: 8 * 3600 } },
    });
    const ticket = (
      await t.call(token, 'POST', '/api/v1/tickets', { subject: 'x', requester: { email: 'c@example.com' } })
    ).body;
    expect(await settle(ticket.id)).toEqual([]);
    // Business hours only on a weekday that is not today: the due time moves far out.
    const put = await t.call(token, 'PUT', `/api/v1/calendars/${cal.id}`, {
      timeZone: 'UTC',
      weekly: { [new Date().getUTCDay() === 3 ? 'thu' : 'wed']: [['09:00', '10:00']] },
    });
    expect(put.status).toBe(200);
    const { rows: woken } = await t.db.admin.query(
      'SELECT 1 FROM ticket_wakeups WHERE ticket_id = $1 AND next_wake_at <= now()',
      [ticket.id],
    );
    expect(woken).toHaveLength(1); // scheduled in the PUT's transaction
    const recomputed = await settle(ticket.id);
    expect(recomputed).toHaveLength(1);
    expect(recomputed[0].data.reasons).toEqual(['calendar']);
    expect(Date.parse(recomputed[0].data.after.dueAt)).toBeGreaterThan(
      Date.parse(recomputed[0].data.before.dueAt),
    );
    expect(await settle(ticket.id)).toHaveLength(1);
  });

  it('recomputes when a policy is created or replaced, and cancels the clocks when none matches any more', async () => {
    const c = await createTenant(t.db.pool, { name: `sla-pol-${++n}` });
    const token = c.adminToken.token;
    const ticket = (
      await t.call(token, 'POST', '/api/v1/tickets', { subject: 'x', requester: { email: 'q@example.com' } })
    ).body;
    await settle(ticket.id);
    expect(await clocks(ticket.id)).toEqual([]);
    // A new policy matches a ticket that had none: its clocks start, at the ticket's creation.
    const policy = (
      await t.call(token, 'POST', '/api/v1/sla-policies', {
        name: 'New',
        position: 1,
        calendarId: null,
        targets: { normal: { firstResponse: 3600, resolution: 7200 } },
      })
    ).body;
    await settle(ticket.id);
    const { rows: started } = await t.db.admin.query(
      "SELECT metric, at FROM sla_events WHERE ticket_id = $1 AND type = 'started' ORDER BY metric",
      [ticket.id],
    );
    expect(started.map((r) => [r.metric, formatInstant(Math.floor(Date.parse(r.at) / 1000))])).toEqual([
      ['first_response', formatInstant(Math.floor(Date.parse(ticket.createdAt) / 1000))],
      ['resolution', formatInstant(Math.floor(Date.parse(ticket.createdAt) / 1000))],
    ]);
    // Replaced: resolution loses its target (cancelled), first response gets a shorter one (recomputed).
    await t.call(token, 'PUT', `/api/v1/sla-policies/${policy.id}`, {
      name: 'New',
      position: 1,
      calendarId: null,
      targets: { normal: { firstResponse: 1800 } },
    });
    const changed = await settle(ticket.id);
    const summary = (rows: any[]) => rows.map((e) => [e.type, e.metric, e.data.reasons ?? e.data.reason]);
    expect(summary(changed)).toEqual([
      ['cancelled', 'resolution', 'no_target'],
      ['recomputed', 'first_response', ['policy']],
    ]);
    // Deleted: nothing matches; the remaining clock is cancelled, once.
    expect((await t.call(token, 'DELETE', `/api/v1/sla-policies/${policy.id}`)).status).toBe(204);
    expect(summary(await settle(ticket.id))).toEqual([
      ['cancelled', 'first_response', 'no_policy'],
      ['cancelled', 'resolution', 'no_target'],
      ['recomputed', 'first_response', ['policy']],
    ]);
    expect(await settle(ticket.id)).toHaveLength(3);
    expect((await clocks(ticket.id)).map((r) => [r.metric, r.status])).toEqual([
      ['first_response', 'cancelled'],
      ['resolution', 'cancelled'],
    ]);
    expect(
      (await t.db.admin.query('SELECT 1 FROM sla_ticket_state WHERE ticket_id = $1', [ticket.id])).rowCount,
    ).toBe(0);
  });
});

describe('ticket deletion', () => {
  it('cancels the clocks (reason ticket_deleted, events kept) and nothing fires afterwards', async () => {
    const d = await desk(
      { targets: { normal: { firstResponse: 600, resolution: 3600 } } },
      '2026-03-30T14:00:00Z',
    );
    const ticket = await ticketAt(d, 0);
    await pass(d, ticket, 10);
    expect(await events(d, ticket.id, ['started'])).toHaveLength(2);
    const del = await t.call(d.token, 'DELETE', `/api/v1/tickets/${ticket.id}`);
    expect(del.status).toBe(204);
    await pass(d, ticket, 20);
    const cancelled = await t.db.admin.query(
      "SELECT metric, data->>'reason' AS reason FROM sla_events WHERE ticket_id = $1 AND type = 'cancelled' ORDER BY metric",
      [ticket.id],
    );
    expect(cancelled.rows).toEqual([
      { metric: 'first_response', reason: 'ticket_deleted' },
      { metric: 'resolution', reason: 'ticket_deleted' },
    ]);
    // Past every threshold: nothing fires for a deleted ticket, and it has no wake-up left.
    expect(await pass(d, ticket, 5000)).toBe(0);
    const fires = await t.db.admin.query(
      'SELECT count(*)::int AS n FROM sla_threshold_fires WHERE ticket_id = $1',
      [ticket.id],
    );
    expect(fires.rows[0].n).toBe(0);
    const clocks = await t.db.admin.query('SELECT DISTINCT status FROM sla_clocks WHERE ticket_id = $1', [
      ticket.id,
    ]);
    expect(clocks.rows).toEqual([{ status: 'cancelled' }]);
    expect((await t.call(d.token, 'GET', `/api/v1/tickets/${ticket.id}/sla`)).status).toBe(404);
    expect((await t.call(d.token, 'GET', `/api/v1/tickets/${ticket.id}/sla/events`)).status).toBe(404);
  });
});

describe('a tenant without SLA policies', () => {
  it('starts no clock and leaves no wake-up, summary or event behind', async () => {
    const c = await createTenant(t.db.pool, { name: `sla-none-${++n}` });
    const res = await t.call(c.adminToken.token, 'POST', '/api/v1/tickets', {
      subject: 'No SLA here',
      requester: { email: 'nosla@example.com' },
    });
    expect(res.status).toBe(201);
    const wake = await t.db.admin.query('SELECT next_wake_at FROM ticket_wakeups WHERE ticket_id = $1', [
      res.body.id,
    ]);
    expect(wake.rows).toHaveLength(1); // the ticket's creation woke it
    await runSlaPass({ pool: t.db.pool, queue: t.queue }, Date.now() / 1000 + 5);
    for (const table of ['ticket_wakeups', 'sla_clocks', 'sla_events', 'sla_ticket_state']) {
      const { rows } = await t.db.admin.query(
        `SELECT count(*)::int AS n FROM ${table} WHERE ticket_id = $1`,
        [res.body.id],
      );
      expect(rows[0].n, table).toBe(0);
    }
    const sla = await t.call(c.adminToken.token, 'GET', `/api/v1/tickets/${res.body.id}/sla`);
    expect(sla.body).toEqual({ policyId: null, metrics: [] });
  });

  it('keeps the wake-up of a ticket whose tenant is creating its first policy right now', async () => {
    const c = await createTenant(t.db.pool, { name: `sla-race-${++n}` });
    const res = await t.call(c.adminToken.token, 'POST', '/api/v1/tickets', {
      subject: 'Policy on its way',
      requester: { email: 'race@example.com' },
    });
    const ticketId = res.body.id;
    // The policy's transaction has written the policy and woken the open tickets, and not yet
    // committed: a scheduler pass in between must neither drop the wake-up (the tenant has no
    // committed policy yet) nor wait for that transaction.
    await withTenant(t.db.pool, c.tenant.id, async (tx) => {
      await createPolicy(tx, {
        name: 'First',
        position: 1,
        calendarId: null,
        targets: { normal: { firstResponse: 3600 } },
      });
      await runSlaPass({ pool: t.db.pool, queue: t.queue }, Date.now() / 1000 + 5);
    });
    const wake = await t.db.admin.query('SELECT 1 FROM ticket_wakeups WHERE ticket_id = $1', [ticketId]);
    expect(wake.rowCount).toBe(1);
    await runSlaPass({ pool: t.db.pool, queue: t.queue }, Date.now() / 1000 + 5);
    expect((await clocks(ticketId)).map((r) => [r.metric, r.status])).toEqual([['first_response', 'active']]);
  });

  it('drops a wake-up whose ticket does not exist, with or without policies', async () => {
    const d = await desk({ targets: { normal: { firstResponse: 3600 } } });
    const none = await createTenant(t.db.pool, { name: `sla-orphan-${++n}` });
    const ghosts = [uuidv7(), uuidv7()];
    await t.db.admin.query(
      `INSERT INTO ticket_wakeups (tenant_id, ticket_id, next_wake_at) VALUES ($1, $2, now()), ($3, $4, now())`,
      [d.tenantId, ghosts[0], none.tenant.id, ghosts[1]],
    );
    await runSlaPass({ pool: t.db.pool, queue: t.queue }, Date.now() / 1000 + 5);
    const left = await t.db.admin.query('SELECT 1 FROM ticket_wakeups WHERE ticket_id = ANY($1)', [ghosts]);
    expect(left.rowCount).toBe(0);
  });

  it('settles the wake-ups of many policy-less tickets in one pass, beside a tenant that has a policy', async () => {
    const none = await createTenant(t.db.pool, { name: `sla-none-many-${++n}` });
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await t.call(none.adminToken.token, 'POST', '/api/v1/tickets', {
        subject: `No SLA ${i}`,
        requester: { email: `many${i % 3}@example.com` },
      });
      ids.push(res.body.id);
    }
    const d = await desk({ targets: { normal: { firstResponse: 3600 } } });
    const withPolicy = (
      await t.call(d.token, 'POST', '/api/v1/tickets', {
        subject: 'SLA',
        requester: { email: 'w@example.com' },
      })
    ).body;
    await runSlaPass({ pool: t.db.pool, queue: t.queue }, Date.now() / 1000 + 5);
    const left = await t.db.admin.query(
      'SELECT count(*)::int AS n FROM ticket_wakeups WHERE ticket_id = ANY($1)',
      [ids],
    );
    expect(left.rows[0].n).toBe(0);
    expect((await clocks(withPolicy.id)).map((r) => [r.metric, r.status])).toEqual([
      ['first_response', 'active'],
    ]);
    const next = await t.db.admin.query('SELECT next_wake_at FROM ticket_wakeups WHERE ticket_id = $1', [
      withPolicy.id,
    ]);
    expect(next.rowCount).toBe(1); // its next threshold
  });
});
