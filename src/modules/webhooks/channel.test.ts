// The webhook channel adapter against the receiver simulator: what it sends and how it is signed
// (checked by a verifier written here from the spec), rotation, how answers are classified, 410 and
// five days of failures disabling an endpoint, Retry-After, timeouts, and the address rules at send
// time (rebinding included).
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startWebhookReceiver, type WebhookReceiver } from '../../../simulators/webhook-receiver.ts';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { createLogger } from '../../platform/logging.ts';
import type { ChannelAdapter, ChannelSend, NotificationContent } from '../notify/channel.ts';
import { DeliveryError } from '../outbound/transports.ts';
import type { Resolve } from './address.ts';
import { webhookChannel, type WebhookChannelDeps } from './channel.ts';
import { createEndpoint } from './endpoints.ts';

let t: TestApp;
let receiver: WebhookReceiver;
let channel: ChannelAdapter;
const admin = () => t.a.adminToken.token;
const DAY = 86_400_000;

/** Standard Webhooks verification, from the spec's text: any `v1,` signature by the secret's key. */
function specVerify(secret: string, headers: http.IncomingHttpHeaders, body: string): boolean {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key)
    .update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`)
    .digest();
  return String(headers['webhook-signature'])
    .split(' ')
    .some((part) => {
      const [version, sig] = part.split(',');
      const got = Buffer.from(sig ?? '', 'base64');
      return version === 'v1' && got.length === expected.length && timingSafeEqual(got, expected);
    });
}

const adapter = (over: Partial<WebhookChannelDeps> = {}) =>
  webhookChannel({
    pool: t.db.pool,
    secretKey: t.secretKey,
    clock: t.clock,
    logger: createLogger('silent'),
    allowPrivate: true,
    ...over,
  });

const content = (over: Partial<NotificationContent> = {}): NotificationContent => ({
  eventId: uuidv7(),
  type: 'ticket.created',
  occurredAt: '2026-05-01T09:59:00.000Z',
  urgent: false,
  title: 'T-7 was created',
  text: 'Printer on floor 3 is jammed',
  ticket: {
    id: uuidv7(),
    number: 'T-7',
    subject: 'Printer',
    status: 'new',
    priority: 'normal',
    requester: { id: uuidv7(), name: 'Carol', email: 'carol@example.com' },
    assignee: null,
    sla: null,
  },
  data: { channel: 'email' },
  ...over,
});

const sendInput = (destination: string, over: Partial<ChannelSend> = {}): ChannelSend => ({
  tenantId: t.a.tenant.id,
  deliveryId: uuidv7(),
  attempt: 1,
  notificationId: uuidv7(),
  destination,
  idempotencyKey: 'k',
  content: content(),
  ...over,
});

async function makeEndpoint(
  url = `${receiver.url}/hook`,
  events = ['ticket.created'],
): Promise<{ id: string; secret: string }> {
  const res = await t.call(admin(), 'POST', '/api/v1/webhook-endpoints', { url, events });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

const endpoint = async (id: string) => (await t.call(admin(), 'GET', `/api/v1/webhook-endpoints/${id}`)).body;

const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected the send to fail');
    },
    (err: unknown) => {
      expect(err).toBeInstanceOf(DeliveryError);
      return err as DeliveryError;
    },
  );

const disabledEvents = async (endpointId: string) =>
  (
    await t.db.admin.query<{ data: Record<string, unknown> }>(
      `SELECT data FROM events WHERE tenant_id = $1 AND type = 'delivery.failed' AND data->>'endpointId' = $2`,
      [t.a.tenant.id, endpointId],
    )
  ).rows.map((r) => r.data);

beforeAll(async () => {
  t = await useTestApp();
  receiver = await startWebhookReceiver({ now: () => t.clock.now() });
  channel = adapter();
});
afterAll(() => receiver.close());
beforeEach(() => {
  receiver.clear();
  t.clock.freeze('2026-05-01T10:00:00Z');
});

describe('webhook channel: finding endpoints', () => {
  it('lists the enabled endpoints subscribed to a type, in the tenant only', async () => {
    const created = await makeEndpoint(`${receiver.url}/a`, ['ticket.created', 'sla.breached']);
    const other = await makeEndpoint(`${receiver.url}/b`, ['sla.breached']);
    const off = await makeEndpoint(`${receiver.url}/c`, ['ticket.created']);
    await t.call(admin(), 'PATCH', `/api/v1/webhook-endpoints/${off.id}`, { enabled: false });
    const ofB = await t.call(t.b.adminToken.token, 'POST', '/api/v1/webhook-endpoints', {
      url: `${receiver.url}/b`,
      events: ['ticket.created'],
    });
    const subscribers = await withTenantRead(t.db.pool, t.a.tenant.id, (tx) =>
      channel.subscribers!(tx, 'ticket.created'),
    );
    expect(subscribers).toContain(created.id);
    expect(subscribers).not.toContain(other.id);
    expect(subscribers).not.toContain(off.id);
    expect(subscribers).not.toContain(ofB.body.id);
    await withTenantRead(t.db.pool, t.a.tenant.id, async (tx) => {
      expect(await channel.destinationExists(tx, created.id)).toBe(true);
      expect(await channel.destinationExists(tx, off.id)).toBe(true);
      expect(await channel.destinationExists(tx, ofB.body.id)).toBe(false);
      expect(await channel.destinationExists(tx, 'not-an-id')).toBe(false);
      expect(await channel.subscribers!(tx, 'notification.test')).toEqual([]);
      expect(await channel.personDestination(tx, t.a.adminToken.personId)).toBeUndefined();
    });
    expect(channel.resendIsSafe).toBe(true);
  });
});

describe('webhook channel: sending', () => {
  it('POSTs {type, timestamp, data} signed per Standard Webhooks, with the notification id as webhook-id', async () => {
    const ep = await makeEndpoint();
    receiver.setSecrets([ep.secret]);
    const input = sendInput(ep.id);
    const sent = await channel.send(input);
    expect(sent.providerResponse).toMatch(/^HTTP 200/);
    expect(sent.requestId).toMatch(/^req-/);
    const [req] = receiver.requests();
    expect(req!.verified).toBe(true);
    expect(specVerify(ep.secret, req!.headers, req!.body)).toBe(true);
    expect(req!.headers['webhook-id']).toBe(input.notificationId);
    expect(req!.headers['webhook-timestamp']).toBe(String(Date.parse('2026-05-01T10:00:00Z') / 1000));
    expect(req!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(req!.body)).toEqual({
      type: 'ticket.created',
      timestamp: '2026-05-01T09:59:00.000Z',
      data: {
        ticket: input.content.ticket,
        channel: 'email',
        title: 'T-7 was created',
        text: 'Printer on floor 3 is jammed',
      },
    });
    // A retry of the same notification carries the same webhook-id: the receiver sees a duplicate.
    await channel.send({ ...input, attempt: 2, deliveryId: uuidv7() });
    expect(receiver.counts().get(input.notificationId)).toBe(2);
    expect(receiver.duplicates()).toEqual([input.notificationId]);
  });

  it("sends a batch of several tenants' attempts, each signed by its own endpoint's secret; a tenant naming another's endpoint finds none", async () => {
    const ofA = await makeEndpoint();
    const ofB = await t.call(t.b.adminToken.token, 'POST', '/api/v1/webhook-endpoints', {
      url: `${receiver.url}/b`,
      events: ['ticket.created'],
    });
    expect(ofB.status).toBe(201);
    receiver.setSecrets([ofA.secret, ofB.body.secret]);
    const inputs = [
      sendInput(ofA.id),
      sendInput(ofB.body.id, { tenantId: t.b.tenant.id }),
      sendInput(ofB.body.id),
      sendInput('not-an-id'),
    ];
    const outcomes = await channel.sendMany!(inputs);
    expect(outcomes.map((o) => o.ok)).toEqual([true, true, false, false]);
    for (const o of outcomes.slice(2)) {
      expect(o.ok ? undefined : o.error).toBeInstanceOf(DeliveryError);
      expect(o.ok ? undefined : (o.error as DeliveryError).code).toBe('not_found');
    }
    const requests = receiver.requests();
    expect(requests).toHaveLength(2);
    const byId = new Map(requests.map((r) => [r.headers['webhook-id'], r]));
    const a = byId.get(inputs[0]!.notificationId)!;
    const b = byId.get(inputs[1]!.notificationId)!;
    expect(specVerify(ofA.secret, a.headers, a.body)).toBe(true);
    expect(specVerify(ofB.body.secret, a.headers, a.body)).toBe(false);
    expect(specVerify(ofB.body.secret, b.headers, b.body)).toBe(true);
    expect(b.path).toBe('/b');
  });

  it('signs with both secrets for 24 hours after a rotation, then with the new one only', async () => {
    const ep = await makeEndpoint();
    const rotated = await t.call(admin(), 'POST', `/api/v1/webhook-endpoints/${ep.id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).not.toBe(ep.secret);
    expect(rotated.body.previousSecretExpiresAt).toBe('2026-05-02T10:00:00Z');
    receiver.setSecrets([rotated.body.secret, ep.secret]);

    await channel.send(sendInput(ep.id));
    const during = receiver.requests().at(-1)!;
    expect(String(during.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(specVerify(ep.secret, during.headers, during.body)).toBe(true);
    expect(specVerify(rotated.body.secret, during.headers, during.body)).toBe(true);
    expect(during.verifiedBy).toEqual([0, 1]);

    t.clock.advance(DAY + 1000);
    await channel.send(sendInput(ep.id));
    const after = receiver.requests().at(-1)!;
    expect(String(after.headers['webhook-signature']).split(' ')).toHaveLength(1);
    expect(specVerify(rotated.body.secret, after.headers, after.body)).toBe(true);
    expect(specVerify(ep.secret, after.headers, after.body)).toBe(false);
  });

  it('classifies answers: 429 and 503 with Retry-After throttled, 408 and 5xx transient, other 4xx permanent', async () => {
    const ep = await makeEndpoint();
    receiver.setSecrets([ep.secret]);
    const cases: [{ status: number; retryAfter?: number }, string, number | undefined][] = [
      [{ status: 429, retryAfter: 120 }, 'throttled', 120],
      [{ status: 429 }, 'throttled', undefined],
      [{ status: 503, retryAfter: 60 }, 'throttled', 60],
      [{ status: 503 }, 'transient', undefined],
      [{ status: 500 }, 'transient', undefined],
      [{ status: 408 }, 'transient', undefined],
      [{ status: 400 }, 'permanent', undefined],
      [{ status: 404 }, 'permanent', undefined],
      [{ status: 410 }, 'not_found', undefined],
    ];
    for (const [fault, code, retryAfter] of cases) {
      receiver.fail(fault);
      const err = await failure(channel.send(sendInput(ep.id)));
      expect(err.code, String(fault.status)).toBe(code);
      expect(err.retryAfterSeconds, String(fault.status)).toBe(retryAfter);
      expect(err.retryable).toBe(code === 'throttled' || code === 'transient');
    }
    // Retry-After is honoured: the next attempt is not sooner than asked.
    expect(channel.retryDelaySeconds(1, 120)).toBeGreaterThanOrEqual(120);
    expect(channel.retryDelaySeconds(1, undefined)).toBeLessThanOrEqual(5.5);
    expect(channel.retryDelaySeconds(8, 120)).toBeUndefined();
  });

  it('follows no redirect', async () => {
    const ep = await makeEndpoint();
    const redirector = http.createServer((_req, res) => {
      res.writeHead(307, { location: `${receiver.url}/hook` }).end();
    });
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/hook`;
      await t.call(admin(), 'PATCH', `/api/v1/webhook-endpoints/${ep.id}`, { url });
      const err = await failure(channel.send(sendInput(ep.id)));
      expect(err.code).toBe('permanent');
      expect(err.message).toMatch(/307.*redirects are not followed/);
      expect(receiver.requests()).toHaveLength(0);
    } finally {
      redirector.close();
    }
  });

  it('gives up on a slow receiver after the timeout, and on a refused connection (transient)', async () => {
    const ep = await makeEndpoint();
    receiver.setSecrets([ep.secret]);
    receiver.fail({ delayMs: 1500 });
    const err = await failure(adapter({ timeoutMs: 100 }).send(sendInput(ep.id)));
    expect(err.code).toBe('transient');
    expect(err.message).toMatch(/no answer within 0.1 s/);

    // An answer that starts and then stalls times out the same.
    const stalling = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"ok":');
    });
    await new Promise<void>((r) => stalling.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(stalling.address() as AddressInfo).port}/`;
      await t.call(admin(), 'PATCH', `/api/v1/webhook-endpoints/${ep.id}`, { url });
      const stalled = await failure(adapter({ timeoutMs: 100 }).send(sendInput(ep.id)));
      expect(stalled.code).toBe('transient');
      expect(stalled.message).toMatch(/no answer within/);
    } finally {
      stalling.closeAllConnections();
      stalling.close();
    }

    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await t.call(admin(), 'PATCH', `/api/v1/webhook-endpoints/${ep.id}`, {
      url: `http://127.0.0.1:${port}/`,
    });
    const refused = await failure(channel.send(sendInput(ep.id)));
    expect(refused.code).toBe('transient');
    expect(refused.message).toMatch(/connection failed: .*ECONNREFUSED/);
  });
});

