// Console sign-in and sessions against the real database: the cookie, one answer for every wrong
// sign-in, CSRF, idle and absolute timeouts on the test clock, suspension and sign-out, tenant
// isolation, roles, the audit trail, and an address that is an agent's in two tenants.
import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, type TestApp, type TestSession, useTestApp } from '../../../test/app.ts';
import { SESSION_COOKIE } from '../../platform/http/auth.ts';
import { payloadHash } from '../audit/audit.ts';
import { auditRecordingsSettled, REDACTED } from '../audit/request-audit.ts';
import { setAgentPassword } from './accounts.ts';

let t: TestApp;
const adminA = () => t.a.adminToken.token;
const adminB = () => t.b.adminToken.token;
const PASSWORD = 'correct horse battery staple';

beforeAll(async () => {
  t = await useTestApp();
});

/** The Set-Cookie header of a response, as one string. */
const setCookie = (res: { headers: Record<string, unknown> }) =>
  String([res.headers['set-cookie']].flat()[0] ?? '');

const signInBody = (email: string, password = PASSWORD, extra: Record<string, unknown> = {}) => ({
  email,
  password,
  ...extra,
});

/** An agent of tenant a with PASSWORD. */
async function agentWithPassword(overrides: Record<string, unknown> = {}, token = adminA()) {
  const person = await makePerson(t, token, { kind: 'agent', ...overrides });
  const tenantId = token === adminA() ? t.a.tenant.id : t.b.tenant.id;
  await setAgentPassword(t.db.pool, {
    tenantId,
    personId: person.id,
    password: PASSWORD,
    now: t.clock.now(),
  });
  return person;
}

