import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, makeTicket, type TestApp, useTestApp } from '../../../test/app.ts';

let t: TestApp;
let tokenA: string;
let tokenB: string;

beforeAll(async () => {
  t = await useTestApp({ bodyLimit: 64 * 1024 });
  tokenA = t.a.adminToken.token;
  tokenB = t.b.adminToken.token;
});

describe('POST /api/v1/tickets', () => {
  it('creates a ticket with a per-tenant number, a new contact and the first message', async () => {
    const res = await t.call(tokenA, 'POST', '/api/v1/tickets', {
      subject: '  VPN down  ',
      requester: { email: 'Carol@Example.com', name: 'Carol' },
      priority: 'high',
      message: {
        text: 'Cannot connect',
        html: '<p onclick="x()">Cannot <b>connect</b><script>alert(1)</script></p>',
      },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      subject: 'VPN down',
      status: 'new',
      priority: 'high',
      assigneeId: null,
    });
    expect(res.body.number).toMatch(/^T-\d+$/);
    expect(res.headers['location']).toBe(`/api/v1/tickets/${res.body.id}`);

    const requester = await t.call(tokenA, 'GET', `/api/v1/people/${res.body.requesterId}`);
    expect(requester.body).toMatchObject({
      displayName: 'Carol',
      kind: 'contact',
      email: 'Carol@Example.com',
    });

    const messages = await t.call(tokenA, 'GET', `/api/v1/tickets/${res.body.id}/messages`);
    expect(messages.body.items).toHaveLength(1);
    expect(messages.body.items[0]).toMatchObject({
      text: 'Cannot connect',
      visibility: 'public',
      direction: 'inbound',
      authorId: res.body.requesterId,
    });
    expect(messages.body.items[0].html).toBe('<p>Cannot <b>connect</b></p>');

    const { rows } = await t.db.admin.query(
      'SELECT from_status, to_status FROM ticket_status_history WHERE ticket_id = $1',
      [res.body.id],
    );
    expect(rows).toEqual([{ from_status: null, to_status: 'new' }]);
  });

  it('reuses the person for a known address, case-insensitively', async () => {
    const first = await makeTicket(t, tokenA, { requester: { email: 'dave@example.com' } });
    const second = await makeTicket(t, tokenA, { requester: { email: ' DAVE@example.COM ' } });
    expect(second.requesterId).toBe(first.requesterId);
  });

  it('numbers tickets per tenant without gaps, also under concurrency', async () => {
    const created = await Promise.all(Array.from({ length: 20 }, () => makeTicket(t, tokenB)));
    const numbers = created.map((c) => Number(c.number.slice(2))).sort((x, y) => x - y);
    expect(numbers).toEqual(Array.from({ length: 20 }, (_, i) => numbers[0]! + i));
    const other = await makeTicket(t, tokenA);
    expect(Number(other.number.slice(2))).toBeLessThan(20); // tenant A has its own sequence
  });

  it('accepts an existing person as requester and an agent as assignee', async () => {
    const agent = await makePerson(t, tokenA, { kind: 'agent' });
    const contact = await makePerson(t, tokenA, { kind: 'contact' });
    const res = await t.call(tokenA, 'POST', '/api/v1/tickets', {
      subject: 'Laptop',
      requester: { personId: contact.id },
      assigneeId: agent.id,
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ requesterId: contact.id, assigneeId: agent.id });
  });

  it.each([
    ['missing subject', { requester: { email: 'a@example.com' } }],
    ['empty subject', { subject: '   ', requester: { email: 'a@example.com' } }],
    ['unknown field', { subject: 'x', requester: { email: 'a@example.com' }, colour: 'red' }],
    ['wrong type', { subject: 42, requester: { email: 'a@example.com' } }],
    ['bad priority', { subject: 'x', requester: { email: 'a@example.com' }, priority: 'asap' }],
    ['bad email', { subject: 'x', requester: { email: 'not-an-address' } }],
    [
      'both requester forms',
      {
        subject: 'x',
        requester: { email: 'a@example.com', personId: '01a20430-e963-7a16-98d1-c69cf56067c7' },
      },
    ],
    ['unknown person', { subject: 'x', requester: { personId: '01a20430-e963-7a16-98d1-c69cf56067c7' } }],
    ['empty message', { subject: 'x', requester: { email: 'a@example.com' }, message: { text: ' ' } }],
  ])('rejects %s with validation_failed and writes nothing', async (_name, body) => {
    const before = await t.db.admin.query('SELECT count(*)::int AS n FROM tickets');
    const res = await t.call(tokenA, 'POST', '/api/v1/tickets', body);
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 400, code: 'validation_failed' });
    expect(res.body.type).toMatch(/validation_failed$/);
    expect(typeof res.body.detail).toBe('string');
    const after = await t.db.admin.query('SELECT count(*)::int AS n FROM tickets');
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it('rejects malformed JSON, a wrong content type and an oversize body', async () => {
    const bad = await t.call(tokenA, 'POST', '/api/v1/tickets', '{"subject":', {
      'content-type': 'application/json',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('invalid_json');
    const text = await t.call(tokenA, 'POST', '/api/v1/tickets', 'subject=x', {
      'content-type': 'text/plain',
    });
    expect(text.status).toBe(415);
    expect(text.body.code).toBe('unsupported_media_type');
    const big = await t.call(tokenA, 'POST', '/api/v1/tickets', {
      subject: 'big',
      requester: { email: 'a@example.com' },
      message: { text: 'x'.repeat(100 * 1024) },
    });
    expect(big.status).toBe(413);
    expect(big.body.code).toBe('payload_too_large');
  });
});

describe('authentication and permissions', () => {
  it('requires a valid, unrevoked token', async () => {
    expect((await t.call(undefined, 'GET', '/api/v1/tickets')).body.code).toBe('unauthorized');
    const garbage = await t.call('rd_nonsense', 'GET', '/api/v1/tickets');
    expect(garbage.status).toBe(401);
    const unknown = await t.call(`rd_${'A'.repeat(43)}`, 'GET', '/api/v1/tickets');
    expect(unknown.status).toBe(401);
    const basic = await t.call(undefined, 'GET', '/api/v1/tickets', undefined, {
      authorization: 'Basic abc',
    });
    expect(basic.status).toBe(401);
    expect(basic.headers['www-authenticate']).toMatch(/^Bearer/);
  });

  it('answers 401 before looking at the body or the route', async () => {
    const res = await t.call(undefined, 'POST', '/api/v1/tickets', { nonsense: true });
    expect(res.status).toBe(401);
    const missing = await t.call(undefined, 'GET', '/api/v1/no-such-route');
    expect(missing.status).toBe(401);
  });

  it('lets a viewer read but not write', async () => {
    const minted = await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'viewer', label: 'read only' });
    expect(minted.status).toBe(201);
    const viewer = minted.body.token;
    expect((await t.call(viewer, 'GET', '/api/v1/tickets')).status).toBe(200);
    const write = await t.call(viewer, 'POST', '/api/v1/tickets', {
      subject: 'x',
      requester: { email: 'v@example.com' },
    });
    expect(write.status).toBe(403);
    expect(write.body.code).toBe('forbidden');
  });
});

