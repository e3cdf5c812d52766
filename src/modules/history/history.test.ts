import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, makeTicket, type TestApp, useTestApp } from '../../../test/app.ts';
import { auditRecordingsSettled } from '../audit/request-audit.ts';

let t: TestApp;
let adminA: string;
let adminB: string;

beforeAll(async () => {
  t = await useTestApp();
  adminA = t.a.adminToken.token;
  adminB = t.b.adminToken.token;
});

describe('GET /tickets/:id/history', () => {
  it('tells status changes, assignments, SLA events and audit events, oldest first, with who', async () => {
    const agent = await makePerson(t, adminA, { displayName: 'Hana History' });
    const ticket = await makeTicket(t, adminA);
    await t.call(adminA, 'PATCH', `/api/v1/tickets/${ticket.id}`, { assigneeId: agent.id });
    await t.call(adminA, 'PATCH', `/api/v1/tickets/${ticket.id}`, { status: 'pending' });
    // What the SLA engine records (its own tests cover when).
    await t.db.admin.query(
      `INSERT INTO sla_events (tenant_id, id, ticket_id, metric, cycle, type, at, data)
       VALUES ($1, gen_random_uuid(), $2, 'resolution', 1, 'paused', clock_timestamp(), '{}')`,
      [t.a.tenant.id, ticket.id],
    );
    await auditRecordingsSettled();
    const res = await t.call(adminA, 'GET', `/api/v1/tickets/${ticket.id}/history`);
    expect(res.status).toBe(200);
    expect(res.body.truncated).toBe(false);
    const items = res.body.items as any[];
    const admin = { id: t.a.adminPersonId, displayName: expect.any(String) };
    expect(items.filter((i) => i.kind === 'status')).toEqual([
      { kind: 'status', at: expect.any(String), actor: admin, from: null, to: 'new' },
      { kind: 'status', at: expect.any(String), actor: admin, from: 'new', to: 'pending' },
    ]);
    expect(items.filter((i) => i.kind === 'assignment')).toEqual([
      { kind: 'assignment', at: expect.any(String), actor: admin, from: null, to: agent.id },
    ]);
    expect(items.filter((i) => i.kind === 'sla')).toMatchObject([
      { kind: 'sla', actor: null, metric: 'resolution', cycle: 1, type: 'paused' },
    ]);
    expect(items.filter((i) => i.kind === 'audit').map((i) => [i.action, i.outcome])).toEqual([
      ['tickets.create', 'success'],
      ['tickets.update', 'success'],
      ['tickets.update', 'success'],
    ]);
    const times = items.map((i) => Date.parse(i.at));
    expect(times).toEqual([...times].sort((x, y) => x - y));
    expect(items.at(-1).kind).toBe('sla');
  });

  it("is not found for another tenant's ticket or a deleted one", async () => {
    const ticket = await makeTicket(t, adminA);
    expect((await t.call(adminB, 'GET', `/api/v1/tickets/${ticket.id}/history`)).status).toBe(404);
    await t.call(adminA, 'DELETE', `/api/v1/tickets/${ticket.id}`);
    expect((await t.call(adminA, 'GET', `/api/v1/tickets/${ticket.id}/history`)).status).toBe(404);
  });
});

describe('GET /tickets/:id/messages: delivery', () => {
  it("shows the ledger's latest attempt of an agent's reply, with the number of attempts and the last error", async () => {
    const ticket = await makeTicket(t, adminA);
    // Without a mailbox the reply's mail is recorded skipped.
    const reply = await t.call(adminA, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      text: 'We are on it',
      visibility: 'public',
    });
    expect(reply.status).toBe(201);
    expect(reply.body.delivery).toMatchObject({
      status: 'skipped',
      attempt: 1,
      attempts: 1,
      lastError: null,
    });
    const messages = await t.call(adminA, 'GET', `/api/v1/tickets/${ticket.id}/messages`);
    const [mine, first] = messages.body.items;
    expect(mine.delivery).toMatchObject({ status: 'skipped', attempts: 1 });
    expect(first.delivery).toBeNull();
    expect((await t.call(adminB, 'GET', `/api/v1/tickets/${ticket.id}/messages`)).status).toBe(404);
  });
});