describe('signing in', () => {
  it('answers the session and sets an HttpOnly, SameSite=Lax cookie (Secure only behind TLS)', async () => {
    const person = await agentWithPassword({ timeZone: 'Europe/Berlin' });
    const res = await t.call(undefined, 'POST', '/api/v1/session', signInBody(person.email));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.session).toMatchObject({
      method: 'password',
      person: {
        id: person.id,
        displayName: person.displayName,
        email: person.email,
        role: 'agent',
        timeZone: 'Europe/Berlin',
      },
      tenant: { id: t.a.tenant.id, name: 'Tenant A' },
      totp: { enabled: false, required: false },
    });
    expect(res.body.session.csrfToken).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    const cookie = setCookie(res);
    expect(cookie).toMatch(new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{43};`));
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Lax');
    expect(cookie).toContain('Path=/');
    expect(cookie).toContain(`Max-Age=${7 * 24 * 3600}`);
    expect(cookie).not.toContain('Secure');
    // Only the secret's hash is stored.
    const secret = /=([^;]+)/.exec(cookie)![1]!;
    const { rows } = await t.db.admin.query('SELECT secret_hash FROM console_sessions WHERE id = $1', [
      res.body.session.id,
    ]);
    expect(rows[0].secret_hash.toString('hex')).not.toContain(Buffer.from(secret).toString('hex'));

    t.config.publicUrl = 'https://desk.example';
    try {
      const secure = await t.call(undefined, 'POST', '/api/v1/session', signInBody(person.email));
      expect(setCookie(secure)).toContain('Secure');
    } finally {
      t.config.publicUrl = undefined;
    }
  });

  it('gives the same answer for an unknown address, a wrong password, a contact, a suspended, an invited person and one without a password', async () => {
    const agent = await agentWithPassword();
    const contact = await makePerson(t, adminA(), { kind: 'contact' });
    const suspended = await agentWithPassword();
    await t.call(adminA(), 'PATCH', `/api/v1/people/${suspended.id}`, { status: 'suspended' });
    const invited = await agentWithPassword({ status: 'invited' });
    const noPassword = await makePerson(t, adminA(), { kind: 'agent' });
    const answers = [
      await t.call(undefined, 'POST', '/api/v1/session', signInBody('nobody@nowhere.test')),
      await t.call(undefined, 'POST', '/api/v1/session', signInBody(agent.email, 'not the password at all')),
      await t.call(undefined, 'POST', '/api/v1/session', signInBody(contact.email)),
      await t.call(undefined, 'POST', '/api/v1/session', signInBody(suspended.email)),
      await t.call(undefined, 'POST', '/api/v1/session', signInBody(invited.email)),
      await t.call(undefined, 'POST', '/api/v1/session', signInBody(noPassword.email)),
    ];
    for (const res of answers) {
      expect(res.status).toBe(401);
      expect(res.body).toEqual(answers[0]!.body);
      expect(res.body.code).toBe('invalid_credentials');
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    // The address matches whatever its case.
    const ok = await t.call(undefined, 'POST', '/api/v1/session', signInBody(agent.email.toUpperCase()));
    expect(ok.status).toBe(200);
  });

  it('refuses a password that is too long, and fields it does not know', async () => {
    const res = await t.call(undefined, 'POST', '/api/v1/session', signInBody('a@b.test', 'x'.repeat(257)));
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    const extra = await t.call(undefined, 'POST', '/api/v1/session', {
      ...signInBody('a@b.test'),
      admin: true,
    });
    expect(extra.status).toBe(400);
  });

  it('asks which tenant when the address and password match agents of two, and signs in to the one named', async () => {
    const email = `both-${Date.now()}@example.com`;
    const inA = await agentWithPassword({ email });
    const inB = await agentWithPassword({ email }, adminB());
    const both = await t.call(undefined, 'POST', '/api/v1/session', signInBody(email));
    expect(both.status).toBe(409);
    expect(both.body).toMatchObject({ code: 'tenant_required', tenants: ['Tenant A', 'Tenant B'] });
    const inTenantB = await t.call(
      undefined,
      'POST',
      '/api/v1/session',
      signInBody(email, PASSWORD, { tenant: 'tenant b' }),
    );
    expect(inTenantB.status).toBe(200);
    expect(inTenantB.body.session.person.id).toBe(inB.id);
    // Another password in tenant b: only tenant a's matches, no tenant needed.
    await setAgentPassword(t.db.pool, {
      tenantId: t.b.tenant.id,
      personId: inB.id,
      password: 'another password entirely',
      now: t.clock.now(),
    });
    const onlyA = await t.call(undefined, 'POST', '/api/v1/session', signInBody(email));
    expect(onlyA.status).toBe(200);
    expect(onlyA.body.session.person.id).toBe(inA.id);
    // A tenant of another name: nobody.
    const none = await t.call(
      undefined,
      'POST',
      '/api/v1/session',
      signInBody(email, PASSWORD, { tenant: 'Tenant C' }),
    );
    expect(none.body.code).toBe('invalid_credentials');
  });

  it('takes the role of the person, at every request', async () => {
    const s = await t.signIn({ role: 'viewer' });
    expect(s.session.person.role).toBe('viewer');
    const refused = await s.call('POST', '/api/v1/tickets', {
      subject: 'x',
      requester: { email: 'r@example.com' },
    });
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('forbidden');
    await t.call(adminA(), 'PATCH', `/api/v1/people/${s.personId}`, { role: 'agent' });
    const allowed = await s.call('POST', '/api/v1/tickets', {
      subject: 'x',
      requester: { email: 'r@example.com' },
    });
    expect(allowed.status).toBe(201);
    // The person acting is the session's.
    const me = await s.call('GET', `/api/v1/tickets/${allowed.body.id}/messages`);
    expect(me.status).toBe(200);
  });
});

describe('a session', () => {
  it('is described by GET /session; without one, or with a token, that is 401', async () => {
    const s = await t.signIn();
    const got = await s.call('GET', '/api/v1/session');
    expect(got.status).toBe(200);
    expect(got.body.session).toMatchObject({ id: s.session.id, csrfToken: s.csrfToken });
    const none = await t.call(undefined, 'GET', '/api/v1/session');
    expect(none.status).toBe(401);
    expect(none.body.code).toBe('unauthorized');
    const token = await t.call(adminA(), 'GET', '/api/v1/session');
    expect(token.status).toBe(401);
    const bogus = await t.call(undefined, 'GET', '/api/v1/session', undefined, {
      cookie: `${SESSION_COOKIE}=nope`,
    });
    expect(bogus.status).toBe(401);
    const unknown = await t.call(undefined, 'GET', '/api/v1/session', undefined, {
      cookie: `${SESSION_COOKIE}=${'A'.repeat(43)}`,
    });
    expect(unknown.status).toBe(401);
  });

  it('needs its CSRF token on every write: none or a wrong one is 403 csrf_failed', async () => {
    const s = await t.signIn();
    const body = { subject: 'CSRF', requester: { email: 'csrf@example.com' } };
    const without = await s.call('POST', '/api/v1/tickets', body, { 'x-csrf-token': '' });
    expect(without.status).toBe(403);
    expect(without.body.code).toBe('csrf_failed');
    const noHeader = await t.call(undefined, 'POST', '/api/v1/tickets', body, {
      cookie: `${SESSION_COOKIE}=${s.secret}`,
    });
    expect(noHeader.status).toBe(403);
    expect(noHeader.body.code).toBe('csrf_failed');
    const other = await t.signIn();
    const wrong = await s.call('POST', '/api/v1/tickets', body, { 'x-csrf-token': other.csrfToken });
    expect(wrong.status).toBe(403);
    expect(wrong.body.code).toBe('csrf_failed');
    const deleteWithout = await t.call(undefined, 'DELETE', '/api/v1/session', undefined, {
      cookie: `${SESSION_COOKIE}=${s.secret}`,
    });
    expect(deleteWithout.body.code).toBe('csrf_failed');
    const { rows } = await t.db.admin.query("SELECT count(*)::int AS n FROM tickets WHERE subject = 'CSRF'");
    expect(rows[0].n).toBe(0);
    const right = await s.call('POST', '/api/v1/tickets', body);
    expect(right.status).toBe(201);
    // Reads need none.
    expect((await s.call('GET', `/api/v1/tickets/${right.body.id}`)).status).toBe(200);
  });

  it('takes a bearer token over the cookie', async () => {
    const s = await t.signIn({ role: 'viewer' });
    // No CSRF token needed: the request is the token's, an admin's.
    const res = await t.call(
      adminA(),
      'POST',
      '/api/v1/tickets',
      { subject: 'Token wins', requester: { email: 'tw@example.com' } },
      {
        cookie: `${SESSION_COOKIE}=${s.secret}`,
      },
    );
    expect(res.status).toBe(201);
  });

  it('ends after the idle timeout, and moves it on with use', async () => {
    t.clock.freeze();
    try {
      const s = await t.signIn();
      const eightHours = 8 * 3_600_000;
      expect(Date.parse(s.session.idleExpiresAt) - t.clock.now().getTime()).toBe(eightHours);
      t.clock.advance(eightHours - 60_000);
      expect((await s.call('GET', '/api/v1/session')).status).toBe(200);
      t.clock.advance(eightHours - 60_000);
      const moved = await s.call('GET', '/api/v1/session');
      expect(moved.status).toBe(200);
      expect(Date.parse(moved.body.session.idleExpiresAt)).toBe(t.clock.now().getTime() + eightHours);
      t.clock.advance(eightHours);
      const ended = await s.call('GET', '/api/v1/session');
      expect(ended.status).toBe(401);
      expect(ended.body.code).toBe('session_expired');
    } finally {
      t.clock.unfreeze();
    }
  });

  it('ends after the absolute timeout however busy', async () => {
    t.clock.freeze();
    try {
      const s = await t.signIn();
      const started = t.clock.now().getTime();
      for (let h = 7; h < 7 * 24; h += 7) {
        t.clock.advance(7 * 3_600_000);
        expect((await s.call('GET', '/api/v1/session')).status, `after ${h} h`).toBe(200);
      }
      t.clock.advance(started + 7 * 24 * 3_600_000 - t.clock.now().getTime());
      const ended = await s.call('GET', '/api/v1/session');
      expect(ended.status).toBe(401);
      expect(ended.body.code).toBe('session_expired');
    } finally {
      t.clock.unfreeze();
    }
  });

  it('ends at once when its person is suspended, and stays ended when the suspension is lifted', async () => {
    const s = await t.signIn();
    expect((await s.call('GET', '/api/v1/session')).status).toBe(200);
    const patched = await t.call(adminA(), 'PATCH', `/api/v1/people/${s.personId}`, { status: 'suspended' });
    expect(patched.status).toBe(200);
    const refused = await s.call('GET', '/api/v1/tickets');
    expect(refused.status).toBe(401);
    await t.call(adminA(), 'PATCH', `/api/v1/people/${s.personId}`, { status: 'active' });
    expect((await s.call('GET', '/api/v1/session')).status).toBe(401);
    // Signing in again works.
    const again = await t.call(undefined, 'POST', '/api/v1/session', signInBody(s.email, s.password));
    expect(again.status).toBe(200);
  });

  it('signs out (DELETE /session) and clears the cookie', async () => {
    const s = await t.signIn();
    const out = await s.call('DELETE', '/api/v1/session');
    expect(out.status).toBe(204);
    expect(setCookie(out)).toMatch(new RegExp(`^${SESSION_COOKIE}=;`));
    expect((await s.call('GET', '/api/v1/session')).status).toBe(401);
  });

  it('signs out everywhere (DELETE /sessions), and other people keep theirs', async () => {
    const first = await t.signIn();
    const second = await t.call(
      undefined,
      'POST',
      '/api/v1/session',
      signInBody(first.email, first.password),
    );
    const secondSecret = /=([^;]+)/.exec(setCookie(second))![1]!;
    const someoneElse = await t.signIn();
    const out = await first.call('DELETE', '/api/v1/sessions');
    expect(out.status).toBe(204);
    expect((await first.call('GET', '/api/v1/session')).status).toBe(401);
    const other = await t.call(undefined, 'GET', '/api/v1/session', undefined, {
      cookie: `${SESSION_COOKIE}=${secondSecret}`,
    });
    expect(other.status).toBe(401);
    expect((await someoneElse.call('GET', '/api/v1/session')).status).toBe(200);
  });
});

describe('tenant isolation', () => {
  let s: TestSession;
  let personOfB: string;
  beforeAll(async () => {
    s = await t.signIn({ role: 'admin' });
    personOfB = (await makePerson(t, adminB(), { kind: 'contact' })).id;
  });

  it("keeps a session of tenant a away from tenant b's rows (404, as for a missing one)", async () => {
    const read = await s.call('GET', `/api/v1/people/${personOfB}`);
    expect(read.status).toBe(404);
    const change = await s.call('PATCH', `/api/v1/people/${personOfB}`, { displayName: 'Mallory' });
    expect(change.status).toBe(404);
    const invite = await s.call('POST', `/api/v1/people/${personOfB}/invitation`);
    expect(invite.status).toBe(404);
    const { rows } = await t.db.admin.query('SELECT display_name FROM people WHERE id = $1', [personOfB]);
    expect(rows[0].display_name).not.toBe('Mallory');
    const list = await s.call('GET', '/api/v1/people?limit=200');
    expect(list.body.items.map((p: any) => p.id)).not.toContain(personOfB);
  });

  it("cannot end another tenant's sessions", async () => {
    const inB = await t.signIn({ tenant: t.b });
    await s.call('DELETE', '/api/v1/sessions');
    expect((await inB.call('GET', '/api/v1/session')).status).toBe(200);
  });
});

describe('the audit trail', () => {
  it("records a session's writes as its person's, and never the password", async () => {
    const s = await t.signIn({ role: 'admin' });
    const created = await s.call('POST', '/api/v1/tickets', {
      subject: 'Audited',
      requester: { email: 'au@example.com' },
    });
    expect(created.status).toBe(201);
    await auditRecordingsSettled();
    const { rows } = await t.db.admin.query(
      // By action: the sign-in's event is written after its answer, and may be written after the
      // ticket's (both are recorded asynchronously, each at its writing).
      `SELECT action, actor_id, actor_via, payload_hash FROM audit_events
        WHERE tenant_id = $1 AND actor_id = $2 ORDER BY action`,
      [t.a.tenant.id, s.personId],
    );
    expect(rows.map((r) => [r.action, r.actor_via])).toEqual([
      ['session.create', 'session'],
      ['tickets.create', 'session'],
    ]);
    const body = { email: s.email, password: s.password, tenant: 'Tenant A' };
    expect(rows[0].payload_hash).toBe(payloadHash({ ...body, password: REDACTED }));
    expect(rows[0].payload_hash).not.toBe(payloadHash(body));
  });

  it('records a refused CSRF write as unauthorised', async () => {
    const s = await t.signIn();
    await s.call(
      'POST',
      '/api/v1/tickets',
      { subject: 'x', requester: { email: 'x@example.com' } },
      { 'x-csrf-token': 'forged' },
    );
    await auditRecordingsSettled();
    const { rows } = await t.db.admin.query(
      `SELECT outcome, error_code FROM audit_events WHERE tenant_id = $1 AND actor_id = $2 AND action = 'tickets.create'`,
      [t.a.tenant.id, s.personId],
    );
    expect(rows).toEqual([{ outcome: 'unauthorised', error_code: 'csrf_failed' }]);
  });
});