describe('GET /api/v1/tickets', () => {
  it('pages with an opaque cursor, newest first, without repeats or gaps', async () => {
    const fresh = await useTestAppTenantWithTickets(7);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { status: number; body: any } = await t.call(
        fresh,
        'GET',
        `/api/v1/tickets?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(3);
      seen.push(...res.body.items.map((i: any) => i.number));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(['T-7', 'T-6', 'T-5', 'T-4', 'T-3', 'T-2', 'T-1']);
  });

  it('filters by status, priority, requester, assignee and subject text', async () => {
    const agent = await makePerson(t, tokenA, { kind: 'agent' });
    const mine = await makeTicket(t, tokenA, {
      subject: 'Unique 100% printer_jam',
      priority: 'urgent',
      assigneeId: agent.id,
    });
    await makeTicket(t, tokenA, { subject: 'Unique other' });
    const byQ = await t.call(tokenA, 'GET', `/api/v1/tickets?q=${encodeURIComponent('100% printer_')}`);
    expect(byQ.body.items.map((i: any) => i.id)).toEqual([mine.id]);
    const byAssignee = await t.call(tokenA, 'GET', `/api/v1/tickets?assigneeId=${agent.id}`);
    expect(byAssignee.body.items.map((i: any) => i.id)).toEqual([mine.id]);
    const byRequester = await t.call(tokenA, 'GET', `/api/v1/tickets?requesterId=${mine.requesterId}`);
    expect(byRequester.body.items.map((i: any) => i.id)).toEqual([mine.id]);
    const urgent = await t.call(tokenA, 'GET', '/api/v1/tickets?priority=urgent&status=new');
    expect(urgent.body.items.every((i: any) => i.priority === 'urgent' && i.status === 'new')).toBe(true);
    expect(urgent.body.items.map((i: any) => i.id)).toContain(mine.id);
  });

  it.each([
    ['not base64', '!!!'],
    ['random base64', Buffer.from('hello').toString('base64url')],
    ['wrong shape', Buffer.from(JSON.stringify({ a: 1 })).toString('base64url')],
    ['bad id', Buffer.from(JSON.stringify(['2026-01-01T00:00:00Z', 'x'])).toString('base64url')],
  ])('answers 400 invalid_cursor for a malformed cursor (%s)', async (_name, cursor) => {
    const res = await t.call(tokenA, 'GET', `/api/v1/tickets?cursor=${cursor}`);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('invalid_cursor');
  });

  it('validates limit and filters', async () => {
    expect((await t.call(tokenA, 'GET', '/api/v1/tickets?limit=201')).body.code).toBe('validation_failed');
    expect((await t.call(tokenA, 'GET', '/api/v1/tickets?limit=0')).status).toBe(400);
    expect((await t.call(tokenA, 'GET', '/api/v1/tickets?status=lost')).status).toBe(400);
    expect((await t.call(tokenA, 'GET', '/api/v1/tickets?bogus=1')).status).toBe(400);
    const page = await t.call(tokenA, 'GET', '/api/v1/tickets');
    expect(page.body.items.length).toBeLessThanOrEqual(50);
  });
});

describe('PATCH /api/v1/tickets/:id and messages', () => {
  it('changes status, priority, assignee and subject, recording each status transition', async () => {
    const ticket = await makeTicket(t, tokenA);
    const agent = await makePerson(t, tokenA, { kind: 'agent' });
    const res = await t.call(tokenA, 'PATCH', `/api/v1/tickets/${ticket.id}`, {
      status: 'pending',
      priority: 'low',
      assigneeId: agent.id,
      subject: 'Renamed',
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'pending',
      priority: 'low',
      assigneeId: agent.id,
      subject: 'Renamed',
    });
    expect(Date.parse(res.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(ticket.updatedAt));
    await t.call(tokenA, 'PATCH', `/api/v1/tickets/${ticket.id}`, { status: 'solved', assigneeId: null });
    const same = await t.call(tokenA, 'PATCH', `/api/v1/tickets/${ticket.id}`, { status: 'solved' });
    expect(same.body.assigneeId).toBeNull();
    const { rows } = await t.db.admin.query(
      'SELECT from_status, to_status FROM ticket_status_history WHERE ticket_id = $1 ORDER BY seq',
      [ticket.id],
    );
    expect(rows).toEqual([
      { from_status: null, to_status: 'new' },
      { from_status: 'new', to_status: 'pending' },
      { from_status: 'pending', to_status: 'solved' },
    ]);
  });

  it('refuses an empty patch, unknown fields and a contact as assignee', async () => {
    const ticket = await makeTicket(t, tokenA);
    expect((await t.call(tokenA, 'PATCH', `/api/v1/tickets/${ticket.id}`, {})).status).toBe(400);
    expect((await t.call(tokenA, 'PATCH', `/api/v1/tickets/${ticket.id}`, { number: 'T-1' })).status).toBe(
      400,
    );
    const contact = await makePerson(t, tokenA, { kind: 'contact' });
    const res = await t.call(tokenA, 'PATCH', `/api/v1/tickets/${ticket.id}`, { assigneeId: contact.id });
    expect(res.status).toBe(400);
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${ticket.id}`)).body.assigneeId).toBeNull();
  });

  it('adds public replies and internal notes authored by the token person; an agent reply opens a new ticket', async () => {
    const ticket = await makeTicket(t, tokenA);
    const note = await t.call(tokenA, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      text: 'checking logs',
      visibility: 'internal',
    });
    expect(note.status).toBe(201);
    expect(note.body).toMatchObject({
      visibility: 'internal',
      direction: 'outbound',
      authorId: t.a.adminPersonId,
    });
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${ticket.id}`)).body.status).toBe('new');
    const reply = await t.call(tokenA, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      text: 'Fixed it',
      html: '<a href="javascript:x">x</a>',
      visibility: 'public',
    });
    expect(reply.status).toBe(201);
    expect(reply.body.html).toBe('<a>x</a>');
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${ticket.id}`)).body.status).toBe('open');
    const internalOnly = await t.call(
      tokenA,
      'GET',
      `/api/v1/tickets/${ticket.id}/messages?visibility=internal`,
    );
    expect(internalOnly.body.items.map((m: any) => m.id)).toEqual([note.body.id]);
    const bad = await t.call(tokenA, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      text: 'x',
      visibility: 'secret',
    });
    expect(bad.status).toBe(400);
  });

  it('answers 404 for a ticket that does not exist', async () => {
    const id = '01a20430-e963-7a16-98d1-c69cf56067c7';
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${id}`)).body.code).toBe('not_found');
    expect((await t.call(tokenA, 'PATCH', `/api/v1/tickets/${id}`, { status: 'open' })).status).toBe(404);
    expect(
      (await t.call(tokenA, 'POST', `/api/v1/tickets/${id}/messages`, { text: 'x', visibility: 'public' }))
        .status,
    ).toBe(404);
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/not-a-uuid`)).status).toBe(400);
  });
});

