// The Teams channel adapter against the Bot Framework simulator: destinations, the card it sends,
// its token cache, each error class of the connector, stale references, retry delays and pacing.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makePerson, type TestApp, useTestApp } from '../../../test/app.ts';
import {
  type Activity,
  type BotFrameworkSimulator,
  startBotFrameworkSimulator,
  type TeamsUser,
} from '../../../simulators/botframework.ts';
import { ManualClock } from '../../platform/clock.ts';
import { withTenantRead } from '../../platform/db/tx.ts';
import { createLogger } from '../../platform/logging.ts';
import type { ChannelAdapter, ChannelSend, NotificationContent } from '../notify/channel.ts';
import { DeliveryError } from '../outbound/transports.ts';
import { teamsChannel, teamsRetryDelaySeconds } from './adapter.ts';
import { ConversationPacer, TEAMS_CONVERSATION_WINDOWS } from './pacing.ts';

let t: TestApp;
let sim: BotFrameworkSimulator;
let adapter: ChannelAdapter;
let person: { id: string; user: TeamsUser; conversationId: string };
const logger = createLogger('silent');

const content: NotificationContent = {
  eventId: '0190f0f0-0000-7000-8000-000000000001',
  type: 'sla.breached',
  occurredAt: '2026-03-02T10:00:00Z',
  urgent: true,
  title: 'T-12 breached its first-response SLA',
  text: 'Nobody has answered the requester yet.',
  ticket: {
    id: '0190f0f0-0000-7000-8000-000000000002',
    number: 'T-12',
    subject: 'VPN is down',
    status: 'open',
    priority: 'high',
    requester: { id: '0190f0f0-0000-7000-8000-000000000003', name: 'Ada Lovelace', email: 'ada@example.com' },
    assignee: null,
    sla: { metric: 'first_response', dueAt: '2026-03-02T09:00:00Z', state: 'breached' },
  },
  data: {},
};

let attempt = 0;
const sendTo = (destination: string, tenantId = t.a.tenant.id): ChannelSend => ({
  tenantId,
  deliveryId: `0190f0f0-0000-7000-8000-${String(++attempt).padStart(12, '0')}`,
  attempt: 1,
  notificationId: '0190f0f0-0000-7000-8000-000000000009',
  destination,
  idempotencyKey: `key-${attempt}`,
  content,
});

async function post(activity: Activity) {
  const res = await t.call(
    undefined,
    'POST',
    '/hooks/teams',
    { ...activity, type: 'conversationUpdate' },
    await sim.signedHeaders(activity, { at: t.clock.now() }),
  );
  expect(res.status).toBe(200);
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('the send succeeded');
    },
    (err: unknown) => err as DeliveryError,
  );

async function integrate(token: string, bot: { appId: string; appPassword: string }) {
  const res = await t.call(token, 'PUT', '/api/v1/integrations/teams', {
    ...bot,
    tokenUrl: sim.tokenUrl,
    openIdMetadataUrl: sim.openIdMetadataUrl,
  });
  expect(res.status).toBe(200);
}

async function reachablePerson() {
  const p = await makePerson(t, t.a.adminToken.token);
  const user = sim.user();
  await t.call(t.a.adminToken.token, 'POST', `/api/v1/people/${p.id}/identities`, {
    kind: 'entra',
    externalId: user.aadObjectId,
  });
  const activity = sim.message(user, 'hi');
  await post(activity);
  return { id: p.id as string, user, conversationId: activity['conversation'].id as string };
}

beforeAll(async () => {
  t = await useTestApp();
  sim = await startBotFrameworkSimulator();
  await integrate(t.a.adminToken.token, sim.bot);
  // Pacing is tested on its own clock below; here a wait takes no time.
  adapter = teamsChannel({
    pool: t.db.pool,
    secretKey: t.secretKey,
    clock: t.clock,
    logger,
    sleep: async () => undefined,
  });
  person = await reachablePerson();
});
afterAll(() => sim.close());
beforeEach(() => {
  sim.clearSent();
  sim.clearFaults();
});

describe('destinations', () => {
  it('a person is reached in their latest personal conversation, found through their identities', async () => {
    const dest = await withTenantRead(t.db.pool, t.a.tenant.id, (tx) =>
      adapter.personDestination(tx, person.id),
    );
    expect(dest).toBe(person.conversationId);
    const nobody = await makePerson(t, t.a.adminToken.token);
    expect(
      await withTenantRead(t.db.pool, t.a.tenant.id, (tx) => adapter.personDestination(tx, nobody.id)),
    ).toBeUndefined();
  });

  it('a fixed destination is a channel or group chat of the tenant', async () => {
    const user = sim.user();
    const channel = {
      conversationType: 'channel',
      id: '19:general@thread.tacv2',
      tenantId: sim.entraTenantId,
    };
    await post(sim.message(user, 'hi', { conversation: channel }));
    const exists = (tenantId: string, id: string) =>
      withTenantRead(t.db.pool, tenantId, (tx) => adapter.destinationExists(tx, id));
    expect(await exists(t.a.tenant.id, channel.id)).toBe(true);
    expect(await exists(t.a.tenant.id, person.conversationId)).toBe(false);
    expect(await exists(t.a.tenant.id, '19:unknown@thread.tacv2')).toBe(false);
    // Another tenant does not see it.
    expect(await exists(t.b.tenant.id, channel.id)).toBe(false);
  });
});

