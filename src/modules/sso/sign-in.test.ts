// Signing in through single sign-on against the OpenID Connect simulator: the start and the
// callback go through the app (inject), the browser's trip to the provider through fetch. The
// session is started by a stand-in for the sessions module's startSession that records the call.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type OidcSimulator, type OidcUser, startOidcSimulator } from '../../../simulators/oidc.ts';
import { makePerson, type TestApp, useTestApp } from '../../../test/app.ts';
import { type SsoSessionInput, ssoSignInRoutes, STATE_COOKIE, type StartSession } from './auth-routes.ts';
import { AppError } from '../../platform/errors.ts';
import { DEFAULT_RETURN_TO, safeReturnTo } from './sign-in.ts';

const PUBLIC_URL = 'http://relaydesk.test';
const FAILED = '/console/login?error=sso_failed';

let t: TestApp;
let sim: OidcSimulator;
const sessions: SsoSessionInput[] = [];
/** Makes the stand-in refuse, as the sessions module would for a person suspended a moment ago. */
let refuseSessions = false;
const startSession: StartSession = async (_pool, _clock, reply, input) => {
  if (refuseSessions) throw new AppError('unauthorized', 'suspended a moment ago');
  sessions.push(input);
  reply.header('set-cookie', `rd_session=session-${sessions.length}; Path=/; HttpOnly; SameSite=Lax`);
  return { id: `session-${sessions.length}` };
};

const cookiesOf = (headers: Record<string, unknown>): string[] => {
  const set = headers['set-cookie'];
  return set === undefined ? [] : Array.isArray(set) ? set.map(String) : [String(set)];
};

/** Configures a tenant's provider of `kind` on the simulator. */
async function setUp(
  token: string,
  kind: 'entra' | 'google' | 'oidc' = 'oidc',
  extra: Record<string, unknown> = {},
  on: OidcSimulator = sim,
) {
  const res = await t.call(token, 'PUT', `/api/v1/integrations/oidc/${kind}`, {
    issuer: on.issuer,
    clientId: on.client.clientId,
    clientSecret: on.client.clientSecret,
    ...extra,
  });
  if (res.status !== 200) throw new Error(`setUp: ${res.status} ${JSON.stringify(res.body)}`);
}

interface Started {
  status: number;
  location: string;
  /** The state cookie's value this browser got. */
  stateCookie: string | undefined;
}

async function start(query: string, kind = 'oidc'): Promise<Started> {
  const res = await t.app.inject({ method: 'GET', url: `/auth/oidc/${kind}/start${query}` });
  const cookie = cookiesOf(res.headers).find((c) => c.startsWith(`${STATE_COOKIE}=`));
  return {
    status: res.statusCode,
    location: String(res.headers.location ?? ''),
    stateCookie: cookie?.split(';')[0]!.slice(STATE_COOKIE.length + 1),
  };
}

/** The browser at the provider: returns the query string it is sent back to the callback with. */
async function atProvider(started: Started): Promise<string> {
  expect(started.location.startsWith(sim.authorizationEndpoint) || started.location.startsWith('http')).toBe(
    true,
  );
  const res = await fetch(started.location, { redirect: 'manual' });
  expect(res.status).toBe(302);
  const back = new URL(res.headers.get('location')!);
  expect(`${back.origin}${back.pathname}`).toBe(`${PUBLIC_URL}/auth/oidc/callback`);
  return back.search.slice(1);
}

async function callback(query: string, stateCookie: string | undefined) {
  const res = await t.app.inject({
    method: 'GET',
    url: `/auth/oidc/callback?${query}`,
    headers: stateCookie === undefined ? {} : { cookie: `other=1; ${STATE_COOKIE}=${stateCookie}` },
  });
  return {
    status: res.statusCode,
    location: String(res.headers.location ?? ''),
    cookies: cookiesOf(res.headers),
  };
}

/** The whole sign-in as the browser goes through it, as `user`. */
async function signIn(user: OidcUser, query = '?tenant=Tenant%20A', kind = 'oidc') {
  sim.nextUser = user;
  const started = await start(query, kind);
  expect(started.status).toBe(302);
  return callback(await atProvider(started), started.stateCookie);
}

