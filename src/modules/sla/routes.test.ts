import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, type TestApp, useTestApp } from '../../../test/app.ts';
import { matchPolicy, type Policy } from './config.ts';

let t: TestApp;
let tokenA: string;
let tokenB: string;
const weekdays = Object.fromEntries(
  ['mon', 'tue', 'wed', 'thu', 'fri'].map((d) => [d, [['09:00', '17:00']]]),
);

beforeAll(async () => {
  t = await useTestApp();
  tokenA = t.a.adminToken.token;
  tokenB = t.b.adminToken.token;
});

describe('calendars', () => {
  it('stores, reads, replaces and deletes a calendar in the file format', async () => {
    const created = await t.call(tokenA, 'POST', '/api/v1/calendars', {
      name: 'NY office',
      timeZone: 'America/New_York',
      weekly: weekdays,
      holidays: ['2026-11-26'],
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'NY office',
      calendar: { timeZone: 'America/New_York', holidays: ['2026-11-26'] },
    });
    const replaced = await t.call(tokenA, 'PUT', `/api/v1/calendars/${created.body.id}`, {
      timeZone: 'UTC',
      alwaysOpen: true,
    });
    expect(replaced.body.calendar).toEqual({ timeZone: 'UTC', alwaysOpen: true });
    expect((await t.call(tokenA, 'GET', '/api/v1/calendars')).body.items.map((c: any) => c.id)).toContain(
      created.body.id,
    );
    expect((await t.call(tokenA, 'DELETE', `/api/v1/calendars/${created.body.id}`)).status).toBe(204);
    expect((await t.call(tokenA, 'GET', `/api/v1/calendars/${created.body.id}`)).status).toBe(404);
  });

  it.each([
    [{ timeZone: 'Mars/Olympus', alwaysOpen: true }, 'invalid_time_zone'],
    [{ timeZone: 'UTC', weekly: { mon: [['09:00', '25:00']] } }, 'invalid_calendar'],
    [{ timeZone: 'UTC', weekly: {} }, 'calendar_has_no_business_time'],
    [{ timeZone: 'UTC', alwaysOpen: true, colour: 'red' }, 'invalid_calendar'],
  ])('refuses %j with %s and stores nothing', async (body, code) => {
    const before = (await t.db.admin.query('SELECT count(*)::int AS n FROM calendars')).rows[0].n;
    const res = await t.call(tokenA, 'POST', '/api/v1/calendars', body);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe(code);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM calendars')).rows[0].n).toBe(before);
  });

  it('keeps tenants apart and needs sla:manage to change', async () => {
    const created = await t.call(tokenA, 'POST', '/api/v1/calendars', { timeZone: 'UTC', alwaysOpen: true });
    expect((await t.call(tokenB, 'GET', `/api/v1/calendars/${created.body.id}`)).status).toBe(404);
    expect(
      (
        await t.call(tokenB, 'PUT', `/api/v1/calendars/${created.body.id}`, {
          timeZone: 'UTC',
          alwaysOpen: true,
        })
      ).status,
    ).toBe(404);
    expect((await t.call(tokenB, 'DELETE', `/api/v1/calendars/${created.body.id}`)).status).toBe(404);
    expect((await t.call(tokenB, 'GET', '/api/v1/calendars')).body.items).toEqual([]);
    const agent = (await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'agent' })).body.token;
    expect((await t.call(agent, 'GET', '/api/v1/calendars')).status).toBe(200);
    expect(
      (await t.call(agent, 'POST', '/api/v1/calendars', { timeZone: 'UTC', alwaysOpen: true })).status,
    ).toBe(403);
  });
});

