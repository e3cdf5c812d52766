// The Slack channel adapter against the Slack simulator and a real database: destinations, the
// message it posts, each of Slack's failures in the taxonomy, per-channel pacing, the retry
// schedule, and the integration going with its tenant.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type SlackSimulator, startSlackSimulator } from '../../../simulators/slack.ts';
import { type TestApp, makePerson, useTestApp } from '../../../test/app.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { createLogger } from '../../platform/logging.ts';
import type { ChannelAdapter, NotificationContent } from '../notify/channel.ts';
import { DeliveryError } from '../outbound/transports.ts';
import { createTenant, deleteTenant } from '../tenants/service.ts';
import { slackChannel, slackRetryDelaySeconds } from './adapter.ts';
import { saveSlackIntegration } from './integration.ts';
import { slackErrorClass } from './web-api.ts';

let t: TestApp;
let sim: SlackSimulator;
let adapter: ChannelAdapter;
let alice: any;
let bob: any;
let sendCount = 0;

const content = (overrides: Partial<NotificationContent> = {}): NotificationContent => ({
  eventId: '0190f000-0000-7000-8000-000000000001',
  type: 'sla.breached',
  occurredAt: '2026-03-02T14:05:00Z',
  urgent: true,
  title: 'T-12 breached its first-response SLA',
  text: 'No agent has answered for 4 hours.',
  ticket: {
    id: '0190f000-0000-7000-8000-000000000002',
    number: 'T-12',
    subject: 'Printer <!channel> & jammed',
    status: 'open',
    priority: 'high',
    requester: {
      id: '0190f000-0000-7000-8000-000000000003',
      name: 'Carol Customer',
      email: 'carol@example.com',
    },
    assignee: null,
    sla: { metric: 'first_response', dueAt: '2026-03-02T14:00:00Z', state: 'breached' },
  },
  data: {},
  ...overrides,
});

const newAdapter = (options: { intervalMs?: number; timeoutMs?: number } = {}) =>
  slackChannel({
    pool: t.db.pool,
    secretKey: t.secretKey,
    clock: t.clock,
    logger: createLogger('silent'),
    pacing: { intervalMs: options.intervalMs ?? 1000 },
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });

function send(
  destination: string,
  options: { tenantId?: string; via?: ChannelAdapter; c?: NotificationContent } = {},
) {
  sendCount++;
  return (options.via ?? adapter).send({
    tenantId: options.tenantId ?? t.a.tenant.id,
    deliveryId: `0190f000-0000-7000-8000-${String(sendCount).padStart(12, '0')}`,
    attempt: 1,
    notificationId: 'n1',
    destination,
    idempotencyKey: `k${sendCount}`,
    content: options.c ?? content(),
  });
}

/** The DeliveryError a send fails with. */
async function failure(promise: Promise<unknown>): Promise<DeliveryError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DeliveryError);
  return err as DeliveryError;
}

async function connect(tenantId: string, botToken: string) {
  await withTenant(t.db.pool, tenantId, (tx) =>
    saveSlackIntegration(tx, {
      secretKey: t.secretKey,
      botToken,
      apiBaseUrl: sim.apiBaseUrl,
      teamId: sim.team.id,
      teamName: sim.team.name,
      botUserId: sim.botUserId,
      now: t.clock.now(),
    }),
  );
}

beforeAll(async () => {
  t = await useTestApp();
  sim = await startSlackSimulator({ seed: 13 });
  await connect(t.a.tenant.id, sim.botToken);
  const token = t.a.adminToken.token;
  alice = await makePerson(t, token, { displayName: 'Alice' });
  bob = await makePerson(t, token, { displayName: 'Bob' });
  const linked = await t.call(token, 'POST', `/api/v1/people/${alice.id}/identities`, {
    kind: 'slack',
    externalId: 'U0ALICE001',
  });
  expect(linked.status).toBe(201);
  sim.addUser('U0ALICE001');
  for (const id of ['C0GENERAL1', 'C0SECOND01', 'C0THIRD001', 'C0PACED001', 'C0UNPACED1'])
    sim.addChannel({ id });
  sim.addChannel({ id: 'C0OUTSIDE1', botIsMember: false });
  sim.addChannel({ id: 'C0ARCHIVE1', archived: true });
});
afterAll(() => sim.close());
beforeEach(() => {
  // A fresh adapter (and pacer) each test: one test's 429 does not hold back the next.
  adapter = newAdapter();
  sim.clearFaults();
  sim.clearPosts();
});