describe('webhook channel: disabling endpoints', () => {
  it('disables an endpoint at once on 410, with a delivery.failed event; a disabled endpoint is not sent to', async () => {
    const ep = await makeEndpoint();
    receiver.setSecrets([ep.secret]);
    receiver.fail({ status: 410 });
    const err = await failure(channel.send(sendInput(ep.id)));
    expect(err.code).toBe('not_found');
    expect(err.retryable).toBe(false);
    await channel.onTerminalFailure!(t.a.tenant.id, ep.id, err);
    const after = await endpoint(ep.id);
    expect(after).toMatchObject({
      enabled: false,
      disabledReason: 'gone',
      disabledAt: '2026-05-01T10:00:00Z',
    });
    expect(await disabledEvents(ep.id)).toEqual([
      { endpointId: ep.id, reason: 'endpoint_disabled', cause: 'gone' },
    ]);
    // Once only.
    await channel.onTerminalFailure!(t.a.tenant.id, ep.id, err);
    expect(await disabledEvents(ep.id)).toHaveLength(1);

    const next = await failure(channel.send(sendInput(ep.id)));
    expect(next.code).toBe('permanent');
    expect(next.message).toMatch(/disabled/);
    expect(receiver.requests()).toHaveLength(1);
    // Other terminal failures do not disable.
    const other = await makeEndpoint();
    await channel.onTerminalFailure!(t.a.tenant.id, other.id, new DeliveryError('permanent', 'HTTP 400'));
    expect((await endpoint(other.id)).enabled).toBe(true);
  });

  it('disables an endpoint that failed for five days, with a delivery.failed event; a success ends the streak', async () => {
    const ep = await makeEndpoint();
    receiver.setSecrets([ep.secret]);
    receiver.fail({ status: 500, times: Infinity });
    await failure(channel.send(sendInput(ep.id)));
    expect((await endpoint(ep.id)).failingSince).toBe('2026-05-01T10:00:00Z');

    t.clock.advance(5 * DAY - 1000);
    await failure(channel.send(sendInput(ep.id)));
    expect(await endpoint(ep.id)).toMatchObject({ enabled: true, failingSince: '2026-05-01T10:00:00Z' });
    expect(await disabledEvents(ep.id)).toEqual([]);

    t.clock.advance(1000);
    await failure(channel.send(sendInput(ep.id)));
    expect(await endpoint(ep.id)).toMatchObject({ enabled: false, disabledReason: 'failing' });
    expect(await disabledEvents(ep.id)).toEqual([
      { endpointId: ep.id, reason: 'endpoint_disabled', cause: 'failing' },
    ]);

    // Turned back on, it starts afresh; a success clears a new streak.
    receiver.clear();
    const on = await t.call(admin(), 'PATCH', `/api/v1/webhook-endpoints/${ep.id}`, { enabled: true });
    expect(on.body).toMatchObject({ enabled: true, disabledReason: null, failingSince: null });
    receiver.setSecrets([ep.secret]);
    receiver.fail({ status: 502 });
    await failure(channel.send(sendInput(ep.id)));
    expect((await endpoint(ep.id)).failingSince).not.toBeNull();
    await channel.send(sendInput(ep.id));
    await channel.onSuccess!(t.a.tenant.id, ep.id);
    expect((await endpoint(ep.id)).failingSince).toBeNull();
  });

  it('fails a deleted endpoint as not_found', async () => {
    const ep = await makeEndpoint();
    await t.call(admin(), 'DELETE', `/api/v1/webhook-endpoints/${ep.id}`);
    expect((await failure(channel.send(sendInput(ep.id)))).code).toBe('not_found');
  });
});