describe('SLA policies', () => {
  it('stores a policy with defaults, orders by position and refuses to delete its calendar', async () => {
    const cal = (
      await t.call(tokenA, 'POST', '/api/v1/calendars', { timeZone: 'America/New_York', weekly: weekdays })
    ).body;
    const manager = await makePerson(t, tokenA, { kind: 'agent' });
    const vip = await t.call(tokenA, 'POST', '/api/v1/sla-policies', {
      name: 'VIP',
      position: 1,
      conditions: { requesterDomains: ['bigclient.example'] },
      calendarId: cal.id,
      targets: { urgent: { firstResponse: 900, resolution: 4 * 3600 }, high: { firstResponse: 3600 } },
      escalations: [
        {
          percent: 125,
          actions: [
            { type: 'reassign', personId: manager.id },
            { type: 'notify', role: 'admin' },
          ],
        },
        { percent: 110, actions: [{ type: 'set_priority', priority: 'urgent' }] },
      ],
    });
    expect(vip.status).toBe(201);
    expect(vip.body).toMatchObject({
      thresholds: [50, 75, 90, 100],
      pauseStatuses: { resolution: ['pending', 'on_hold'], firstResponse: [] },
      reopen: 'continue',
    });
    expect(vip.body.escalations.map((e: any) => e.percent)).toEqual([110, 125]);
    const standard = await t.call(tokenA, 'POST', '/api/v1/sla-policies', {
      name: 'Standard',
      position: 10,
      calendarId: null,
      targets: { normal: { firstResponse: 8 * 3600 }, urgent: { firstResponse: 3600 } },
    });
    expect(standard.status).toBe(201);
    const list = await t.call(tokenA, 'GET', '/api/v1/sla-policies');
    expect(list.body.items.map((p: any) => p.name)).toEqual(['VIP', 'Standard']);
    expect((await t.call(tokenA, 'DELETE', `/api/v1/calendars/${cal.id}`)).status).toBe(409);

    const policies = list.body.items as Policy[];
    expect(
      matchPolicy(policies, { priority: 'urgent', requesterEmail: 'boss@BigClient.example', mailboxId: null })
        ?.name,
    ).toBe('VIP');
    expect(
      matchPolicy(policies, { priority: 'urgent', requesterEmail: 'someone@small.example', mailboxId: null })
        ?.name,
    ).toBe('Standard');
    expect(
      matchPolicy(policies, { priority: 'low', requesterEmail: 'someone@small.example', mailboxId: null }),
    ).toBeUndefined();

    const replaced = await t.call(tokenA, 'PUT', `/api/v1/sla-policies/${standard.body.id}`, {
      name: 'Standard',
      position: 0,
      calendarId: null,
      targets: { low: { resolution: 86_400 } },
      reopen: 'restart',
    });
    expect(replaced.body).toMatchObject({ position: 0, reopen: 'restart' });
    expect((await t.call(tokenA, 'DELETE', `/api/v1/sla-policies/${standard.body.id}`)).status).toBe(204);
  });

  it.each([
    ['no targets', { name: 'x', position: 1, calendarId: null, targets: {} }],
    ['a zero target', { name: 'x', position: 1, calendarId: null, targets: { low: { resolution: 0 } } }],
    [
      'thresholds without 100',
      {
        name: 'x',
        position: 1,
        calendarId: null,
        targets: { low: { resolution: 60 } },
        thresholds: [50, 75],
      },
    ],
    [
      'an unknown calendar',
      {
        name: 'x',
        position: 1,
        calendarId: '01a20430-e963-7a16-98d1-c69cf56067c7',
        targets: { low: { resolution: 60 } },
      },
    ],
    [
      'a reassign to nobody',
      {
        name: 'x',
        position: 1,
        calendarId: null,
        targets: { low: { resolution: 60 } },
        escalations: [
          { percent: 110, actions: [{ type: 'reassign', personId: '01a20430-e963-7a16-98d1-c69cf56067c7' }] },
        ],
      },
    ],
    [
      'an unknown field',
      { name: 'x', position: 1, calendarId: null, targets: { low: { resolution: 60 } }, colour: 'red' },
    ],
    [
      // Only roles people have reach anyone; another name would notify nobody, silently.
      'a notify to a role no one can have',
      {
        name: 'x',
        position: 1,
        calendarId: null,
        targets: { low: { resolution: 60 } },
        escalations: [{ percent: 110, actions: [{ type: 'notify', role: 'team_lead' }] }],
      },
    ],
  ])('refuses a policy with %s', async (_name, body) => {
    const res = await t.call(tokenA, 'POST', '/api/v1/sla-policies', body);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
  });

  it("keeps tenants apart: B cannot use or see A's calendars and policies", async () => {
    const cal = (await t.call(tokenA, 'POST', '/api/v1/calendars', { timeZone: 'UTC', alwaysOpen: true }))
      .body;
    const refused = await t.call(tokenB, 'POST', '/api/v1/sla-policies', {
      name: 'x',
      position: 1,
      calendarId: cal.id,
      targets: { low: { resolution: 60 } },
    });
    expect(refused.status).toBe(400);
    const mine = (
      await t.call(tokenA, 'POST', '/api/v1/sla-policies', {
        name: 'A only',
        position: 5,
        calendarId: cal.id,
        targets: { low: { resolution: 60 } },
      })
    ).body;
    expect((await t.call(tokenB, 'GET', `/api/v1/sla-policies/${mine.id}`)).status).toBe(404);
    expect((await t.call(tokenB, 'DELETE', `/api/v1/sla-policies/${mine.id}`)).status).toBe(404);
    expect((await t.call(tokenB, 'GET', '/api/v1/sla-policies')).body.items).toEqual([]);
  });
});

