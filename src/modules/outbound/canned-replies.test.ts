import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, makeTicket, type TestApp, useTestApp } from '../../../test/app.ts';

let t: TestApp;
let adminA: string;
let adminB: string;
let agent: { id: string; token: string };

beforeAll(async () => {
  t = await useTestApp();
  adminA = t.a.adminToken.token;
  adminB = t.b.adminToken.token;
  const person = await makePerson(t, adminA, { displayName: 'Alex Agent' });
  const minted = await t.call(adminA, 'POST', `/api/v1/people/${person.id}/tokens`, {
    label: 'a',
    role: 'agent',
  });
  agent = { id: person.id, token: minted.body.token };
});

const thanks = {
  shortcut: 'thanks',
  title: 'Thank you',
  body: 'Hello {{ requester.name }}, thanks for {{ ticket.number }} ({{ ticket.subject }}). {{ agent.name }}',
};

describe('canned replies', () => {
  it('are kept by template managers, read and rendered by agents', async () => {
    const created = await t.call(adminA, 'POST', '/api/v1/canned-replies', thanks);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject(thanks);
    const id = created.body.id;

    const ticket = await makeTicket(t, adminA, {
      subject: 'Broken <b>VPN</b>',
      requester: { email: 'rosa@customer.test', name: 'Rosa' },
    });
    const rendered = await t.call(agent.token, 'POST', `/api/v1/canned-replies/${id}/render`, {
      ticketId: ticket.id,
    });
    expect(rendered.status).toBe(200);
    expect(rendered.body.text).toBe(
      `Hello Rosa, thanks for ${ticket.number} (Broken <b>VPN</b>). Alex Agent`,
    );

    expect((await t.call(agent.token, 'GET', '/api/v1/canned-replies?q=THA')).body.items).toHaveLength(1);
    expect((await t.call(agent.token, 'GET', '/api/v1/canned-replies?q=you')).body.items).toHaveLength(1);
    expect((await t.call(agent.token, 'GET', '/api/v1/canned-replies?q=hanks')).body.items).toHaveLength(0);
    expect((await t.call(agent.token, 'GET', `/api/v1/canned-replies/${id}`)).body.title).toBe('Thank you');

    // Agents may not change them.
    for (const [method, url, body] of [
      ['POST', '/api/v1/canned-replies', { ...thanks, shortcut: 'x' }],
      ['PUT', `/api/v1/canned-replies/${id}`, thanks],
      ['DELETE', `/api/v1/canned-replies/${id}`, undefined],
    ] as const) {
      expect((await t.call(agent.token, method, url, body)).status, `${method} ${url}`).toBe(403);
    }

    const updated = await t.call(adminA, 'PUT', `/api/v1/canned-replies/${id}`, {
      ...thanks,
      title: 'Thanks!',
    });
    expect(updated.body.title).toBe('Thanks!');
    expect((await t.call(adminA, 'DELETE', `/api/v1/canned-replies/${id}`)).status).toBe(204);
    expect((await t.call(adminA, 'GET', `/api/v1/canned-replies/${id}`)).status).toBe(404);
  });

  it("stay in their tenant: another tenant's are not found, nor rendered with its tickets", async () => {
    const mine = await t.call(adminA, 'POST', '/api/v1/canned-replies', { ...thanks, shortcut: 'mine' });
    const ticketB = await makeTicket(t, adminB);
    const ticketA = await makeTicket(t, adminA);
    for (const [method, url, body] of [
      ['GET', `/api/v1/canned-replies/${mine.body.id}`, undefined],
      ['PUT', `/api/v1/canned-replies/${mine.body.id}`, thanks],
      ['DELETE', `/api/v1/canned-replies/${mine.body.id}`, undefined],
      ['POST', `/api/v1/canned-replies/${mine.body.id}/render`, { ticketId: ticketB.id }],
    ] as const) {
      expect((await t.call(adminB, method, url, body)).status, `${method} ${url}`).toBe(404);
    }
    expect((await t.call(adminB, 'GET', '/api/v1/canned-replies')).body.items).toEqual([]);
    // Tenant a's reply with tenant b's ticket: the ticket is not found.
    const cross = await t.call(adminA, 'POST', `/api/v1/canned-replies/${mine.body.id}/render`, {
      ticketId: ticketB.id,
    });
    expect(cross.status).toBe(404);
    // The same shortcut is free in another tenant.
    expect(
      (await t.call(adminB, 'POST', '/api/v1/canned-replies', { ...thanks, shortcut: 'mine' })).status,
    ).toBe(201);
    expect(
      (
        await t.call(adminA, 'POST', `/api/v1/canned-replies/${mine.body.id}/render`, {
          ticketId: ticketA.id,
        })
      ).status,
    ).toBe(200);
  });

  it('refuse a taken shortcut, one that is not a word, and a body that does not work', async () => {
    await t.call(adminA, 'POST', '/api/v1/canned-replies', { ...thanks, shortcut: 'Taken' });
    const taken = await t.call(adminA, 'POST', '/api/v1/canned-replies', { ...thanks, shortcut: 'taken' });
    expect(taken.status).toBe(409);
    const other = await t.call(adminA, 'POST', '/api/v1/canned-replies', { ...thanks, shortcut: 'other' });
    const renamed = await t.call(adminA, 'PUT', `/api/v1/canned-replies/${other.body.id}`, {
      ...thanks,
      shortcut: 'TAKEN',
    });
    expect(renamed.status).toBe(409);
    for (const [body, path] of [
      [{ ...thanks, shortcut: 'two words' }, '/shortcut'],
      [{ ...thanks, shortcut: '-x' }, '/shortcut'],
      [{ ...thanks, shortcut: 'grüße' }, undefined],
      [{ ...thanks, shortcut: 'unclosed', body: 'Hi {{ requester.name ' }, '/body'],
      [{ ...thanks, shortcut: 'badfilter', body: 'Hi {{ requester.name | nope }}' }, '/body'],
      [{ ...thanks, shortcut: 'files', body: '{% include "x" %}' }, '/body'],
      [{ ...thanks, shortcut: 'blank', body: '   ' }, '/body'],
      [{ ...thanks, shortcut: 'extra', extra: 1 }, undefined],
    ] as const) {
      const res = await t.call(adminA, 'POST', '/api/v1/canned-replies', body);
      if (body.shortcut === 'grüße') {
        expect(res.status).toBe(201);
        continue;
      }
      expect(res.status, JSON.stringify(body)).toBe(400);
      if (path) expect(res.body.errors[0].path).toBe(path);
    }
  });
});
