// The OpenID Connect simulator's own behaviour (no database): discovery, the authorization code flow
// with PKCE through plain fetch and through openid-client, both secret methods at the token
// endpoint, the documented errors, single-use codes bound to client, redirect URI and verifier,
// userinfo, Entra's tid/oid, forged id_tokens, the control API and injected faults.
import { createHash, randomBytes } from 'node:crypto';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as client from 'openid-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ID_TOKEN_FORGERIES,
  type OidcClient,
  type OidcSimulator,
  startOidcSimulator,
} from '../simulators/oidc.ts';

let sim: OidcSimulator;
const REDIRECT = 'http://relaydesk.test/auth/oidc/callback';

const pkce = () => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};

/** Runs the authorization request as a browser would (without following the redirect). */
async function authorize(params: Record<string, string | undefined>): Promise<Response> {
  const url = new URL(sim.authorizationEndpoint);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  return fetch(url, { redirect: 'manual' });
}

async function codeFor(
  c: OidcClient = sim.client,
  extra: Record<string, string | undefined> = {},
): Promise<{ code: string; verifier: string; location: URL }> {
  const { verifier, challenge } = pkce();
  const res = await authorize({
    response_type: 'code',
    client_id: c.clientId,
    redirect_uri: REDIRECT,
    scope: 'openid email profile',
    state: 'st-1',
    nonce: 'n-1',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...extra,
  });
  expect(res.status).toBe(302);
  const location = new URL(res.headers.get('location')!);
  return { code: location.searchParams.get('code')!, verifier, location };
}

const basicAuth = (c: OidcClient) =>
  `Basic ${Buffer.from(`${encodeURIComponent(c.clientId)}:${encodeURIComponent(c.clientSecret)}`).toString('base64')}`;

async function redeem(
  fields: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(sim.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields),
  });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

const redeemBasic = (code: string, verifier: string, c: OidcClient = sim.client, extra = {}) =>
  redeem(
    { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, ...extra },
    { authorization: basicAuth(c) },
  );

const jwks = async () => createLocalJWKSet((await (await fetch(sim.jwksUri)).json()) as never);

beforeAll(async () => {
  sim = await startOidcSimulator();
});
afterAll(() => sim.close());
beforeEach(() => {
  sim.clearFaults();
  sim.nextUser = sim.user();
});