describe('GET /tickets/:id/sla', () => {
  it("shows the ticket's clocks under the matching policy, following replies and status changes", async () => {
    const { createTenant } = await import('../tenants/service.ts');
    const c = await createTenant(t.db.pool, { name: 'sla-read' });
    const token = c.adminToken.token;
    const cal = (await t.call(token, 'POST', '/api/v1/calendars', { timeZone: 'UTC', alwaysOpen: true }))
      .body;
    const policy = (
      await t.call(token, 'POST', '/api/v1/sla-policies', {
        name: 'Default',
        position: 1,
        calendarId: cal.id,
        targets: { normal: { firstResponse: 3600, resolution: 7200 } },
      })
    ).body;
    const ticket = (
      await t.call(token, 'POST', '/api/v1/tickets', {
        subject: 'Clock me',
        requester: { email: 'r@example.com' },
      })
    ).body;
    const sla = await t.call(token, 'GET', `/api/v1/tickets/${ticket.id}/sla`);
    expect(sla.status).toBe(200);
    expect(sla.body.policyId).toBe(policy.id);
    const fr = sla.body.metrics.find((m: any) => m.metric === 'first_response');
    expect(fr).toMatchObject({
      cycle: 1,
      status: 'active',
      targetSeconds: 3600,
      breachedAt: null,
      fulfilledAt: null,
    });
    expect(Date.parse(fr.dueAt) - Date.parse(ticket.createdAt)).toBeGreaterThanOrEqual(3599_000);
    expect(Date.parse(fr.dueAt) - Date.parse(ticket.createdAt)).toBeLessThanOrEqual(3600_000);
    expect(fr.thresholds.map((th: any) => th.percent)).toEqual([50, 75, 90, 100]);

    await t.call(token, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      text: 'On it',
      visibility: 'public',
    });
    await t.call(token, 'PATCH', `/api/v1/tickets/${ticket.id}`, { status: 'pending' });
    const after = (await t.call(token, 'GET', `/api/v1/tickets/${ticket.id}/sla`)).body.metrics;
    expect(after.find((m: any) => m.metric === 'first_response').status).toBe('fulfilled');
    expect(after.find((m: any) => m.metric === 'resolution').status).toBe('paused');

    const other = await t.call(tokenB, 'GET', `/api/v1/tickets/${ticket.id}/sla`);
    expect(other.status).toBe(404);
    const low = (
      await t.call(token, 'POST', '/api/v1/tickets', {
        subject: 'No policy',
        requester: { email: 'r@example.com' },
        priority: 'low',
      })
    ).body;
    expect((await t.call(token, 'GET', `/api/v1/tickets/${low.id}/sla`)).body).toEqual({
      policyId: null,
      metrics: [],
    });
  });
});

