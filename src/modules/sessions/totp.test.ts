// The second factor against the real database: enrolling an authenticator app, signing in with its
// codes (each good once), recovery codes (each good once), turning it off, a tenant that requires it,
// and the tenant's other sign-in settings.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, type TestSession, useTestApp } from '../../../test/app.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { resetByEmail } from './accounts.ts';
import { totpCodeOf } from './credentials.ts';

let t: TestApp;
const adminA = () => t.a.adminToken.token;
const adminB = () => t.b.adminToken.token;
const STEP = 30_000;

beforeAll(async () => {
  t = await useTestApp();
});

afterEach(() => t.clock.unfreeze());

const code = (secret: string) => totpCodeOf(secret, t.clock.now());

/** A signed-in agent with TOTP on: the session, the secret and the recovery codes. */
async function enrolled(): Promise<{ s: TestSession; secret: string; recoveryCodes: string[] }> {
  const s = await t.signIn();
  const started = await s.call('POST', '/api/v1/session/totp');
  expect(started.status).toBe(200);
  const confirmed = await s.call('POST', '/api/v1/session/totp/confirm', { code: code(started.body.secret) });
  expect(confirmed.status, JSON.stringify(confirmed.body)).toBe(200);
  return { s, secret: started.body.secret, recoveryCodes: confirmed.body.recoveryCodes };
}

const signIn = (s: TestSession, extra: Record<string, unknown> = {}) =>
  t.call(undefined, 'POST', '/api/v1/session', { email: s.email, password: s.password, ...extra });