describe('destinations', () => {
  it('reaches a person by their slack identity while the tenant has Slack, and nobody else', async () => {
    await withTenant(t.db.pool, t.a.tenant.id, async (tx) => {
      expect(await adapter.personDestination(tx, alice.id)).toBe('U0ALICE001');
      expect(await adapter.personDestination(tx, bob.id)).toBeUndefined();
    });
    // Tenant b has a person with a Slack identity but no Slack integration.
    const carol = await makePerson(t, t.b.adminToken.token, { displayName: 'Carol' });
    await t.call(t.b.adminToken.token, 'POST', `/api/v1/people/${carol.id}/identities`, {
      kind: 'slack',
      externalId: 'U0CAROL001',
    });
    await withTenant(t.db.pool, t.b.tenant.id, async (tx) => {
      expect(await adapter.personDestination(tx, carol.id)).toBeUndefined();
      // And tenant b does not see tenant a's person.
      expect(await adapter.personDestination(tx, alice.id)).toBeUndefined();
    });
  });

  it('takes a channel id as a rule destination only where Slack is connected', async () => {
    await withTenant(t.db.pool, t.a.tenant.id, async (tx) => {
      expect(await adapter.destinationExists(tx, 'C0GENERAL1')).toBe(true);
      expect(await adapter.destinationExists(tx, 'G0PRIVATE1')).toBe(true);
      expect(await adapter.destinationExists(tx, '#general')).toBe(false);
      expect(await adapter.destinationExists(tx, 'c0general1')).toBe(false);
      expect(await adapter.destinationExists(tx, 'U0ALICE001')).toBe(false);
    });
    await withTenant(t.db.pool, t.b.tenant.id, async (tx) => {
      expect(await adapter.destinationExists(tx, 'C0GENERAL1')).toBe(false);
    });
  });
});

describe('send', () => {
  it('posts Block Kit with a text fallback to a channel, and answers channel/ts', async () => {
    const sent = await send('C0GENERAL1');
    const [post] = sim.posts();
    expect(post).toBeDefined();
    expect(sent.providerMessageId).toBe(`C0GENERAL1/${post!.ts}`);
    expect(sent.requestId).toBeTruthy();
    expect(post!.token).toBe(sim.botToken);
    const blocks = post!.blocks as any[];
    expect(blocks.map((b) => b.type)).toEqual(['header', 'section', 'section', 'context']);
    expect(blocks[0].text).toEqual({
      type: 'plain_text',
      text: 'T-12 breached its first-response SLA',
      emoji: false,
    });
    // The subject's markup is escaped: it pings nobody.
    expect(blocks[1].text.text).toBe('*T-12*  Printer &lt;!channel&gt; &amp; jammed');
    expect(blocks[1].fields.map((f: any) => f.text)).toEqual([
      '*Requester*\nCarol Customer (carol@example.com)',
      '*Status*\nopen',
      '*Priority*\nhigh',
      '*SLA*\n:rotating_light: Breached (first response)',
    ]);
    expect(blocks[3].elements[0].text).toMatch(
      /^sla\.breached · <!date\^1772460300\^.*\|2026-03-02 14:05 UTC> · \*urgent\*$/,
    );
    expect(post!.text).toBe(
      'T-12 breached its first-response SLA\nT-12 Printer &lt;!channel&gt; &amp; jammed\nNo agent has answered for 4 hours.',
    );
    expect(JSON.stringify(post)).not.toContain('<!channel>');
  });

  it("posts to a person's user id in their DM; the DM's channel names the message", async () => {
    const sent = await send('U0ALICE001');
    const dm = sim.dmOf('U0ALICE001');
    expect(dm).toMatch(/^D/);
    expect(sent.providerMessageId).toBe(`${dm}/${sim.posts()[0]!.ts}`);
  });

  it('keeps long values under Block Kit limits, so Slack takes them', async () => {
    const long = content({ title: 'T'.repeat(400), text: '<&>'.repeat(2000) });
    long.ticket!.subject = 'S'.repeat(5000);
    await send('C0SECOND01', { c: long });
    const blocks = sim.posts()[0]!.blocks as any[];
    expect(blocks[0].text.text).toHaveLength(150);
    expect(blocks[2].text.text.length).toBeLessThanOrEqual(3000);
    expect(blocks[2].text.text).toMatch(/&gt;…$|&lt;…$|&amp;…$/);
    const plain = content({ ticket: null, text: '' });
    await send('C0SECOND01', { c: plain });
    expect((sim.posts()[1]!.blocks as any[]).map((b) => b.type)).toEqual(['header', 'context']);
  });
});