describe('SLA scheduler', () => {
  it('fires each threshold once, on its due time, also those that came due while nothing ran', async () => {
    const { createTenant } = await import('../tenants/service.ts');
    const { runSlaPass } = await import('./scheduler.ts');
    const c = await createTenant(t.db.pool, { name: 'sla-fire' });
    const token = c.adminToken.token;
    const cal = (await t.call(token, 'POST', '/api/v1/calendars', { timeZone: 'UTC', alwaysOpen: true }))
      .body;
    await t.call(token, 'POST', '/api/v1/sla-policies', {
      name: 'Tight',
      position: 1,
      calendarId: cal.id,
      targets: { normal: { firstResponse: 100 } },
      escalations: [{ percent: 150, actions: [{ type: 'notify', role: 'agent' }] }],
    });
    const ticket = (
      await t.call(token, 'POST', '/api/v1/tickets', {
        subject: 'Fire',
        requester: { email: 'f@example.com' },
      })
    ).body;
    const created = Math.floor(Date.parse(ticket.createdAt) / 1000);
    const fires = async () =>
      (
        await t.db.admin.query(
          'SELECT percent, due_at, fired_at FROM sla_threshold_fires WHERE ticket_id = $1 ORDER BY percent',
          [ticket.id],
        )
      ).rows;
    const jobs = async () =>
      (
        await t.db.admin.query(
          "SELECT count(*)::int AS n FROM events WHERE type IN ('sla.threshold', 'sla.breached', 'sla.escalated') AND ticket_id = $1",
          [ticket.id],
        )
      ).rows[0].n;

    // Right after creation nothing is due; the wake-up moves to the 50 % mark.
    await runSlaPass({ pool: t.db.pool, queue: t.queue }, created + 10);
    expect(await fires()).toEqual([]);
    const wake = (
      await t.db.admin.query('SELECT next_wake_at FROM ticket_wakeups WHERE ticket_id = $1', [ticket.id])
    ).rows[0].next_wake_at;
    expect(Math.floor(Date.parse(wake) / 1000)).toBe(created + 50);

    // "Restart" long after: every threshold that came due meanwhile fires now, with its own due time.
    const late = created + 1000;
    expect(await runSlaPass({ pool: t.db.pool, queue: t.queue }, late)).toBe(5);
    const fired = await fires();
    expect(fired.map((f) => f.percent)).toEqual([50, 75, 90, 100, 150]);
    expect(fired.map((f) => Math.floor(Date.parse(f.due_at) / 1000) - created)).toEqual([
      50, 75, 90, 100, 150,
    ]);
    expect(fired.every((f) => Math.floor(Date.parse(f.fired_at) / 1000) === late)).toBe(true);
    expect(await jobs()).toBe(5);

    // Once: another pass (and a forced wake-up) fires nothing more.
    await t.db.admin.query(
      'INSERT INTO ticket_wakeups (tenant_id, ticket_id, next_wake_at) VALUES ($1, $2, to_timestamp($3)) ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET next_wake_at = excluded.next_wake_at',
      [c.tenant.id, ticket.id, late],
    );
    expect(await runSlaPass({ pool: t.db.pool, queue: t.queue }, late + 5)).toBe(0);
    expect(await jobs()).toBe(5);
    const sla = (await t.call(token, 'GET', `/api/v1/tickets/${ticket.id}/sla`)).body;
    const fr = sla.metrics.find((m: any) => m.metric === 'first_response');
    // (The passes above ran at simulated future instants; the read side reports the recorded firings.)
    expect(fr.thresholds.map((th: any) => th.firedAt)).toEqual(
      fired.map(() => new Date(late * 1000).toISOString().replace('.000Z', 'Z')),
    );
  });
});

describe('ticket list SLA filters', () => {
  it('lists tickets at risk, breached or paused, and sorts by due time', async () => {
    const { createTenant } = await import('../tenants/service.ts');
    const { runSlaPass } = await import('./scheduler.ts');
    const c = await createTenant(t.db.pool, { name: 'sla-filter' });
    const token = c.adminToken.token;
    const cal = (await t.call(token, 'POST', '/api/v1/calendars', { timeZone: 'UTC', alwaysOpen: true }))
      .body;
    await t.call(token, 'POST', '/api/v1/sla-policies', {
      name: 'P',
      position: 1,
      calendarId: cal.id,
      targets: { normal: { firstResponse: 100 }, high: { firstResponse: 1000 }, low: { resolution: 100 } },
    });
    await t.call(token, 'POST', '/api/v1/tickets', {
      subject: 'slow',
      requester: { email: 'a@example.com' },
      priority: 'high',
    });
    const fast = (
      await t.call(token, 'POST', '/api/v1/tickets', {
        subject: 'fast',
        requester: { email: 'b@example.com' },
      })
    ).body;
    const held = (
      await t.call(token, 'POST', '/api/v1/tickets', {
        subject: 'held',
        requester: { email: 'c@example.com' },
        priority: 'low',
      })
    ).body;
    await t.call(token, 'PATCH', `/api/v1/tickets/${held.id}`, { status: 'pending' });
    const created = Math.floor(Date.parse(fast.createdAt) / 1000);
    const list = async (query: string) =>
      (await t.call(token, 'GET', `/api/v1/tickets?${query}`)).body.items.map((i: any) => i.subject);

    await runSlaPass({ pool: t.db.pool, queue: t.queue }, created + 80); // fast: 80 % (past 75 %), slow: 8 %
    expect(await list('sla=at_risk')).toEqual(['fast']);
    expect(await list('sla=paused')).toEqual(['held']);
    expect(await list('sort=due&limit=2')).toEqual(['fast', 'slow']);
    await t.db.admin.query('UPDATE ticket_wakeups SET next_wake_at = to_timestamp($1)', [created + 150]);
    await runSlaPass({ pool: t.db.pool, queue: t.queue }, created + 150);
    expect(await list('sla=breached')).toEqual(['fast']);
    expect(await list('sla=at_risk')).toEqual([]);
    expect((await t.call(token, 'GET', '/api/v1/tickets?sla=late')).status).toBe(400);
    expect((await t.call(tokenB, 'GET', '/api/v1/tickets?sla=breached')).body.items).toEqual([]);
  });
});

