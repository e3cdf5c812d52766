// Actions from Teams (Action.Execute invokes and typed commands): each with and without the
// permission, as an unknown user, and what the audit trail records.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makePerson, makeTicket, type TestApp, useTestApp } from '../../../test/app.ts';
import {
  type Activity,
  type BotFrameworkSimulator,
  startBotFrameworkSimulator,
  type TeamsUser,
} from '../../../simulators/botframework.ts';
import { payloadHash } from '../audit/audit.ts';

let t: TestApp;
let sim: BotFrameworkSimulator;
let admin: string;
let agent: { id: string; user: TeamsUser };
let viewer: { id: string; user: TeamsUser };
let stranger: TeamsUser;

async function post(activity: Activity) {
  return t.call(
    undefined,
    'POST',
    '/hooks/teams',
    activity,
    await sim.signedHeaders(activity, { at: t.clock.now() }),
  );
}

async function linkedPerson(role: 'agent' | 'viewer') {
  const person = await makePerson(t, admin);
  const user = sim.user({ name: person.displayName });
  const linked = await t.call(admin, 'POST', `/api/v1/people/${person.id}/identities`, {
    kind: 'teams',
    externalId: user.id,
  });
  expect(linked.status).toBe(201);
  if (role !== 'agent')
    await t.db.admin.query('UPDATE people SET role = $2 WHERE id = $1', [person.id, role]);
  return { id: person.id as string, user };
}

async function lastAudit() {
  const { rows } = await t.db.admin.query(
    'SELECT actor_id, actor_via, action, target_type, target_id, outcome, error_code, payload_hash, request_id FROM audit_events ORDER BY at DESC, id DESC LIMIT 1',
  );
  return rows[0];
}

const ticketRow = async (id: string) =>
  (await t.db.admin.query('SELECT status, assignee_id FROM tickets WHERE id = $1', [id])).rows[0];
const messages = async (id: string, visibility: string) =>
  (
    await t.db.admin.query(
      'SELECT body_text, author_id FROM ticket_messages WHERE ticket_id = $1 AND visibility = $2',
      [id, visibility],
    )
  ).rows;

beforeAll(async () => {
  t = await useTestApp();
  sim = await startBotFrameworkSimulator();
  admin = t.a.adminToken.token;
  const res = await t.call(admin, 'PUT', '/api/v1/integrations/teams', {
    appId: sim.bot.appId,
    appPassword: sim.bot.appPassword,
    tokenUrl: sim.tokenUrl,
    openIdMetadataUrl: sim.openIdMetadataUrl,
  });
  expect(res.status).toBe(200);
  agent = await linkedPerson('agent');
  viewer = await linkedPerson('viewer');
  stranger = sim.user();
});
afterAll(() => sim.close());
beforeEach(() => sim.clearSent());

interface Case {
  verb: string;
  action: string;
  data: Record<string, unknown>;
  /** What the action changed, checked after a success and unchanged after a refusal. */
  effect(ticketId: string): Promise<unknown>;
  done: unknown;
}

const cases: Case[] = [
  {
    verb: 'assignToMe',
    action: 'teams.assign_to_me',
    data: {},
    effect: async (id) => (await ticketRow(id)).assignee_id,
    done: 'agent',
  },
  {
    verb: 'addNote',
    action: 'teams.add_note',
    data: { text: 'Checked the logs' },
    effect: async (id) => (await messages(id, 'internal')).map((m) => m.body_text),
    done: ['Checked the logs'],
  },
  {
    verb: 'reply',
    action: 'teams.reply',
    data: { text: 'We are on it' },
    effect: async (id) => (await messages(id, 'public')).filter((m) => m.body_text === 'We are on it').length,
    done: 1,
  },
  {
    verb: 'changeStatus',
    action: 'teams.change_status',
    data: { status: 'pending' },
    effect: async (id) => (await ticketRow(id)).status,
    done: 'pending',
  },
];