describe('tenant isolation', () => {
  it("tenant B cannot read, list, change, reply to or even detect tenant A's tickets", async () => {
    const secret = await makeTicket(t, tokenA, { subject: 'Tenant A secret' });
    const missing = await t.call(tokenB, 'GET', '/api/v1/tickets/01a20430-e963-7a16-98d1-c69cf56067c7');
    const read = await t.call(tokenB, 'GET', `/api/v1/tickets/${secret.id}`);
    expect(read.status).toBe(404);
    expect(read.body).toEqual({ ...missing.body, detail: missing.body.detail }); // indistinguishable from a missing id
    const list = await t.call(tokenB, 'GET', `/api/v1/tickets?q=${encodeURIComponent('Tenant A secret')}`);
    expect(list.body.items).toEqual([]);
    const byRequester = await t.call(tokenB, 'GET', `/api/v1/tickets?requesterId=${secret.requesterId}`);
    expect(byRequester.body.items).toEqual([]);
    expect((await t.call(tokenB, 'PATCH', `/api/v1/tickets/${secret.id}`, { status: 'closed' })).status).toBe(
      404,
    );
    expect(
      (
        await t.call(tokenB, 'POST', `/api/v1/tickets/${secret.id}/messages`, {
          text: 'hi',
          visibility: 'public',
        })
      ).status,
    ).toBe(404);
    expect((await t.call(tokenB, 'GET', `/api/v1/tickets/${secret.id}/messages`)).status).toBe(404);
    const after = await t.call(tokenA, 'GET', `/api/v1/tickets/${secret.id}`);
    expect(after.body.status).toBe('new');
  });

  it("tenant B cannot use tenant A's people as requester or assignee", async () => {
    const agentA = await makePerson(t, tokenA, { kind: 'agent' });
    const res = await t.call(tokenB, 'POST', '/api/v1/tickets', {
      subject: 'x',
      requester: { personId: agentA.id },
    });
    expect(res.status).toBe(400);
    const own = await makeTicket(t, tokenB);
    expect(
      (await t.call(tokenB, 'PATCH', `/api/v1/tickets/${own.id}`, { assigneeId: agentA.id })).status,
    ).toBe(400);
  });
});