describe("Slack's failures in the taxonomy", () => {
  it('channel_not_found is not_found; not_in_channel and is_archived are invalid_recipient', async () => {
    expect((await failure(send('C0NOWHERE1'))).code).toBe('not_found');
    expect((await failure(send('U0NOBODY01'))).code).toBe('not_found');
    expect((await failure(send('C0OUTSIDE1'))).code).toBe('invalid_recipient');
    const archived = await failure(send('C0ARCHIVE1'));
    expect(archived.code).toBe('invalid_recipient');
    expect(archived.retryable).toBe(false);
    expect(archived.requestId).toBeTruthy();
    expect(archived.message).toContain('is_archived');
  });

  it('a destination that is no Slack id is invalid_recipient, without asking Slack', async () => {
    const before = sim.log.length;
    expect((await failure(send('#general'))).code).toBe('invalid_recipient');
    expect(sim.log.length).toBe(before);
  });

  it('invalid_auth, token_revoked and account_inactive are auth; so is a tenant without Slack', async () => {
    const other = await createTenant(t.db.pool, { name: 'Tenant C' });
    const tenantId = other.tenant.id;
    await connect(tenantId, 'xoxb-0-0-not-a-token-of-the-simulator');
    expect((await failure(send('C0GENERAL1', { tenantId }))).code).toBe('auth');
    const revoked = sim.issueToken();
    sim.revokeToken(revoked);
    await connect(tenantId, revoked);
    const err = await failure(send('C0SECOND01', { tenantId }));
    expect([err.code, err.message]).toEqual(['auth', 'Slack chat.postMessage: HTTP 200 token_revoked']);
    const inactive = sim.issueToken();
    sim.deactivateToken(inactive);
    await connect(tenantId, inactive);
    expect((await failure(send('C0THIRD001', { tenantId }))).message).toContain('account_inactive');
    expect((await failure(send('C0GENERAL1', { tenantId: t.b.tenant.id }))).code).toBe('auth');
    expect(sim.posts()).toEqual([]);
  });

  it('msg_too_long is permanent', async () => {
    sim.failNext('chat.postMessage', 'msg_too_long');
    const err = await failure(send('C0GENERAL1'));
    expect([err.code, err.retryable]).toEqual(['permanent', false]);
  });

  it('HTTP 429 is throttled with its Retry-After; rate_limited in a 200 too (30 s when none is given)', async () => {
    sim.fault({ pathPrefix: '/api/chat.postMessage', status: 429, retryAfter: 7 });
    const limited = await failure(send('C0GENERAL1'));
    expect([limited.code, limited.retryable, limited.retryAfterSeconds]).toEqual(['throttled', true, 7]);
    sim.failNext('chat.postMessage', 'rate_limited');
    const named = await failure(send('C0SECOND01'));
    expect([named.code, named.retryAfterSeconds]).toEqual(['throttled', 30]);
  });

  it('after a 429 the channel is held back in this process instead of asked again at once', async () => {
    sim.fault({ pathPrefix: '/api/chat.postMessage', status: 429, retryAfter: 60 });
    await failure(send('C0THIRD001'));
    const requests = sim.log.length;
    const held = await failure(send('C0THIRD001'));
    expect(held.code).toBe('throttled');
    expect(held.retryAfterSeconds).toBeGreaterThan(20);
    expect(sim.log.length).toBe(requests);
    // Other channels go on.
    await send('C0SECOND01');
  });

  it('HTTP 5xx and no answer are transient, and may have posted', async () => {
    sim.fault({ pathPrefix: '/api/chat.postMessage', status: 503 });
    const down = await failure(send('C0GENERAL1'));
    expect([down.code, down.retryable, down.ambiguous]).toEqual(['transient', true, true]);
    sim.fault({ pathPrefix: '/api/chat.postMessage', delayMs: 500 });
    const slow = await failure(send('C0SECOND01', { via: newAdapter({ timeoutMs: 100 }) }));
    expect([slow.code, slow.ambiguous]).toEqual(['transient', true]);
    sim.failNext('chat.postMessage', 'service_unavailable');
    const unavailable = await failure(send('C0THIRD001'));
    expect([unavailable.code, unavailable.ambiguous]).toEqual(['transient', false]);
  });

  it('classifies every error of the table', () => {
    const table: Record<string, string> = {
      ratelimited: 'throttled',
      rate_limited: 'throttled',
      invalid_auth: 'auth',
      not_authed: 'auth',
      token_revoked: 'auth',
      token_expired: 'auth',
      account_inactive: 'auth',
      missing_scope: 'auth',
      channel_not_found: 'not_found',
      user_not_found: 'not_found',
      not_in_channel: 'invalid_recipient',
      is_archived: 'invalid_recipient',
      cannot_dm_bot: 'invalid_recipient',
      restricted_action_read_only_channel: 'invalid_recipient',
      msg_too_long: 'permanent',
      no_text: 'permanent',
      invalid_blocks: 'permanent',
      something_new: 'permanent',
      fatal: 'transient',
      internal_error: 'transient',
      service_unavailable: 'transient',
      request_timeout: 'transient',
    };
    for (const [error, code] of Object.entries(table))
      expect([error, slackErrorClass(error)]).toEqual([error, code]);
  });
});

