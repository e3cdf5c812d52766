// The Graph and Gmail clients count an HTTP-date Retry-After from their injected clock (DESIGN
// §3.6): upkeep schedules its next try from that delay on the same clock, so a wall-clock reading
// here made the delay wrong by however far the clock was from the wall (in tests: months).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../platform/clock.ts';
import { RateLimited } from '../../../platform/provider-errors.ts';
import { GmailClient } from './gmail/client.ts';
import { GraphClient } from './graph/client.ts';

const clock = new ManualClock('2026-03-01T12:00:00Z');
let server: Server;
let base: string;

beforeAll(async () => {
  // Every request is refused for two minutes, said as an HTTP date on the clock of the test.
  server = createServer((_req, res) => {
    res.writeHead(429, {
      'content-type': 'application/json',
      'retry-after': new Date(clock.now().getTime() + 120_000).toUTCString(),
    });
    res.end(JSON.stringify({ error: { code: 'TooManyRequests', message: 'slow down' } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => expect.unreachable('the provider refused'),
    (err: unknown) => err,
  );

describe('an HTTP-date Retry-After', () => {
  it('is counted from the Graph client clock', async () => {
    const client = new GraphClient(
      { apiBaseUrl: base, tokenUrl: base },
      { tenantId: 'retry-after-test', clientId: 'c', clientSecret: 's' },
      clock,
    );
    const err = await refusal(client.token());
    expect(err).toBeInstanceOf(RateLimited);
    expect((err as RateLimited).retryAfterSeconds).toBe(120);
  });

  it('is counted from the Gmail client clock', async () => {
    const client = new GmailClient(
      { apiBaseUrl: base, tokenUrl: `${base}/token` },
      { clientId: 'c', clientSecret: 's', refreshToken: 'r' },
      clock,
    );
    const err = await refusal(client.token());
    expect(err).toBeInstanceOf(RateLimited);
    expect((err as RateLimited).retryAfterSeconds).toBe(120);
  });
});