describe('webhook channel: addresses at send time', () => {
  /** An endpoint stored without the save-time check (its name resolves only through `resolve`). */
  async function storedEndpoint(url: string) {
    return withTenant(t.db.pool, t.a.tenant.id, (tx) =>
      createEndpoint(tx, { secretKey: t.secretKey, clock: t.clock }, { url, events: ['ticket.created'] }),
    );
  }

  it('refuses a private address at send time without the override', async () => {
    const ep = await makeEndpoint();
    const strict = adapter({ allowPrivate: false });
    const err = await failure(strict.send(sendInput(ep.id)));
    expect(err.code).toBe('permanent');
    expect(err.message).toMatch(/loopback, private or link-local/);
    expect(receiver.requests()).toHaveLength(0);
    expect((await endpoint(ep.id)).failingSince).not.toBeNull();
  });

  it('connects to the address it checked, resolving the name once per send', async () => {
    const port = new URL(receiver.url).port;
    const ep = await storedEndpoint(`http://hooks.relaydesk.test:${port}/pinned`);
    receiver.setSecrets([ep.secret]);
    const asked: string[] = [];
    const resolve: Resolve = async (host) => {
      asked.push(host);
      return [{ address: '127.0.0.1', family: 4 }];
    };
    // hooks.relaydesk.test exists for no DNS server: only the checked address can have been used.
    await adapter({ resolve }).send(sendInput(ep.id));
    expect(asked).toEqual(['hooks.relaydesk.test']);
    const [req] = receiver.requests();
    expect(req).toMatchObject({ path: '/pinned', verified: true });
    expect(req!.headers.host).toBe(`hooks.relaydesk.test:${port}`);
  });

  it('refuses a name that resolved to a public address when saved and to a private one at send (rebinding)', async () => {
    const port = new URL(receiver.url).port;
    const ep = await storedEndpoint(`http://rebind.relaydesk.test:${port}/`);
    const answers = ['93.184.216.34', '127.0.0.1'];
    const resolve: Resolve = async () => [{ address: answers.shift() ?? '127.0.0.1', family: 4 }];
    // The check when saving sees the public address…
    const { checkEndpointUrl } = await import('./address.ts');
    await expect(
      checkEndpointUrl(`http://rebind.relaydesk.test:${port}/`, { allowPrivate: false, resolve }),
    ).resolves.toMatch(/^http:/);
    // …the send sees the private one and sends nothing.
    const err = await failure(adapter({ allowPrivate: false, resolve }).send(sendInput(ep.id)));
    expect(err.message).toMatch(/resolves to 127\.0\.0\.1/);
    expect(receiver.requests()).toHaveLength(0);
  });
});