describe('discovery and keys', () => {
  it('publishes its metadata at the well-known address, naming its endpoints and what it supports', async () => {
    const res = await fetch(sim.discoveryUrl);
    expect(res.status).toBe(200);
    const meta = (await res.json()) as Record<string, unknown>;
    expect(meta).toMatchObject({
      issuer: sim.issuer,
      authorization_endpoint: sim.authorizationEndpoint,
      token_endpoint: sim.tokenEndpoint,
      jwks_uri: sim.jwksUri,
      userinfo_endpoint: sim.userinfoEndpoint,
      response_types_supported: ['code'],
      id_token_signing_alg_values_supported: ['RS256'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      authorization_response_iss_parameter_supported: true,
    });
    const keys = (await (await fetch(sim.jwksUri)).json()) as { keys: Record<string, unknown>[] };
    expect(keys.keys.length).toBeGreaterThan(0);
    for (const k of keys.keys)
      expect(k).toMatchObject({ kty: 'RSA', use: 'sig', alg: 'RS256', kid: expect.any(String) });
    expect(keys.keys.some((k) => 'd' in k)).toBe(false);
  });

  it('serves an issuer with a path, Entra style', async () => {
    const other = await startOidcSimulator({ issuerPath: '/tenant-1/v2.0' });
    try {
      expect(other.issuer).toBe(`${other.url}/tenant-1/v2.0`);
      const meta = (await (await fetch(other.discoveryUrl)).json()) as Record<string, unknown>;
      expect(meta['issuer']).toBe(other.issuer);
      expect((await fetch(`${other.url}/.well-known/openid-configuration`)).status).toBe(404);
    } finally {
      await other.close();
    }
  });
});

describe('the authorization code flow', () => {
  it('signs in the chosen user and issues a signed id_token with the OIDC claims (client_secret_basic)', async () => {
    sim.nextUser = sim.user({ email: 'lee@contoso.test', name: 'Lee Gu', email_verified: true });
    const { code, verifier, location } = await codeFor();
    expect(`${location.origin}${location.pathname}`).toBe(REDIRECT);
    expect(location.searchParams.get('state')).toBe('st-1');
    expect(location.searchParams.get('iss')).toBe(sim.issuer);
    const res = await redeemBasic(code, verifier);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'openid email profile' });
    const { payload, protectedHeader } = await jwtVerify(res.body.id_token, await jwks(), {
      issuer: sim.issuer,
      audience: sim.client.clientId,
      algorithms: ['RS256'],
    });
    expect(protectedHeader.kid).toEqual(expect.any(String));
    expect(payload).toMatchObject({
      sub: sim.nextUser.sub,
      nonce: 'n-1',
      email: 'lee@contoso.test',
      email_verified: true,
      name: 'Lee Gu',
    });
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(payload['tid']).toBeUndefined();
    const info = await fetch(sim.userinfoEndpoint, {
      headers: { authorization: `Bearer ${res.body.access_token}` },
    });
    expect(info.status).toBe(200);
    expect(await info.json()).toEqual({
      sub: sim.nextUser.sub,
      email: 'lee@contoso.test',
      email_verified: true,
      name: 'Lee Gu',
    });
    expect(sim.tokenRequests().at(-1)).toMatchObject({ authMethod: 'client_secret_basic', status: 200 });
  });

  it('takes client_secret_post too, and gives only what the scopes ask for', async () => {
    const { code, verifier } = await codeFor(sim.client, { scope: 'openid' });
    const res = await redeem({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: sim.client.clientId,
      client_secret: sim.client.clientSecret,
    });
    expect(res.status).toBe(200);
    const { payload } = await jwtVerify(res.body.id_token, await jwks(), { issuer: sim.issuer });
    expect(payload['email']).toBeUndefined();
    expect(payload['name']).toBeUndefined();
    expect(sim.tokenRequests().at(-1)).toMatchObject({ authMethod: 'client_secret_post', status: 200 });
  });

  it('works through openid-client (discovery, buildAuthorizationUrl, authorizationCodeGrant) with either method', async () => {
    for (const auth of [client.ClientSecretBasic, client.ClientSecretPost]) {
      const config = await client.discovery(
        new URL(sim.issuer),
        sim.client.clientId,
        undefined,
        auth(sim.client.clientSecret),
        { execute: [client.allowInsecureRequests] },
      );
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid email',
        state,
        nonce,
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      const back = await fetch(url, { redirect: 'manual' });
      const tokens = await client.authorizationCodeGrant(config, new URL(back.headers.get('location')!), {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
      });
      expect(tokens.claims()?.sub).toBe(sim.nextUser.sub);
    }
  });

  it('adds Entra tid and oid when the user has them, or the simulator is an Entra tenant', async () => {
    sim.nextUser = sim.user({ oid: '00000000-0000-0000-0000-0000000000aa', tid: 'tenant-x' });
    let { code, verifier } = await codeFor();
    let { payload } = await jwtVerify((await redeemBasic(code, verifier)).body.id_token, await jwks());
    expect(payload).toMatchObject({ oid: '00000000-0000-0000-0000-0000000000aa', tid: 'tenant-x' });

    const entra = await startOidcSimulator({ entraTenantId: 'f00d' });
    try {
      const prev = sim;
      sim = entra;
      try {
        ({ code, verifier } = await codeFor());
        const res = await redeemBasic(code, verifier);
        ({ payload } = await jwtVerify(res.body.id_token, await jwks()));
        expect(payload['tid']).toBe('f00d');
        expect(payload['oid']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      } finally {
        sim = prev;
      }
    } finally {
      await entra.close();
    }
  });

  it('signs with a rotated key, which the JWKS then lists', async () => {
    const kid = await sim.rotateKey();
    const { code, verifier } = await codeFor();
    const res = await redeemBasic(code, verifier);
    expect(decodeProtectedHeader(res.body.id_token).kid).toBe(kid);
    await jwtVerify(res.body.id_token, await jwks());
  });
});