describe('sending', () => {
  it('posts the notification as an Adaptive Card to the conversation, with one token for many sends', async () => {
    const tokensBefore = sim.tokenRequests();
    const sent = await adapter.send(sendTo(person.conversationId));
    await adapter.send(sendTo(person.conversationId));
    expect(sent.providerMessageId).toEqual(expect.any(String));
    expect(sim.tokenRequests() - tokensBefore).toBeLessThanOrEqual(1);
    const [first] = sim.sent();
    expect(first).toMatchObject({ conversationId: person.conversationId, appId: sim.bot.appId });
    const attachment = first!.activity['attachments'][0];
    expect(attachment.contentType).toBe('application/vnd.microsoft.card.adaptive');
    const card = JSON.stringify(attachment.content);
    for (const expected of ['T-12', 'VPN is down', 'Ada Lovelace', 'first response: breached'])
      expect(card).toContain(expected);
    const verbs = JSON.stringify(attachment.content.actions);
    for (const verb of ['assignToMe', 'addNote', 'reply', 'changeStatus'])
      expect(verbs).toContain(`"verb":"${verb}"`);
  });

  it('fetches a new token shortly before the old one expires', async () => {
    // Its own adapter and clock: moving the shared clock would move its pacing slots too.
    const clock = new ManualClock('2026-03-02T10:00:00Z');
    const own = teamsChannel({ pool: t.db.pool, secretKey: t.secretKey, clock, logger });
    const before = sim.tokenRequests();
    await own.send(sendTo(person.conversationId));
    clock.advance(3599_000 - 6 * 60_000);
    await own.send(sendTo(person.conversationId));
    expect(sim.tokenRequests()).toBe(before + 1);
    clock.advance(2 * 60_000);
    await own.send(sendTo(person.conversationId));
    expect(sim.tokenRequests()).toBe(before + 2);
  });

  it('an unknown conversation is not_found, a tenant without an integration auth', async () => {
    expect((await failure(adapter.send(sendTo('a:nobody')))).code).toBe('not_found');
    expect((await failure(adapter.send(sendTo(person.conversationId, t.b.tenant.id)))).code).toBe('auth');
  });
});

describe('connector errors', () => {
  const classes: [string, { status: number; code?: string; retryAfter?: number }, string, boolean][] = [
    ['401 BotNotRegistered', { status: 401 }, 'auth', false],
    [
      '403 BotNotInConversationRoster',
      { status: 403, code: 'BotNotInConversationRoster' },
      'invalid_recipient',
      false,
    ],
    [
      '403 ConversationBlockedByUser',
      { status: 403, code: 'ConversationBlockedByUser' },
      'invalid_recipient',
      false,
    ],
    ['403 BotDisabledByAdmin', { status: 403, code: 'BotDisabledByAdmin' }, 'invalid_recipient', false],
    ['403 other', { status: 403, code: 'ForbiddenOperationException' }, 'permanent', false],
    ['404 ConversationNotFound', { status: 404 }, 'not_found', false],
    ['412 PreconditionFailed', { status: 412 }, 'transient', true],
    ['429 Throttled', { status: 429, retryAfter: 7 }, 'throttled', true],
    ['500 ServiceError', { status: 500 }, 'transient', true],
    ['502', { status: 502 }, 'transient', true],
    ['503 ServiceUnavailable', { status: 503 }, 'transient', true],
    ['504 GatewayTimeout', { status: 504 }, 'transient', true],
  ];
  for (const [name, fault, code, retryable] of classes)
    it(`${name} → ${code}`, async () => {
      sim.fault({ conversationId: person.conversationId, ...fault });
      const err = await failure(adapter.send(sendTo(person.conversationId)));
      expect(err).toBeInstanceOf(DeliveryError);
      expect(err.code).toBe(code);
      expect(err.retryable).toBe(retryable);
      if (fault.retryAfter) expect(err.retryAfterSeconds).toBe(7);
      expect(sim.sent()).toHaveLength(0);
    });

  it('a refusal for good marks the conversation stale until a new activity refreshes it', async () => {
    const p = await reachablePerson();
    sim.fault({ conversationId: p.conversationId, status: 403, code: 'ConversationBlockedByUser' });
    const err = await failure(adapter.send(sendTo(p.conversationId)));
    await adapter.onTerminalFailure!(t.a.tenant.id, p.conversationId, err);
    const destination = () =>
      withTenantRead(t.db.pool, t.a.tenant.id, (tx) => adapter.personDestination(tx, p.id));
    expect(await destination()).toBeUndefined();
    // Not sent again while stale.
    expect((await failure(adapter.send(sendTo(p.conversationId)))).code).toBe('invalid_recipient');
    expect(sim.sent()).toHaveLength(0);
    await post(sim.message(p.user, 'I am back'));
    expect(await destination()).toBe(p.conversationId);
    await adapter.send(sendTo(p.conversationId));
    expect(sim.sent()).toHaveLength(1);
  });

  it('an auth failure does not mark the conversation stale', async () => {
    await adapter.onTerminalFailure!(t.a.tenant.id, person.conversationId, new DeliveryError('auth', 'x'));
    expect(
      await withTenantRead(t.db.pool, t.a.tenant.id, (tx) => adapter.personDestination(tx, person.id)),
    ).toBe(person.conversationId);
  });
});