describe('escalations', () => {
  it('records threshold, breach and escalation events and carries out the level actions once', async () => {
    const { createTenant } = await import('../tenants/service.ts');
    const { runSlaPass } = await import('./scheduler.ts');
    const c = await createTenant(t.db.pool, { name: 'sla-escalate' });
    const token = c.adminToken.token;
    const lead = await makePerson(t, token, { kind: 'agent' });
    const cal = (await t.call(token, 'POST', '/api/v1/calendars', { timeZone: 'UTC', alwaysOpen: true }))
      .body;
    await t.call(token, 'POST', '/api/v1/sla-policies', {
      name: 'Escalating',
      position: 1,
      calendarId: cal.id,
      targets: { normal: { firstResponse: 100 }, urgent: { firstResponse: 100 } },
      thresholds: [100],
      escalations: [
        {
          percent: 120,
          actions: [
            { type: 'reassign', personId: lead.id },
            { type: 'notify', role: 'admin' },
            { type: 'set_priority', priority: 'urgent' },
          ],
        },
      ],
    });
    const ticket = (
      await t.call(token, 'POST', '/api/v1/tickets', {
        subject: 'Escalate me',
        requester: { email: 'e@example.com' },
      })
    ).body;
    const created = Math.floor(Date.parse(ticket.createdAt) / 1000);
    await runSlaPass({ pool: t.db.pool, queue: t.queue }, created + 130);
    const after = (await t.call(token, 'GET', `/api/v1/tickets/${ticket.id}`)).body;
    expect(after).toMatchObject({ assigneeId: lead.id, priority: 'urgent' });
    const firings = async () =>
      (await t.call(token, 'GET', `/api/v1/tickets/${ticket.id}/sla/events`)).body.items.filter((e: any) =>
        ['threshold', 'breached', 'escalation'].includes(e.type),
      );
    const events = await firings();
    expect(events.map((e: any) => [e.type, e.data.percent]).sort()).toEqual([
      ['breached', 100],
      ['escalation', 120],
    ]);
    const escalated = async () =>
      (
        await t.db.admin.query(
          "SELECT data, urgent FROM events WHERE type = 'sla.escalated' AND ticket_id = $1",
          [ticket.id],
        )
      ).rows;
    expect(await escalated()).toEqual([
      {
        urgent: true,
        data: expect.objectContaining({
          metric: 'first_response',
          percent: 120,
          notify: [{ role: 'admin' }],
        }),
      },
    ]);
    // Again: nothing more happens (each level once).
    await t.db.admin.query('UPDATE ticket_wakeups SET next_wake_at = to_timestamp($2) WHERE ticket_id = $1', [
      ticket.id,
      created + 131,
    ]);
    await runSlaPass({ pool: t.db.pool, queue: t.queue }, created + 140);
    expect(await firings()).toHaveLength(2);
    expect(await escalated()).toHaveLength(1);
    expect((await t.call(tokenB, 'GET', `/api/v1/tickets/${ticket.id}/sla/events`)).status).toBe(404);
  });
});