describe('pacing', () => {
  it('spaces a burst to one channel under Slack’s limit, in the order asked', async () => {
    // Without pacing the simulator refuses part of the burst: the limit is real.
    const unpaced = newAdapter({ intervalMs: 0 });
    const results = await Promise.allSettled(
      [1, 2, 3, 4, 5].map((i) => send('C0UNPACED1', { via: unpaced, c: content({ title: `unpaced ${i}` }) })),
    );
    expect(results.filter((r) => r.status === 'rejected').length).toBeGreaterThan(0);
    expect(sim.rateLimited().get('C0UNPACED1')).toBeGreaterThan(0);

    sim.clearPosts();
    const sent = await Promise.all(
      [1, 2, 3, 4, 5].map((i) => send('C0PACED001', { c: content({ title: `paced ${i}` }) })),
    );
    expect(sent).toHaveLength(5);
    expect(sim.rateLimited().get('C0PACED001')).toBeUndefined();
    const posts = sim.posts().filter((p) => p.channel === 'C0PACED001');
    expect(posts.map((p) => (p.blocks as any[])[0].text.text)).toEqual(
      [1, 2, 3, 4, 5].map((i) => `paced ${i}`),
    );
  });
});

describe('retries', () => {
  it("waits Slack's Retry-After, else 30 s doubling up to an hour, and gives up after 8 attempts", () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((a) => slackRetryDelaySeconds(a, undefined))).toEqual([
      30, 60, 120, 240, 480, 960, 1920,
    ]);
    expect(slackRetryDelaySeconds(2, 5)).toBe(5);
    expect(slackRetryDelaySeconds(3, 7200)).toBe(3600);
    expect(slackRetryDelaySeconds(8, undefined)).toBeUndefined();
    expect(slackRetryDelaySeconds(8, 5)).toBeUndefined();
    expect(adapter.retryDelaySeconds).toBe(slackRetryDelaySeconds);
    expect(adapter.resendIsSafe).toBe(false);
    expect(adapter.channel).toBe('slack');
  });
});

describe('tenant deletion', () => {
  it('removes the integration with its tenant', async () => {
    const doomed = await createTenant(t.db.pool, { name: 'Doomed' });
    await connect(doomed.tenant.id, sim.botToken);
    const count = async () =>
      (
        await t.db.admin.query('SELECT count(*)::int AS n FROM slack_integrations WHERE tenant_id = $1', [
          doomed.tenant.id,
        ])
      ).rows[0].n;
    expect(await count()).toBe(1);
    await deleteTenant(t.db.pool, doomed.tenant.id);
    expect(await count()).toBe(0);
  });
});