describe('Action.Execute from a card', () => {
  for (const c of cases) {
    it(`${c.verb}: done as an agent, answered with the refreshed card, audited`, async () => {
      const ticket = await makeTicket(t, admin);
      const activity = sim.actionExecute(agent.user, c.verb, { ticketId: ticket.id, ...c.data });
      const res = await post(activity);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ statusCode: 200, type: 'application/vnd.microsoft.card.adaptive' });
      expect(res.body.value.type).toBe('AdaptiveCard');
      expect(JSON.stringify(res.body.value)).toContain(ticket.number);
      expect(await c.effect(ticket.id)).toEqual(c.done === 'agent' ? agent.id : c.done);
      expect(await lastAudit()).toEqual({
        actor_id: agent.id,
        actor_via: 'teams',
        action: c.action,
        target_type: 'ticket',
        target_id: ticket.id,
        outcome: 'success',
        error_code: null,
        payload_hash: payloadHash(activity['value']),
        // The /hooks/teams request that carried it, as for an API call.
        request_id: expect.stringMatching(/\S/),
      });
    });

    it(`${c.verb}: refused for a viewer and an unknown user (unauthorised), nothing changed`, async () => {
      const ticket = await makeTicket(t, admin);
      const before = await c.effect(ticket.id);
      for (const [who, actorId] of [
        [viewer.user, viewer.id],
        [stranger, null],
      ] as const) {
        const activity = sim.actionExecute(who, c.verb, { ticketId: ticket.id, ...c.data });
        const res = await post(activity);
        expect(res.status).toBe(200);
        expect(res.body.type).toBe('application/vnd.microsoft.card.adaptive');
        expect(JSON.stringify(res.body.value)).toMatch(/permission|do not know who you are/);
        expect(await lastAudit()).toMatchObject({
          actor_id: actorId,
          action: c.action,
          outcome: 'unauthorised',
          target_id: ticket.id,
          payload_hash: payloadHash(activity['value']),
        });
      }
      expect(await c.effect(ticket.id)).toEqual(before);
    });
  }

  it('a reply goes out through outbound mail: the message and its ledger row together', async () => {
    const ticket = await makeTicket(t, admin);
    await post(sim.actionExecute(agent.user, 'reply', { ticketId: ticket.id, text: 'Fixed now' }));
    const { rows } = await t.db.admin.query(
      `SELECT d.channel, d.purpose FROM deliveries d JOIN ticket_messages m ON m.tenant_id = d.tenant_id AND m.id = d.ticket_message_id
        WHERE m.ticket_id = $1 AND m.body_text = 'Fixed now'`,
      [ticket.id],
    );
    expect(rows).toEqual([{ channel: 'email', purpose: 'reply' }]);
  });

  it('a failure is answered and audited as failed', async () => {
    const res = await post(
      sim.actionExecute(agent.user, 'changeStatus', {
        ticketId: '00000000-0000-4000-8000-000000000000',
        status: 'open',
      }),
    );
    expect(res.status).toBe(200);
    expect(JSON.stringify(res.body.value)).toContain('did not work');
    expect(await lastAudit()).toMatchObject({ outcome: 'failed', error_code: 'not_found' });
  });

  it("a failure on a ticket keeps the ticket's card and its buttons, with the reason", async () => {
    const ticket = await makeTicket(t, admin);
    const res = await post(
      sim.actionExecute(agent.user, 'changeStatus', { ticketId: ticket.id, status: 'bogus' }),
    );
    expect(res.status).toBe(200);
    const card = JSON.stringify(res.body.value);
    expect(card).toContain('did not work');
    expect(card).toContain(ticket.number);
    expect(res.body.value.actions?.length ?? 0).toBeGreaterThan(0);
    expect(await lastAudit()).toMatchObject({ outcome: 'failed', error_code: 'validation_failed' });
    // One who may not change tickets learns nothing of the ticket from a refusal.
    const refused = await post(
      sim.actionExecute(viewer.user, 'changeStatus', { ticketId: ticket.id, status: 'open' }),
    );
    expect(JSON.stringify(refused.body.value)).not.toContain(ticket.number);
  });

  it('an unknown verb is answered with an error response', async () => {
    const res = await post(sim.actionExecute(agent.user, 'launchRockets', {}));
    expect(res.body).toMatchObject({ statusCode: 400, type: 'application/vnd.microsoft.error' });
  });
});