const identitiesOf = async (personId: string) =>
  (await t.call(t.a.adminToken.token, 'GET', `/api/v1/people/${personId}`)).body.identities;

let n = 0;
const agent = async (extra: Record<string, unknown> = {}, token = t.a.adminToken.token) =>
  makePerson(t, token, { kind: 'agent', email: `agent${++n}@contoso.test`, ...extra });

beforeAll(async () => {
  t = await useTestApp({ publicUrl: PUBLIC_URL, hookRoutes: [ssoSignInRoutes({ startSession })] });
  sim = await startOidcSimulator();
  await setUp(t.a.adminToken.token);
});
afterAll(() => sim.close());
beforeEach(() => {
  sim.clearFaults();
});

describe('signing in', () => {
  it('goes to the provider with PKCE, state and nonce, and back to the console with a session', async () => {
    const person = await agent();
    const started = await start(
      `?tenant=Tenant%20A&returnTo=${encodeURIComponent('/console/tickets?view=mine')}`,
    );
    expect(started.status).toBe(302);
    const url = new URL(started.location);
    expect(`${url.origin}${url.pathname}`).toBe(sim.authorizationEndpoint);
    const q = url.searchParams;
    expect(q.get('client_id')).toBe(sim.client.clientId);
    expect(q.get('redirect_uri')).toBe(`${PUBLIC_URL}/auth/oidc/callback`);
    expect(q.get('response_type')).toBe('code');
    expect(q.get('scope')).toBe('openid email profile');
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('nonce')).toMatch(/.{20,}/);
    expect(q.get('state')).toBe(started.stateCookie);
    const cookie = (await t.app.inject({ method: 'GET', url: '/auth/oidc/oidc/start?tenant=Tenant%20A' }))
      .headers['set-cookie'];
    expect(String(cookie)).toMatch(
      /^rd_oidc_state=[^;]+; Path=\/auth\/oidc; Max-Age=600; HttpOnly; SameSite=Lax$/,
    );
    // The state is stored only as a hash, the verifier and nonce sealed.
    const { rows } = await t.db.admin.query('SELECT state_hash, code_verifier, nonce FROM sso_login_states');
    for (const r of rows) {
      expect(Buffer.from(r.state_hash).toString('latin1')).not.toContain(started.stateCookie);
      expect(Buffer.from(r.nonce).toString('latin1')).not.toContain(q.get('nonce'));
    }

    sim.nextUser = sim.user({ email: person.email, email_verified: true, name: 'Lee' });
    const before = sessions.length;
    const done = await callback(await atProvider(started), started.stateCookie);
    expect(done.status).toBe(302);
    expect(done.location).toBe('/console/tickets?view=mine');
    expect(sessions.length).toBe(before + 1);
    expect(sessions.at(-1)).toEqual({ tenantId: t.a.tenant.id, personId: person.id, method: 'oidc' });
    expect(done.cookies).toContain(`rd_session=session-${sessions.length}; Path=/; HttpOnly; SameSite=Lax`);
    expect(done.cookies.some((c) => c.startsWith(`${STATE_COOKIE}=;`) && c.includes('Max-Age=0'))).toBe(true);
    // The verified email linked the identity: the next sign-in goes by it, whatever the address.
    expect(await identitiesOf(person.id)).toContainEqual({ kind: 'oidc', externalId: sim.nextUser.sub });
    const again = await signIn({ ...sim.nextUser, email: 'changed@elsewhere.test', email_verified: false });
    expect(again.location).toBe(DEFAULT_RETURN_TO);
    expect(sessions.at(-1)!.personId).toBe(person.id);
    const audit = await t.db.admin.query(
      `SELECT actor_id, actor_via, outcome FROM audit_events WHERE tenant_id = $1 AND action = 'sso.sign_in'
        ORDER BY at DESC LIMIT 1`,
      [t.a.tenant.id],
    );
    expect(audit.rows[0]).toEqual({ actor_id: person.id, actor_via: 'oidc', outcome: 'success' });
    // The secret went to the token endpoint by Basic authentication (the simulator offers both).
    expect(sim.tokenRequests().at(-1)).toMatchObject({ authMethod: 'client_secret_basic', status: 200 });
  });

  it('makes an invited agent active', async () => {
    const person = await agent({ status: 'invited' });
    const done = await signIn(sim.user({ email: person.email }));
    expect(done.location).toBe(DEFAULT_RETURN_TO);
    expect((await t.call(t.a.adminToken.token, 'GET', `/api/v1/people/${person.id}`)).body.status).toBe(
      'active',
    );
  });

  it('finds an Entra user by object id, the id Teams knows them by, without an email', async () => {
    const entra = await startOidcSimulator({ issuerPath: '/9b3d4c8e-0000-4000-8000-00000000e1d1/v2.0' });
    try {
      await setUp(t.a.adminToken.token, 'entra', {}, entra);
      const person = await agent();
      const oid = '7f3a0000-0000-4000-8000-000000000042';
      expect(
        (
          await t.call(t.a.adminToken.token, 'POST', `/api/v1/people/${person.id}/identities`, {
            kind: 'entra',
            externalId: oid,
          })
        ).status,
      ).toBe(201);
      const prev = sim;
      sim = entra;
      try {
        const done = await signIn(
          entra.user({
            oid,
            tid: '9b3d4c8e-0000-4000-8000-00000000e1d1',
            email: undefined,
            email_verified: undefined,
          }),
          '?tenant=Tenant%20A',
          'entra',
        );
        expect(done.location).toBe(DEFAULT_RETURN_TO);
        expect(sessions.at(-1)!.personId).toBe(person.id);
        // Entra asks the person to pick an account.
        expect(entra.authorizeRequests().at(-1)!['prompt']).toBe('select_account');
        // Entra sends no email_verified: its xms_edov claim vouches for the address instead.
        const byEmail = await agent();
        const before = sessions.length;
        const unverified = entra.user({ email: byEmail.email, email_verified: undefined });
        expect((await signIn(unverified, '?tenant=Tenant%20A', 'entra')).location).toBe(FAILED);
        expect(sessions.length).toBe(before);
        const done2 = await signIn({ ...unverified, xms_edov: true }, '?tenant=Tenant%20A', 'entra');
        expect(done2.location).toBe(DEFAULT_RETURN_TO);
        expect(sessions.at(-1)!.personId).toBe(byEmail.id);
        expect((await identitiesOf(byEmail.id))[0]).toMatchObject({ kind: 'entra' });
      } finally {
        sim = prev;
      }
    } finally {
      await entra.close();
      await t.call(t.a.adminToken.token, 'DELETE', '/api/v1/integrations/oidc/entra');
    }
  });

  it('takes the install’s only tenant when none is named, and goes only to /console paths', async () => {
    for (const bad of [
      '//evil.example/console',
      'https://evil.example/console/',
      '/api/v1/tokens',
      '/console/../api/v1/tokens',
      '/console/%2e%2e/api',
      '/\\evil.example',
      '/consoles',
      '/console/\nx',
      'console/x',
    ])
      expect(safeReturnTo(bad), bad).toBe(DEFAULT_RETURN_TO);
    expect(safeReturnTo('/console')).toBe('/console');
    expect(safeReturnTo('/console/tickets/1?x=1#m')).toBe('/console/tickets/1?x=1#m');
    const person = await agent();
    const done = await signIn(
      sim.user({ email: person.email }),
      `?tenant=${t.a.tenant.id}&returnTo=${encodeURIComponent('https://evil.example/console/')}`,
    );
    expect(done.location).toBe(DEFAULT_RETURN_TO);
    // Two tenants here: without a name there is none to pick.
    expect((await start('')).location).toBe(FAILED);
  });
});