describe('enrolling an authenticator app', () => {
  it('answers a secret, turns TOTP on with its first code, and answers ten recovery codes', async () => {
    t.clock.freeze();
    const s = await t.signIn();
    const started = await s.call('POST', '/api/v1/session/totp');
    expect(started.body.secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(started.body.otpauthUri).toMatch(
      /^otpauth:\/\/totp\/Relaydesk:.*\?issuer=Relaydesk&secret=[A-Z2-7]+&algorithm=SHA1&digits=6&period=30$/,
    );
    // Nothing is on yet: signing in needs no code.
    expect((await s.call('GET', '/api/v1/session')).body.session.totp).toEqual({
      enabled: false,
      required: false,
    });
    expect((await signIn(s)).status).toBe(200);
    // The secret is stored sealed, never as given.
    const { rows } = await t.db.admin.query(
      'SELECT totp_pending_secret FROM person_credentials WHERE person_id = $1',
      [s.personId],
    );
    expect(rows[0].totp_pending_secret.toString('latin1')).not.toContain(started.body.secret);

    const wrong = await s.call('POST', '/api/v1/session/totp/confirm', {
      code: '000000' === code(started.body.secret) ? '111111' : '000000',
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.errors[0].path).toBe('/code');
    const confirmed = await s.call('POST', '/api/v1/session/totp/confirm', {
      code: code(started.body.secret),
    });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body.recoveryCodes).toHaveLength(10);
    expect(new Set(confirmed.body.recoveryCodes).size).toBe(10);
    expect((await s.call('GET', '/api/v1/session')).body.session.totp).toEqual({
      enabled: true,
      required: false,
    });
    // Enrolling again while it is on is refused.
    expect((await s.call('POST', '/api/v1/session/totp')).status).toBe(409);
    // The session routes are for sessions: an API token is refused.
    expect((await t.call(adminA(), 'POST', '/api/v1/session/totp')).status).toBe(401);
  });

  it('refuses to confirm without an enrolment started', async () => {
    const s = await t.signIn();
    const res = await s.call('POST', '/api/v1/session/totp/confirm', { code: '123456' });
    expect(res.status).toBe(409);
  });
});

describe('signing in with TOTP on', () => {
  it('asks for the code, refuses a wrong one, takes the right one once', async () => {
    t.clock.freeze();
    const { s, secret } = await enrolled();
    t.clock.advance(STEP);
    const asked = await signIn(s);
    expect(asked.status).toBe(401);
    expect(asked.body.code).toBe('second_factor_required');
    expect(asked.headers['set-cookie']).toBeUndefined();
    const current = code(secret);
    const wrong = await signIn(s, { totp: current === '999999' ? '999998' : '999999' });
    expect(wrong.body.code).toBe('invalid_credentials');
    const right = await signIn(s, { totp: current });
    expect(right.status).toBe(200);
    // The same code again, in the same step: refused (RFC 6238 §5.2).
    const replay = await signIn(s, { totp: current });
    expect(replay.status).toBe(401);
    expect(replay.body.code).toBe('invalid_credentials');
    // The step before is older than the one taken: refused too; the next step's code is taken.
    t.clock.advance(STEP);
    expect((await signIn(s, { totp: current })).status).toBe(401);
    expect((await signIn(s, { totp: code(secret) })).status).toBe(200);
    // A wrong password with the right code tells nothing more than a wrong password.
    t.clock.advance(STEP);
    const both = await signIn(s, { password: 'not the password, really', totp: code(secret) });
    expect(both.body.code).toBe('invalid_credentials');
  });

  it('takes a code of the step before or after (clock drift), not two steps away', async () => {
    t.clock.freeze();
    const { s, secret } = await enrolled();
    t.clock.advance(10 * STEP);
    const before = totpCodeOf(secret, new Date(t.clock.now().getTime() - STEP));
    const twoAhead = totpCodeOf(secret, new Date(t.clock.now().getTime() + 2 * STEP));
    expect((await signIn(s, { totp: twoAhead })).status).toBe(401);
    expect((await signIn(s, { totp: before })).status).toBe(200);
  });

  it('takes each recovery code once', async () => {
    const { s, recoveryCodes } = await enrolled();
    const first = await signIn(s, { recoveryCode: recoveryCodes[0]!.toUpperCase() });
    expect(first.status).toBe(200);
    const again = await signIn(s, { recoveryCode: recoveryCodes[0] });
    expect(again.status).toBe(401);
    expect(again.body.code).toBe('invalid_credentials');
    expect((await signIn(s, { recoveryCode: recoveryCodes[1] })).status).toBe(200);
  });

  it('makes new recovery codes (the old ones void) and turns TOTP off, each with a code', async () => {
    t.clock.freeze();
    const { s, secret, recoveryCodes } = await enrolled();
    t.clock.advance(STEP);
    const renewed = await s.call('POST', '/api/v1/session/recovery-codes', { code: code(secret) });
    expect(renewed.status).toBe(200);
    expect(renewed.body.recoveryCodes).toHaveLength(10);
    expect((await signIn(s, { recoveryCode: recoveryCodes[0] })).status).toBe(401);
    const wrong = await s.call('DELETE', '/api/v1/session/totp', { code: recoveryCodes[1] });
    expect(wrong.status).toBe(400);
    // A recovery code turns it off (the authenticator is lost).
    const off = await s.call('DELETE', '/api/v1/session/totp', { code: renewed.body.recoveryCodes[0] });
    expect(off.status).toBe(204);
    expect((await signIn(s)).status).toBe(200);
    expect((await s.call('DELETE', '/api/v1/session/totp', { code: '123456' })).status).toBe(409);
  });

  it('asks a password reset for the code too, and keeps the link until it comes', async () => {
    t.clock.freeze();
    const { s, secret } = await enrolled();
    const link = await t.call(adminA(), 'POST', `/api/v1/people/${s.personId}/invitation`);
    // An invitation is for people without a password; a reset is the way here.
    expect(link.status).toBe(409);
    const reset = await withTenant(t.db.pool, t.a.tenant.id, (tx) =>
      resetByEmail(tx, { email: s.email, baseUrl: 'https://desk.example', now: t.clock.now() }),
    );
    const token = new URL(reset.link).searchParams.get('token');
    const body = { token, password: 'a new password for me' };
    const asked = await t.call(undefined, 'POST', '/api/v1/password-reset/complete', body);
    expect(asked.body.code).toBe('second_factor_required');
    t.clock.advance(STEP);
    const done = await t.call(undefined, 'POST', '/api/v1/password-reset/complete', {
      ...body,
      totp: code(secret),
    });
    expect(done.status).toBe(200);
  });
});

describe('a tenant that requires TOTP', () => {
  it('restricts the sessions of agents without it to enrolling, until they do', async () => {
    t.clock.freeze();
    const s = await t.signIn({ tenant: t.b });
    expect((await s.call('GET', '/api/v1/tickets')).status).toBe(200);
    const put = await t.call(adminB(), 'PUT', '/api/v1/auth-settings', {
      requireTotp: true,
      idleTimeoutMinutes: 480,
      absoluteTimeoutHours: 168,
      passwordSignIn: true,
    });
    expect(put.status).toBe(200);
    const refused = await s.call('GET', '/api/v1/tickets');
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('second_factor_enrollment_required');
    expect(
      (await s.call('POST', '/api/v1/tickets', { subject: 'x', requester: { email: 'x@example.com' } })).body
        .code,
    ).toBe('second_factor_enrollment_required');
    const info = await s.call('GET', '/api/v1/session');
    expect(info.body.session.totp).toEqual({ enabled: false, required: true });
    // A fresh sign-in is restricted the same way.
    const fresh = await signIn(s);
    expect(fresh.status).toBe(200);
    expect(fresh.body.session.totp).toEqual({ enabled: false, required: true });
    const started = await s.call('POST', '/api/v1/session/totp');
    expect(started.status).toBe(200);
    expect(
      (await s.call('POST', '/api/v1/session/totp/confirm', { code: code(started.body.secret) })).status,
    ).toBe(200);
    expect((await s.call('GET', '/api/v1/tickets')).status).toBe(200);
    // API tokens are not restricted; tenant a is not affected.
    expect((await t.call(adminB(), 'GET', '/api/v1/tickets')).status).toBe(200);
    const inA = await t.signIn();
    expect((await inA.call('GET', '/api/v1/tickets')).status).toBe(200);
    expect((await t.call(adminA(), 'GET', '/api/v1/auth-settings')).body.requireTotp).toBe(false);
  });
});

describe('auth settings', () => {
  it('have defaults, are for admins, and check their ranges', async () => {
    const got = await t.call(adminA(), 'GET', '/api/v1/auth-settings');
    expect(got.body).toEqual({
      requireTotp: false,
      idleTimeoutMinutes: 480,
      absoluteTimeoutHours: 168,
      passwordSignIn: true,
    });
    const agent = await t.signIn({ role: 'agent' });
    expect((await agent.call('GET', '/api/v1/auth-settings')).status).toBe(403);
    const bad = await t.call(adminA(), 'PUT', '/api/v1/auth-settings', {
      ...got.body,
      idleTimeoutMinutes: 4,
    });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].path).toBe('/idleTimeoutMinutes');
    const partial = await t.call(adminA(), 'PUT', '/api/v1/auth-settings', { requireTotp: true });
    expect(partial.status).toBe(400);
  });

  it('apply shorter timeouts to running sessions', async () => {
    t.clock.freeze();
    const s = await t.signIn();
    const base = (await t.call(adminA(), 'GET', '/api/v1/auth-settings')).body;
    await t.call(adminA(), 'PUT', '/api/v1/auth-settings', { ...base, idleTimeoutMinutes: 10 });
    try {
      t.clock.advance(9 * 60_000);
      expect((await s.call('GET', '/api/v1/session')).status).toBe(200);
      t.clock.advance(10 * 60_000);
      expect((await s.call('GET', '/api/v1/session')).body.code).toBe('session_expired');
    } finally {
      await t.call(adminA(), 'PUT', '/api/v1/auth-settings', base);
    }
  });

  it('turn password sign-in off (single sign-on only)', async () => {
    const s = await t.signIn();
    const base = (await t.call(adminA(), 'GET', '/api/v1/auth-settings')).body;
    await t.call(adminA(), 'PUT', '/api/v1/auth-settings', { ...base, passwordSignIn: false });
    try {
      const res = await signIn(s);
      expect(res.status).toBe(401);
      expect(res.body.code).toBe('invalid_credentials');
    } finally {
      await t.call(adminA(), 'PUT', '/api/v1/auth-settings', base);
    }
    expect((await signIn(s)).status).toBe(200);
  });
});