describe('retries and pacing', () => {
  it('retry delays: Retry-After when given, else 30 s doubling to an hour, given up after 8 attempts', () => {
    expect([1, 2, 3, 7].map((a) => teamsRetryDelaySeconds(a, undefined))).toEqual([30, 60, 120, 1920]);
    expect(teamsRetryDelaySeconds(3, 12)).toBe(12);
    expect(teamsRetryDelaySeconds(8, undefined)).toBeUndefined();
    expect(teamsRetryDelaySeconds(8, 5)).toBeUndefined();
    expect(adapter.resendIsSafe).toBe(false);
    expect(adapter.retryDelaySeconds).toBe(teamsRetryDelaySeconds);
  });

  /** Whether no `limit + 1` consecutive times fall within one window. */
  const underLimits = (times: number[]) =>
    TEAMS_CONVERSATION_WINDOWS.every((w) =>
      times.every((at, i) => i < w.limit || at - times[i - w.limit]! >= w.ms),
    );

  it('a burst to one conversation leaves at most 7 a second and 60 in 30 seconds (on an injected clock)', async () => {
    const clock = new ManualClock('2026-03-02T10:00:00Z');
    const arrivals: number[] = [];
    const paced = teamsChannel({
      pool: t.db.pool,
      secretKey: t.secretKey,
      clock,
      logger,
      sleep: async (ms) => clock.advance(ms),
      fetch: (input, init) => {
        if (String(input).includes('/v3/conversations/')) arrivals.push(clock.now().getTime());
        return fetch(input, init);
      },
    });
    for (let i = 0; i < 70; i++) await paced.send(sendTo(person.conversationId));
    expect(sim.sent()).toHaveLength(70);
    expect(underLimits(arrivals)).toBe(true);
    // Tight, not merely slow: the 8th waits a second, the 61st for the 30-second window.
    expect(arrivals[7]! - arrivals[0]!).toBe(1000);
    expect(arrivals[60]! - arrivals[0]!).toBe(30_000);
    // Another conversation is not held up by this one.
    const other = await reachablePerson();
    const before = clock.now().getTime();
    await paced.send(sendTo(other.conversationId));
    expect(arrivals[arrivals.length - 1]).toBe(before);
  });

  it("after a 429 holds the conversation's next sends until its Retry-After, not the others'", async () => {
    const clock = new ManualClock('2026-03-02T10:00:00Z');
    const arrivals: { conversation: string; at: number }[] = [];
    const paced = teamsChannel({
      pool: t.db.pool,
      secretKey: t.secretKey,
      clock,
      logger,
      sleep: async (ms) => clock.advance(ms),
      fetch: (input, init) => {
        const m = /\/v3\/conversations\/([^/]+)\/activities/.exec(String(input));
        if (m) arrivals.push({ conversation: decodeURIComponent(m[1]!), at: clock.now().getTime() });
        return fetch(input, init);
      },
    });
    const busy = await reachablePerson();
    const other = await reachablePerson();
    sim.fault({ conversationId: busy.conversationId, status: 429, retryAfter: 7 });
    const start = clock.now().getTime();
    expect((await failure(paced.send(sendTo(busy.conversationId)))).code).toBe('throttled');
    await paced.send(sendTo(other.conversationId));
    await paced.send(sendTo(busy.conversationId));
    expect(
      arrivals.map((a) => [a.conversation === busy.conversationId ? 'busy' : 'other', a.at - start]),
    ).toEqual([
      ['busy', 0],
      ['other', 0],
      ['busy', 7000],
    ]);
  });

  it('concurrent reservations keep every window and their order', () => {
    const clock = new ManualClock('2026-03-02T10:00:00Z');
    const pacer = new ConversationPacer({ clock });
    const slots = Array.from({ length: 130 }, () => pacer.reserve('a:conversation'));
    expect(slots).toEqual([...slots].sort((x, y) => x - y));
    expect(underLimits(slots)).toBe(true);
    expect(slots.slice(0, 7).every((s) => s === slots[0])).toBe(true);
    expect(pacer.reserve('a:other')).toBe(clock.now().getTime());
  });
});