describe('commands typed in a message', () => {
  it('ticket <subject> creates a ticket for the agent and answers in the conversation', async () => {
    const activity = sim.message(agent.user, '<at>Relaydesk</at> ticket Printer on fire\nThird floor');
    expect((await post(activity)).status).toBe(200);
    const { rows } = await t.db.admin.query('SELECT id, requester_id FROM tickets WHERE subject = $1', [
      'Printer on fire',
    ]);
    expect(rows).toEqual([{ id: expect.any(String), requester_id: agent.id }]);
    expect(await lastAudit()).toMatchObject({
      action: 'teams.create_ticket',
      outcome: 'success',
      target_id: rows[0].id,
      payload_hash: payloadHash({ text: activity['text'] }),
    });
    const [answer] = sim.sent();
    expect(answer).toMatchObject({ conversationId: activity['conversation'].id, replyToId: activity['id'] });
    expect(answer!.activity['text']).toContain('Ticket created');
  });

  it('a viewer cannot create a ticket, and is told so', async () => {
    await post(sim.message(viewer.user, 'ticket Coffee machine'));
    expect((await t.db.admin.query("SELECT 1 FROM tickets WHERE subject = 'Coffee machine'")).rowCount).toBe(
      0,
    );
    expect(await lastAudit()).toMatchObject({ action: 'teams.create_ticket', outcome: 'unauthorised' });
    expect(sim.sent()[0]!.activity['text']).toContain('permission');
  });

  it('status T-n <status> and assign T-n work by number', async () => {
    const ticket = await makeTicket(t, admin);
    await post(sim.message(agent.user, `status ${ticket.number} on_hold`));
    await post(sim.message(agent.user, `assign ${ticket.number}`));
    expect(await ticketRow(ticket.id)).toEqual({ status: 'on_hold', assignee_id: agent.id });
  });

  it('the message action "Create ticket" makes a ticket of the message', async () => {
    const activity = {
      ...sim.message(agent.user, ''),
      type: 'invoke',
      name: 'composeExtension/submitAction',
      value: {
        commandId: 'createTicket',
        commandContext: 'message',
        messagePayload: {
          body: { contentType: 'html', content: '<p>Laptop broken</p><p>The screen is cracked</p>' },
        },
      },
    };
    const res = await post(activity);
    expect(res.status).toBe(200);
    expect(res.body.task).toMatchObject({ type: 'message', value: expect.stringContaining('Laptop broken') });
    const { rows } = await t.db.admin.query('SELECT id, requester_id FROM tickets WHERE subject = $1', [
      'Laptop broken',
    ]);
    expect(rows).toEqual([{ id: expect.any(String), requester_id: agent.id }]);
    expect(await lastAudit()).toMatchObject({
      action: 'teams.create_ticket',
      outcome: 'success',
      payload_hash: payloadHash(activity.value),
    });
  });

  it("makes the message's author the requester when known, else says who posted it", async () => {
    const author = await makePerson(t, admin, { kind: 'contact', displayName: 'Mo Message' });
    const entraId = '5d1e6c1a-0000-4000-8000-00000000a11c';
    expect(
      (
        await t.call(admin, 'POST', `/api/v1/people/${author.id}/identities`, {
          kind: 'entra',
          externalId: entraId,
        })
      ).status,
    ).toBe(201);
    const createFrom = (from: Record<string, unknown>, content: string) =>
      post({
        ...sim.message(agent.user, ''),
        type: 'invoke',
        name: 'composeExtension/submitAction',
        value: {
          commandId: 'createTicket',
          commandContext: 'message',
          messagePayload: { from: { user: from }, body: { contentType: 'html', content } },
        },
      });
    const ticketBy = async (subject: string) =>
      (
        await t.db.admin.query(
          `SELECT t.requester_id, m.body_text FROM tickets t
             JOIN ticket_messages m ON m.ticket_id = t.id WHERE t.subject = $1`,
          [subject],
        )
      ).rows;
    expect(
      (
        await createFrom(
          { userIdentityType: 'aadUser', id: entraId, displayName: 'Mo' },
          '<p>Printer jam</p>',
        )
      ).status,
    ).toBe(200);
    expect(await ticketBy('Printer jam')).toEqual([{ requester_id: author.id, body_text: 'Printer jam' }]);
    // Someone linked to nobody: the agent asks for them, and the ticket says who posted it.
    const stranger = {
      userIdentityType: 'aadUser',
      id: '5d1e6c1a-0000-4000-8000-0000000000ff',
      displayName: 'Una Known',
    };
    expect((await createFrom(stranger, '<p>Wifi down</p>')).status).toBe(200);
    expect(await ticketBy('Wifi down')).toEqual([
      { requester_id: agent.id, body_text: 'Posted in Teams by Una Known:\n\nWifi down' },
    ]);
  });

  it('anything else is answered with help', async () => {
    await post(sim.message(agent.user, 'what can you do?'));
    expect(sim.sent()[0]!.activity['text']).toContain('What I can do');
  });
});