describe('authorization errors', () => {
  const valid = () => ({
    response_type: 'code',
    client_id: sim.client.clientId,
    redirect_uri: REDIRECT,
    scope: 'openid',
    state: 's',
    code_challenge: pkce().challenge,
    code_challenge_method: 'S256',
  });

  it('shows a page, and sends the browser nowhere, for an unknown client or an unregistered redirect URI', async () => {
    const unknown = await authorize({ ...valid(), client_id: 'nobody' });
    expect(unknown.status).toBe(400);
    expect(unknown.headers.get('location')).toBeNull();
    expect(await unknown.text()).toContain('invalid_client');
    const strict = sim.addClient({ redirectUris: ['https://app.test/cb'] });
    const wrong = await authorize({ ...valid(), client_id: strict.clientId, redirect_uri: REDIRECT });
    expect(wrong.status).toBe(400);
    expect(wrong.headers.get('location')).toBeNull();
    const right = await authorize({
      ...valid(),
      client_id: strict.clientId,
      redirect_uri: 'https://app.test/cb',
    });
    expect(right.status).toBe(302);
    expect((await authorize({ ...valid(), redirect_uri: 'javascript:alert(1)' })).status).toBe(400);
  });

  it('sends the browser back with the error and the state otherwise', async () => {
    const errorOf = async (params: Record<string, string | undefined>) => {
      const res = await authorize(params);
      expect(res.status).toBe(302);
      const location = new URL(res.headers.get('location')!);
      expect(location.searchParams.get('state')).toBe('s');
      expect(location.searchParams.get('code')).toBeNull();
      return location.searchParams.get('error');
    };
    expect(await errorOf({ ...valid(), scope: 'email' })).toBe('invalid_scope');
    expect(await errorOf({ ...valid(), response_type: 'token' })).toBe('unsupported_response_type');
    expect(await errorOf({ ...valid(), code_challenge: undefined })).toBe('invalid_request');
    expect(await errorOf({ ...valid(), code_challenge_method: 'plain' })).toBe('invalid_request');
    sim.denyNext();
    expect(await errorOf(valid())).toBe('access_denied');
    const after = await authorize(valid());
    expect(new URL(after.headers.get('location')!).searchParams.get('code')).toEqual(expect.any(String));
  });
});

describe('the token endpoint', () => {
  it('refuses the client with 401 invalid_client (with a Basic challenge when Basic was used)', async () => {
    const { code, verifier } = await codeFor();
    const wrong = await redeemBasic(code, verifier, { ...sim.client, clientSecret: 'wrong' });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({ error: 'invalid_client', error_description: expect.any(String) });
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Basic /);
    const none = await redeem({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
    });
    expect(none.status).toBe(401);
    expect(none.body.error).toBe('invalid_client');
    expect(none.headers.get('www-authenticate')).toBeNull();
    const both = await redeem(
      { grant_type: 'authorization_code', code, client_secret: sim.client.clientSecret },
      { authorization: basicAuth(sim.client) },
    );
    expect(both.status).toBe(400);
    expect(both.body.error).toBe('invalid_request');
    const basicOnly = sim.addClient({ tokenEndpointAuthMethod: 'client_secret_basic' });
    const viaPost = await redeem({
      grant_type: 'authorization_code',
      code,
      client_id: basicOnly.clientId,
      client_secret: basicOnly.clientSecret,
    });
    expect(viaPost.status).toBe(401);
    // None of these spent the code.
    expect((await redeemBasic(code, verifier)).status).toBe(200);
  });

  it('gives a code once, and revokes what it gave when it comes back', async () => {
    const { code, verifier } = await codeFor();
    const first = await redeemBasic(code, verifier);
    expect(first.status).toBe(200);
    const again = await redeemBasic(code, verifier);
    expect(again.status).toBe(400);
    expect(again.body).toEqual({ error: 'invalid_grant', error_description: expect.any(String) });
    const info = await fetch(sim.userinfoEndpoint, {
      headers: { authorization: `Bearer ${first.body.access_token}` },
    });
    expect(info.status).toBe(401);
    expect(info.headers.get('www-authenticate')).toContain('invalid_token');
  });

  it('binds the code to its client, redirect URI and PKCE verifier, and to ten minutes', async () => {
    const other = sim.addClient();
    let c = await codeFor();
    expect((await redeemBasic(c.code, c.verifier, other)).body.error).toBe('invalid_grant');
    c = await codeFor();
    expect(
      (await redeemBasic(c.code, c.verifier, sim.client, { redirect_uri: 'http://relaydesk.test/other' }))
        .body.error,
    ).toBe('invalid_grant');
    c = await codeFor();
    const mismatch = await redeemBasic(c.code, pkce().verifier);
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.error).toBe('invalid_grant');
    // A failed attempt spends the code: the right verifier does not help after a wrong one.
    expect((await redeemBasic(c.code, c.verifier)).body.error).toBe('invalid_grant');
    c = await codeFor();
    const missing = await redeem(
      { grant_type: 'authorization_code', code: c.code, redirect_uri: REDIRECT },
      { authorization: basicAuth(sim.client) },
    );
    expect(missing.body.error).toBe('invalid_grant');
    c = await codeFor();
    sim.advance(601);
    try {
      expect((await redeemBasic(c.code, c.verifier)).body.error).toBe('invalid_grant');
    } finally {
      sim.advance(-601);
    }
  });

  it('refuses other grants and other media types', async () => {
    const res = await redeem(
      { grant_type: 'password', username: 'u', password: 'p' },
      { authorization: basicAuth(sim.client) },
    );
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('unsupported_grant_type');
    const json = await fetch(sim.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basicAuth(sim.client) },
      body: JSON.stringify({ grant_type: 'authorization_code' }),
    });
    expect(json.status).toBe(400);
    expect(((await json.json()) as { error: string }).error).toBe('invalid_request');
    expect((await fetch(sim.tokenEndpoint)).status).toBe(405);
  });
});