/** A new tenant holding exactly `n` tickets; returns its admin token. */
async function useTestAppTenantWithTickets(n: number): Promise<string> {
  const { createTenant } = await import('../tenants/service.ts');
  const created = await createTenant(t.db.pool, { name: `paging-${Date.now()}` });
  for (let i = 0; i < n; i++) await makeTicket(t, created.adminToken.token);
  return created.adminToken.token;
}

describe('DELETE /api/v1/tickets/:id', () => {
  it('deletes: 204, then 404 everywhere and left out of lists; a second delete is 404', async () => {
    const keep = await makeTicket(t, tokenA, { subject: 'stays' });
    const doomed = await makeTicket(t, tokenA, { subject: 'goes' });
    expect((await t.call(tokenA, 'DELETE', `/api/v1/tickets/${doomed.id}`)).status).toBe(204);
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${doomed.id}`)).status).toBe(404);
    const patch = await t.call(tokenA, 'PATCH', `/api/v1/tickets/${doomed.id}`, { status: 'open' });
    expect(patch.status).toBe(404);
    const reply = await t.call(tokenA, 'POST', `/api/v1/tickets/${doomed.id}/messages`, {
      text: 'hello?',
      visibility: 'public',
    });
    expect(reply.status).toBe(404);
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${doomed.id}/messages`)).status).toBe(404);
    const list = await t.call(tokenA, 'GET', '/api/v1/tickets?limit=200');
    const ids = list.body.items.map((x: { id: string }) => x.id);
    expect(ids).toContain(keep.id);
    expect(ids).not.toContain(doomed.id);
    const again = await t.call(tokenA, 'DELETE', `/api/v1/tickets/${doomed.id}`);
    expect(again.status).toBe(404);
    expect(again.body.code).toBe('not_found');
  });

  it("cannot delete another tenant's ticket (404, and it stays), nor with a viewer token (403)", async () => {
    const theirs = await makeTicket(t, tokenA, { subject: 'A owns this' });
    const res = await t.call(tokenB, 'DELETE', `/api/v1/tickets/${theirs.id}`);
    expect(res.status).toBe(404);
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${theirs.id}`)).status).toBe(200);
    const minted = await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'viewer', label: 'no delete' });
    const viewer = minted.body.token;
    const denied = await t.call(viewer, 'DELETE', `/api/v1/tickets/${theirs.id}`);
    expect(denied.status).toBe(403);
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${theirs.id}`)).status).toBe(200);
  });
});
