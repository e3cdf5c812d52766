// The webhook receiver simulator's own behaviour (no database): it accepts only requests signed per
// Standard Webhooks with one of its secrets and a fresh timestamp, counts deliveries per webhook-id,
// and fails on demand — through plain fetch, signed here with node:crypto.
import { createHmac, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { startWebhookReceiver, type WebhookReceiver } from '../simulators/webhook-receiver.ts';

const secret = () => `whsec_${randomBytes(24).toString('base64')}`;
const sign = (s: string, id: string, ts: number, body: string) =>
  `v1,${createHmac('sha256', Buffer.from(s.slice(6), 'base64'))
    .update(`${id}.${ts}.${body}`)
    .digest('base64')}`;

const now = new Date('2026-05-01T10:00:00Z');
let receiver: WebhookReceiver;
const [current, previous] = [secret(), secret()];

async function post(
  id: string,
  options: { body?: string; signature?: string; ts?: number; path?: string; signal?: AbortSignal } = {},
) {
  const body =
    options.body ?? JSON.stringify({ type: 'ticket.created', timestamp: now.toISOString(), data: {} });
  const ts = options.ts ?? Math.floor(now.getTime() / 1000);
  const res = await fetch(`${receiver.url}${options.path ?? '/hook'}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(ts),
      'webhook-signature': options.signature ?? sign(current, id, ts, body),
    },
    body,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

beforeAll(async () => {
  receiver = await startWebhookReceiver({ secrets: [current], now: () => now });
});
afterAll(() => receiver.close());
beforeEach(() => {
  receiver.clear();
  receiver.setSecrets([current]);
});

describe('webhook receiver simulator', () => {
  it('accepts a signed request and counts it per webhook-id, duplicates included', async () => {
    expect((await post('msg_1')).status).toBe(200);
    expect((await post('msg_2')).status).toBe(200);
    expect((await post('msg_1')).status).toBe(200);
    expect(receiver.counts()).toEqual(
      new Map([
        ['msg_1', 2],
        ['msg_2', 1],
      ]),
    );
    expect(receiver.duplicates()).toEqual(['msg_1']);
    expect(receiver.requests().map((r) => r.verified)).toEqual([true, true, true]);
  });

  it('refuses a wrong signature, a changed body, a missing header and a stale timestamp', async () => {
    const body = '{"a":1}';
    const ts = Math.floor(now.getTime() / 1000);
    expect((await post('m', { body, signature: sign(secret(), 'm', ts, body) })).status).toBe(401);
    expect((await post('m', { body: '{"a":2}', signature: sign(current, 'm', ts, body) })).status).toBe(401);
    expect((await post('m', { signature: 'v1,' })).status).toBe(401);
    expect((await post('m', { ts: ts - 301 })).status).toBe(400);
    expect((await post('m', { ts: ts + 301 })).status).toBe(400);
    const res = await fetch(`${receiver.url}/hook`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(400);
    expect(receiver.counts().size).toBe(0);
  });

  it('verifies with any of its secrets, and any of several signatures (rotation)', async () => {
    receiver.setSecrets([current, previous]);
    const body = '{"b":1}';
    const ts = Math.floor(now.getTime() / 1000);
    expect((await post('old', { body, signature: sign(previous, 'old', ts, body) })).status).toBe(200);
    const both = `${sign(current, 'both', ts, body)} ${sign(previous, 'both', ts, body)}`;
    expect((await post('both', { body, signature: both })).status).toBe(200);
    expect(receiver.requests().map((r) => r.verifiedBy)).toEqual([[1], [0, 1]]);
    receiver.setSecrets([previous]);
    expect((await post('new-only', { body, signature: sign(current, 'new-only', ts, body) })).status).toBe(
      401,
    );
  });

  it('fails on demand: a status with Retry-After, 410, then answers again', async () => {
    receiver.fail({ status: 503, retryAfter: 30 });
    receiver.fail({ status: 410 });
    const first = await post('f');
    expect(first.status).toBe(503);
    expect(first.headers.get('retry-after')).toBe('30');
    expect((await post('f')).status).toBe(410);
    expect((await post('f')).status).toBe(200);
    expect(receiver.counts().get('f')).toBe(1);
    // Coming back before the Retry-After passed is counted.
    expect(receiver.faults.retryAfterViolations()).toBe(2);
  });

  it('answers slowly on demand (for timeouts), and still takes what it was sent', async () => {
    receiver.fail({ delayMs: 1500 });
    await expect(post('slow', { signal: AbortSignal.timeout(100) })).rejects.toThrow(/aborted|timeout/i);
    // The sender gave up; the receiver took it all the same (what makes retries duplicates).
    await vi.waitFor(() => expect(receiver.counts().get('slow')).toBe(1), { timeout: 5000 });
    expect((await post('fast')).status).toBe(200);
  });
});