describe('forged id_tokens', () => {
  it('are refused by a relying party (openid-client) in each way, and the next one is good again', async () => {
    // The signature is checked against the JWKS only with non-repudiation checks on: without them
    // openid-client relies on TLS to the token endpoint (OIDC Core §3.1.3.7), which this has not.
    const config = await client.discovery(
      new URL(sim.issuer),
      sim.client.clientId,
      undefined,
      client.ClientSecretBasic(sim.client.clientSecret),
      { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] },
    );
    const signIn = async () => {
      const verifier = client.randomPKCECodeVerifier();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid',
        state: 'x',
        nonce,
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      const back = await fetch(url, { redirect: 'manual' });
      return client.authorizationCodeGrant(config, new URL(back.headers.get('location')!), {
        pkceCodeVerifier: verifier,
        expectedState: 'x',
        expectedNonce: nonce,
      });
    };
    for (const forgery of ID_TOKEN_FORGERIES) {
      sim.forgeNextIdToken(forgery);
      const outcome = await signIn().then(
        () => 'accepted',
        () => 'refused',
      );
      expect(outcome, forgery).toBe('refused');
    }
    expect((await signIn()).claims()?.sub).toBe(sim.nextUser.sub);
  });
});

describe('control API and faults', () => {
  it('sets the user, denies and forges through HTTP', async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${sim.url}/_control/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect(
      (await post('user', { sub: 'via-http', email: 'h@contoso.test', email_verified: false })).status,
    ).toBe(204);
    const { code, verifier } = await codeFor();
    const { payload } = await jwtVerify((await redeemBasic(code, verifier)).body.id_token, await jwks());
    expect(payload).toMatchObject({ sub: 'via-http', email_verified: false });
    expect((await post('user', { email: 'no-sub@x' })).status).toBe(400);
    expect((await post('deny', {})).status).toBe(204);
    const denied = await authorize({
      response_type: 'code',
      client_id: sim.client.clientId,
      redirect_uri: REDIRECT,
      scope: 'openid',
      code_challenge: pkce().challenge,
      code_challenge_method: 'S256',
    });
    expect(new URL(denied.headers.get('location')!).searchParams.get('error')).toBe('access_denied');
    expect((await post('forge', { forgery: 'nope' })).status).toBe(400);
    expect((await post('forge', { forgery: 'wrong-audience' })).status).toBe(204);
    const c = await codeFor();
    await expect(
      jwtVerify((await redeemBasic(c.code, c.verifier)).body.id_token, await jwks(), {
        audience: sim.client.clientId,
      }),
    ).rejects.toThrow();
  });

  it('answers injected faults with the OAuth error shape and Retry-After, and counts early returns', async () => {
    sim.fault({ pathPrefix: '/token', status: 503, retryAfter: 30 });
    const { code, verifier } = await codeFor();
    const busy = await redeemBasic(code, verifier);
    expect(busy.status).toBe(503);
    expect(busy.body.error).toBe('temporarily_unavailable');
    expect(busy.headers.get('retry-after')).toBe('30');
    const before = sim.retryAfterViolations();
    expect((await redeemBasic(code, verifier)).status).toBe(200);
    expect(sim.retryAfterViolations()).toBe(before + 1);
    const res = await fetch(`${sim.url}/_control/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pathPrefix: '/.well-known/', status: 500, times: null }),
    });
    expect(res.status).toBe(204);
    expect((await fetch(sim.discoveryUrl)).status).toBe(500);
    expect((await fetch(sim.discoveryUrl)).status).toBe(500);
    expect((await fetch(`${sim.url}/_control/faults`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(sim.discoveryUrl)).status).toBe(200);
  });
});
