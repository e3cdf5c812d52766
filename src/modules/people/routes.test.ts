import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, type TestApp, useTestApp } from '../../../test/app.ts';

let t: TestApp;
let tokenA: string;
let tokenB: string;

beforeAll(async () => {
  t = await useTestApp();
  tokenA = t.a.adminToken.token;
  tokenB = t.b.adminToken.token;
});

describe('people routes', () => {
  it('creates, reads, updates and lists people', async () => {
    const created = await t.call(tokenA, 'POST', '/api/v1/people', {
      displayName: 'Erin Agent',
      kind: 'agent',
      emails: ['Erin@Example.com', 'erin.alias@example.com'],
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      displayName: 'Erin Agent',
      kind: 'agent',
      status: 'active',
      email: 'Erin@Example.com',
      emails: [
        { address: 'Erin@Example.com', primary: true },
        { address: 'erin.alias@example.com', primary: false },
      ],
    });
    const got = await t.call(tokenA, 'GET', `/api/v1/people/${created.body.id}`);
    expect(got.body).toEqual(created.body);

    const patched = await t.call(tokenA, 'PATCH', `/api/v1/people/${created.body.id}`, {
      displayName: 'Erin A.',
      email: 'erin.alias@example.com',
    });
    expect(patched.status).toBe(200);
    expect(patched.body.displayName).toBe('Erin A.');
    expect(patched.body.email).toBe('erin.alias@example.com');
    expect(patched.body.emails.filter((e: any) => e.primary)).toHaveLength(1);

    const list = await t.call(tokenA, 'GET', '/api/v1/people?kind=agent&q=erin');
    expect(list.body.items.map((p: any) => p.id)).toEqual([created.body.id]);
  });

  it('pages people with a cursor', async () => {
    for (let i = 0; i < 5; i++) await makePerson(t, tokenB, { kind: 'contact' });
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { body: any } = await t.call(
        tokenB,
        'GET',
        `/api/v1/people?kind=contact&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      ids.push(...res.body.items.map((p: any) => p.id));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(ids).toHaveLength(5);
    expect(new Set(ids).size).toBe(5);
  });

  it('refuses a duplicate email with 409 and the conflicting field, writing nothing', async () => {
    await makePerson(t, tokenA, { email: 'taken@example.com' });
    const before = await t.db.admin.query('SELECT count(*)::int AS n FROM people');
    const res = await t.call(tokenA, 'POST', '/api/v1/people', {
      displayName: 'Dup',
      kind: 'contact',
      email: 'TAKEN@example.com',
    });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: 'conflict', field: 'email' });
    const after = await t.call(tokenA, 'GET', '/api/v1/people?q=Dup');
    expect(after.body.items).toEqual([]);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM people')).rows[0].n).toBe(
      before.rows[0].n,
    );
  });

  it('lets the same address exist in two tenants', async () => {
    await makePerson(t, tokenA, { email: 'shared@example.com' });
    const res = await t.call(tokenB, 'POST', '/api/v1/people', {
      displayName: 'Shared',
      kind: 'contact',
      email: 'shared@example.com',
    });
    expect(res.status).toBe(201);
  });

  it.each([
    ['bad kind', { displayName: 'x', kind: 'robot' }],
    ['bad email', { displayName: 'x', kind: 'agent', email: 'nope' }],
    ['empty name', { displayName: '', kind: 'agent' }],
    ['unknown field', { displayName: 'x', kind: 'agent', team: 'admins' }],
    ['unknown role', { displayName: 'x', kind: 'agent', role: 'owner' }],
    ['a role for a contact', { displayName: 'x', kind: 'contact', role: 'viewer' }],
    [
      'quiet hours that are no times',
      { displayName: 'x', kind: 'agent', notifications: { quietHours: { start: '25:00', end: '07:00' } } },
    ],
  ])('rejects %s', async (_name, body) => {
    const res = await t.call(tokenA, 'POST', '/api/v1/people', body);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
  });

  it("keeps tenants apart: B cannot read, list, change or detect A's people", async () => {
    const person = await makePerson(t, tokenA, { displayName: 'Only In A', email: 'only-a@example.com' });
    expect((await t.call(tokenB, 'GET', `/api/v1/people/${person.id}`)).status).toBe(404);
    expect(
      (await t.call(tokenB, 'PATCH', `/api/v1/people/${person.id}`, { displayName: 'Hijacked' })).status,
    ).toBe(404);
    expect((await t.call(tokenB, 'GET', '/api/v1/people?q=Only%20In%20A')).body.items).toEqual([]);
    expect((await t.call(tokenA, 'GET', `/api/v1/people/${person.id}`)).body.displayName).toBe('Only In A');
  });

  it('requires people permissions', async () => {
    const viewer = (await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'viewer' })).body.token;
    expect((await t.call(viewer, 'GET', '/api/v1/people')).status).toBe(200);
    expect((await t.call(viewer, 'POST', '/api/v1/people', { displayName: 'x', kind: 'agent' })).status).toBe(
      403,
    );
  });

  it('keeps a role and notification settings; only an admin sets a role', async () => {
    const person = await makePerson(t, tokenA, { displayName: 'Quiet Quinn' });
    expect(person).toMatchObject({ role: 'agent', notifications: {} });
    const agentToken = (await t.call(tokenA, 'POST', '/api/v1/tokens', { role: 'agent' })).body.token;
    const byAgent = await t.call(agentToken, 'PATCH', `/api/v1/people/${person.id}`, { role: 'admin' });
    expect(byAgent.status).toBe(403);
    const settings = { fallback: ['slack', 'email'], quietHours: { start: '22:00', end: '07:00' } };
    const byAgentSettings = await t.call(agentToken, 'PATCH', `/api/v1/people/${person.id}`, {
      notifications: settings,
      timeZone: 'Europe/Berlin',
    });
    expect(byAgentSettings.status).toBe(200);
    expect(byAgentSettings.body).toMatchObject({ role: 'agent', notifications: settings });
    const byAdmin = await t.call(tokenA, 'PATCH', `/api/v1/people/${person.id}`, { role: 'viewer' });
    expect(byAdmin.body).toMatchObject({ role: 'viewer', notifications: settings });
    // A contact has no role; becoming an agent gives the default one.
    const contact = await makePerson(t, tokenA, { kind: 'contact' });
    expect(contact.role).toBeNull();
    expect((await t.call(tokenA, 'PATCH', `/api/v1/people/${contact.id}`, { role: 'admin' })).status).toBe(
      400,
    );
    expect((await t.call(tokenA, 'PATCH', `/api/v1/people/${contact.id}`, { kind: 'agent' })).body.role).toBe(
      'agent',
    );
  });
});
