// Limits on guessing: an account locks after repeated failures (passwords and codes alike), for
// longer each time, until a success clears it; a client address may make only so many requests a
// minute to the public sign-in routes. Both answer 429 rate_limited with Retry-After.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, type TestSession, useTestApp } from '../../../test/app.ts';
import { totpCodeOf } from './credentials.ts';

let t: TestApp;

beforeAll(async () => {
  t = await useTestApp({ signInLimits: { accountFailures: 3, addressPerMinute: 1_000_000 } });
});

afterEach(() => t.clock.unfreeze());

const signIn = (s: TestSession, extra: Record<string, unknown> = {}) =>
  t.call(undefined, 'POST', '/api/v1/session', { email: s.email, password: s.password, ...extra });
const wrongPassword = (s: TestSession) => signIn(s, { password: 'this is not the password' });

describe('an account', () => {
  it('locks after the limit of failures, a minute first and longer each time; a success clears it', async () => {
    t.clock.freeze();
    const s = await t.signIn();
    for (let i = 0; i < 3; i++) expect((await wrongPassword(s)).body.code).toBe('invalid_credentials');
    const locked = await signIn(s);
    expect(locked.status).toBe(429);
    expect(locked.body.code).toBe('rate_limited');
    expect(locked.headers['retry-after']).toBe('60');
    expect(locked.headers['content-type']).toMatch(/^application\/problem\+json/);
    // Once the lock is over, the next failure locks it again, for twice as long.
    t.clock.advance(60_000);
    expect((await wrongPassword(s)).body.code).toBe('invalid_credentials');
    const longer = await signIn(s);
    expect(longer.status).toBe(429);
    expect(longer.headers['retry-after']).toBe('120');
    t.clock.advance(120_000);
    expect((await signIn(s)).status).toBe(200);
    // Cleared: two failures do not lock it.
    for (let i = 0; i < 2; i++) await wrongPassword(s);
    expect((await signIn(s)).status).toBe(200);
    // Other accounts are not affected by this one's lock.
    for (let i = 0; i < 3; i++) await wrongPassword(s);
    const other = await t.signIn();
    expect((await signIn(other)).status).toBe(200);
  });

  it('counts wrong second-factor codes, at sign-in and on the TOTP routes', async () => {
    t.clock.freeze();
    const s = await t.signIn();
    const started = await s.call('POST', '/api/v1/session/totp');
    const wrong = totpCodeOf(started.body.secret, t.clock.now()) === '000000' ? '111111' : '000000';
    expect((await s.call('POST', '/api/v1/session/totp/confirm', { code: wrong })).status).toBe(400);
    expect((await s.call('POST', '/api/v1/session/totp/confirm', { code: wrong })).status).toBe(400);
    expect((await s.call('POST', '/api/v1/session/totp/confirm', { code: wrong })).status).toBe(400);
    const locked = await s.call('POST', '/api/v1/session/totp/confirm', {
      code: totpCodeOf(started.body.secret, t.clock.now()),
    });
    expect(locked.status).toBe(429);
    expect(locked.headers['retry-after']).toBe('60');
    t.clock.advance(60_000);
    const confirmed = await s.call('POST', '/api/v1/session/totp/confirm', {
      code: totpCodeOf(started.body.secret, t.clock.now()),
    });
    expect(confirmed.status).toBe(200);

    t.clock.advance(30_000);
    for (let i = 0; i < 3; i++)
      expect((await signIn(s, { totp: wrong })).body.code).toBe('invalid_credentials');
    const lockedAtSignIn = await signIn(s, { totp: totpCodeOf(started.body.secret, t.clock.now()) });
    expect(lockedAtSignIn.status).toBe(429);
  });
});

describe('a client address', () => {
  it('may make only so many requests a minute to the public sign-in routes (each its own count)', async () => {
    t.config.signInLimits = { accountFailures: 3, addressPerMinute: 4 };
    try {
      const post = (url: string, payload: object, remoteAddress = '203.0.113.7') =>
        t.app.inject({ method: 'POST', url, payload, remoteAddress });
      const body = { email: 'someone@example.com', password: 'whatever it is' };
      for (let i = 0; i < 4; i++) expect((await post('/api/v1/session', body)).statusCode).toBe(401);
      const limited = await post('/api/v1/session', body);
      expect(limited.statusCode).toBe(429);
      expect(limited.json()).toMatchObject({ code: 'rate_limited', status: 429 });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      // Another address, and another route, count on their own.
      expect((await post('/api/v1/session', body, '203.0.113.8')).statusCode).toBe(401);
      expect((await post('/api/v1/password-reset', { email: 'someone@example.com' })).statusCode).toBe(202);
      // Routes behind authentication are not limited this way.
      for (let i = 0; i < 6; i++)
        expect(
          (
            await t.app.inject({
              method: 'GET',
              url: '/api/v1/me',
              headers: { authorization: `Bearer ${t.a.adminToken.token}` },
              remoteAddress: '203.0.113.7',
            })
          ).statusCode,
        ).toBe(200);
    } finally {
      t.config.signInLimits = { accountFailures: 3, addressPerMinute: 1_000_000 };
    }
  });
});