describe('refusals', () => {
  const refused = async (done: { status: number; location: string; cookies: string[] }, before: number) => {
    expect(done.status).toBe(302);
    expect(done.location).toBe(FAILED);
    expect(sessions.length).toBe(before);
    expect(done.cookies.some((c) => c.startsWith('rd_session='))).toBe(false);
  };

  it('a state used once already, an expired one, and one from another browser', async () => {
    const person = await agent();
    sim.nextUser = sim.user({ email: person.email });
    let started = await start('?tenant=Tenant%20A');
    let query = await atProvider(started);
    // Without this browser's cookie (someone else's callback URL): refused, and the state stays good.
    let before = sessions.length;
    await refused(await callback(query, undefined), before);
    await refused(await callback(query, 'another-state'), before);
    expect((await callback(query, started.stateCookie)).location).toBe(DEFAULT_RETURN_TO);
    before = sessions.length;
    await refused(await callback(query, started.stateCookie), before);

    started = await start('?tenant=Tenant%20A');
    query = await atProvider(started);
    t.clock.advance(10 * 60_000 + 1000);
    try {
      await refused(await callback(query, started.stateCookie), before);
    } finally {
      t.clock.unfreeze();
    }
    await refused(await callback('state=never-given&code=x', 'never-given'), before);
    await refused(await callback('code=x', undefined), before);
  });

  for (const forgery of [
    'wrong-nonce',
    'wrong-issuer',
    'wrong-audience',
    'expired',
    'bad-signature',
    'unknown-key',
  ] as const) {
    it(`an id_token with ${forgery}`, async () => {
      const person = await agent();
      sim.forgeNextIdToken(forgery);
      const before = sessions.length;
      await refused(await signIn(sim.user({ email: person.email })), before);
      expect(await identitiesOf(person.id)).toEqual([]);
    });
  }

  it('a code redeemed with another sign-in’s verifier (PKCE), also across tenants', async () => {
    await setUp(t.b.adminToken.token);
    const person = await agent();
    sim.nextUser = sim.user({ email: person.email });
    const first = await start('?tenant=Tenant%20A');
    const second = await start('?tenant=Tenant%20B');
    const firstQuery = new URLSearchParams(await atProvider(first));
    const secondQuery = new URLSearchParams(await atProvider(second));
    // Tenant B's code with tenant A's state (and A's cookie): A's verifier does not match B's challenge.
    const swapped = new URLSearchParams(firstQuery);
    swapped.set('code', secondQuery.get('code')!);
    const before = sessions.length;
    await refused(await callback(swapped.toString(), first.stateCookie), before);
    expect(sim.tokenRequests().at(-1)).toMatchObject({ status: 400, error: 'invalid_grant' });
    // ... and tenant A's code with tenant B's state: the same.
    swapped.set('code', firstQuery.get('code')!);
    swapped.set('state', secondQuery.get('state')!);
    await refused(await callback(swapped.toString(), second.stateCookie), before);
    await t.call(t.b.adminToken.token, 'DELETE', '/api/v1/integrations/oidc/oidc');
  });

  it('an agent of another tenant: the sign-in is for its own tenant only', async () => {
    await setUp(t.b.adminToken.token);
    const inB = await agent({}, t.b.adminToken.token);
    const user = sim.user({ email: inB.email });
    const before = sessions.length;
    await refused(await signIn(user), before);
    // Tenant A's triage has it; tenant B's person got no identity from A's provider.
    const b = await t.call(t.b.adminToken.token, 'GET', `/api/v1/people/${inB.id}`);
    expect(b.body.identities).toEqual([]);
    const triageB = await t.call(t.b.adminToken.token, 'GET', '/api/v1/unmapped-identities?kind=oidc');
    expect(triageB.body.items).toEqual([]);
    // Through tenant B's own provider it works.
    const done = await signIn(user, '?tenant=Tenant%20B');
    expect(done.location).toBe(DEFAULT_RETURN_TO);
    expect(sessions.at(-1)).toEqual({ tenantId: t.b.tenant.id, personId: inB.id, method: 'oidc' });
    await t.call(t.b.adminToken.token, 'DELETE', '/api/v1/integrations/oidc/oidc');
  });

  it('a disabled provider, before or after the start', async () => {
    const person = await agent();
    const admin = t.a.adminToken.token;
    await setUp(admin, 'oidc', { enabled: false });
    try {
      expect((await start('?tenant=Tenant%20A')).location).toBe(FAILED);
      await setUp(admin);
      sim.nextUser = sim.user({ email: person.email });
      const started = await start('?tenant=Tenant%20A');
      const query = await atProvider(started);
      await setUp(admin, 'oidc', { enabled: false });
      const before = sessions.length;
      await refused(await callback(query, started.stateCookie), before);
    } finally {
      await setUp(admin);
    }
    // Nor a provider the tenant does not have, nor a tenant that is not there.
    expect((await start('?tenant=Tenant%20A', 'google')).location).toBe(FAILED);
    expect((await start('?tenant=Nobody')).location).toBe(FAILED);
  });

  it('an email outside the allowed domains, or not verified', async () => {
    const admin = t.a.adminToken.token;
    await setUp(admin, 'oidc', { allowedDomains: ['fabrikam.test'] });
    try {
      const outside = await agent();
      const inside = await agent({ email: `lee${++n}@fabrikam.test` });
      const before = sessions.length;
      await refused(await signIn(sim.user({ email: outside.email })), before);
      await refused(await signIn(sim.user({ email: inside.email, email_verified: false })), before);
      expect((await signIn(sim.user({ email: inside.email }))).location).toBe(DEFAULT_RETURN_TO);
    } finally {
      await setUp(admin);
    }
  });

  it('an unverified email is no link to an agent', async () => {
    const person = await agent();
    const before = sessions.length;
    await refused(await signIn(sim.user({ email: person.email, email_verified: false })), before);
    expect(await identitiesOf(person.id)).toEqual([]);
  });

  it('a contact, and a suspended agent', async () => {
    const contact = await makePerson(t, t.a.adminToken.token, {
      kind: 'contact',
      email: `c${++n}@contoso.test`,
    });
    const before = sessions.length;
    await refused(await signIn(sim.user({ email: contact.email })), before);
    expect(await identitiesOf(contact.id)).toEqual([]);

    const suspended = await agent();
    const user = sim.user({ email: suspended.email });
    expect((await signIn(user)).location).toBe(DEFAULT_RETURN_TO);
    const patched = await t.call(t.a.adminToken.token, 'PATCH', `/api/v1/people/${suspended.id}`, {
      status: 'suspended',
    });
    expect(patched.status).toBe(200);
    const after = sessions.length;
    await refused(await signIn(user), after);
  });

  it('a person nobody knows, who appears in the triage', async () => {
    const user = sim.user({ email: `stranger${++n}@contoso.test`, name: 'Stranger Danger' });
    const before = sessions.length;
    await refused(await signIn(user), before);
    const triage = await t.call(t.a.adminToken.token, 'GET', '/api/v1/unmapped-identities?kind=oidc');
    expect(triage.body.items).toContainEqual(
      expect.objectContaining({
        kind: 'oidc',
        externalId: user.sub,
        sampleEventType: 'sso_sign_in',
        displayName: 'Stranger Danger',
        email: user.email,
      }),
    );
    const audit = await t.db.admin.query(
      `SELECT actor_id, outcome, error_code FROM audit_events WHERE tenant_id = $1 AND action = 'sso.sign_in'
        ORDER BY at DESC LIMIT 1`,
      [t.a.tenant.id],
    );
    expect(audit.rows[0]).toEqual({ actor_id: null, outcome: 'unauthorised', error_code: 'sso_failed' });
  });

  it('the provider saying no, or not answering', async () => {
    const person = await agent();
    const before = sessions.length;
    sim.denyNext();
    await refused(await signIn(sim.user({ email: person.email })), before);
    sim.fault({ pathPrefix: '/token', status: 503 });
    await refused(await signIn(sim.user({ email: person.email })), before);
    expect(await identitiesOf(person.id)).toEqual([]);
  });

  it('when sessions refuse: nothing is signed in', async () => {
    const person = await agent();
    const before = sessions.length;
    refuseSessions = true;
    try {
      await refused(await signIn(sim.user({ email: person.email })), before);
    } finally {
      refuseSessions = false;
    }
  });
});
