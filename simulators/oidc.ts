// A local OpenID Connect provider for tests and `relaydesk demo`. It follows the public specs for what
// a relying party of the authorization code flow uses (OpenID Connect Core 1.0 and Discovery 1.0,
// RFC 6749, RFC 7636 PKCE, RFC 7517 JWKS, RFC 9207 `iss` in the authorization response):
//   GET  {issuer}/.well-known/openid-configuration   the provider's metadata
//   GET  {issuer}/authorize                          signs in the user the test chose (nextUser) at once
//                                                    and sends the browser back with code, state and iss;
//                                                    or error=access_denied when told to (denyNext)
//   POST {issuer}/token                              authorization_code with client_secret_basic or
//                                                    client_secret_post; the code is single use, expires
//                                                    after 10 minutes and is bound to the client, the
//                                                    redirect_uri and the PKCE challenge (S256, required)
//   GET  {issuer}/jwks                               the RS256 signing keys (jose)
//   GET|POST {issuer}/userinfo                       the signed-in user's claims, for the access token
// The id_token carries iss, sub, aud, exp, iat, auth_time, nonce and, by scope, email, email_verified
// and name; Microsoft Entra's `tid` and `oid` when the user has them (or the simulator was started
// with an Entra tenant id). A test can forge the next id_token in one way (wrong issuer, audience or
// nonce, expired, bad signature, an unpublished key, alg none) for the relying party to refuse.
// Errors are the documented ones: where the browser cannot be sent back (unknown client, a
// redirect_uri the client did not register) a 400 page; otherwise a redirect with `error`; the token
// endpoint answers `{error, error_description}` with 400 (invalid_request, invalid_grant,
// unsupported_grant_type) or 401 (invalid_client, with WWW-Authenticate for Basic). The control API
// under /_control sets the user, denies or forges the next sign-in, moves the clock and injects
// faults (faults.ts).
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { type Fault, faultFromJson, Faults } from './faults.ts';

export type { Fault } from './faults.ts';

/** Who signs in: the claims the id_token and userinfo carry. */
export interface OidcUser {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  /** Entra: the user's object id (the same in every app of the directory). */
  oid?: string;
  /** Entra: the directory (tenant) id. */
  tid?: string;
  /** Entra's optional claim: the email's domain is verified as the directory's (Entra sends no email_verified). */
  xms_edov?: boolean;
}

/** The ways the next id_token can be wrong. */
export const ID_TOKEN_FORGERIES = [
  'wrong-issuer',
  'wrong-audience',
  'wrong-nonce',
  'no-nonce',
  'expired',
  'bad-signature',
  'unknown-key',
  'alg-none',
] as const;
export type IdTokenForgery = (typeof ID_TOKEN_FORGERIES)[number];

export interface OidcClient {
  clientId: string;
  clientSecret: string;
  /** The redirect URIs the client registered; empty: any http(s) URI (a simulator convenience). */
  redirectUris: string[];
  /** Set: only this client authentication method is accepted at the token endpoint. */
  tokenEndpointAuthMethod: 'client_secret_basic' | 'client_secret_post' | undefined;
}

export interface TokenRequest {
  grantType: string;
  /** How the client authenticated (none: it sent no credentials). */
  authMethod: 'client_secret_basic' | 'client_secret_post' | 'none' | 'both';
  clientId: string | undefined;
  status: number;
  error: string | undefined;
}

export interface OidcSimulator {
  url: string;
  issuer: string;
  discoveryUrl: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  jwksUri: string;
  userinfoEndpoint: string;
  /** The client registered at start (any redirect URI, either secret method). */
  client: OidcClient;
  addClient(options?: {
    redirectUris?: string[];
    tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post';
  }): OidcClient;
  /** Who the next authorization requests sign in (stays until changed). */
  nextUser: OidcUser;
  /** A user with a fresh `sub` (and the overrides). */
  user(overrides?: Partial<OidcUser>): OidcUser;
  /** The next authorization request is declined (error=access_denied). */
  denyNext(): void;
  /** The next id_token the token endpoint issues is wrong in this way. */
  forgeNextIdToken(forgery: IdTokenForgery): void;
  /** Every authorization request, with its query parameters. */
  authorizeRequests(): Record<string, string>[];
  tokenRequests(): TokenRequest[];
  /** The simulator's time: the real time plus what advance() added (codes and tokens expire on it). */
  now(): Date;
  advance(seconds: number): void;
  /** Adds a new signing key (a new kid) to the JWKS and signs with it from now on. Returns its kid. */
  rotateKey(): Promise<string>;
  fault(fault: Fault): void;
  clearFaults(): void;
  retryAfterViolations(): number;
  log: { method: string; path: string; status: number }[];
  close(): Promise<void>;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

interface AuthCode {
  clientId: string;
  redirectUri: string;
  challenge: string;
  scope: string[];
  nonce: string | undefined;
  user: OidcUser;
  issuedAt: number;
  used: boolean;
  /** Access tokens issued for it: revoked when the code is replayed (RFC 6749 §4.1.2). */
  accessTokens: string[];
}

const CODE_LIFETIME_MS = 10 * 60_000;
const ACCESS_TOKEN_LIFETIME_S = 3600;
const ID_TOKEN_LIFETIME_S = 3600;
// RFC 7636 §4.1 (verifier) and §4.2 (an S256 challenge is 43 base64url characters).
const VERIFIER_RE = /^[A-Za-z0-9\-._~]{43,128}$/;
const S256_CHALLENGE_RE = /^[A-Za-z0-9_-]{43}$/;

async function makeKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomBytes(12).toString('base64url');
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, use: 'sig', alg: 'RS256' } };
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** RFC 6749 §2.3.1: the id and secret are form-encoded before they are joined and base64-encoded. */
function formDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

export async function startOidcSimulator(
  options: {
    port?: number;
    seed?: number;
    /** The issuer's path on the simulator's origin (e.g. "/tenant-1/v2.0"); default none. */
    issuerPath?: string;
    /** Entra style: every id_token carries this `tid`, and an `oid` (the user's, else derived from sub). */
    entraTenantId?: string;
  } = {},
): Promise<OidcSimulator> {
  const issuerPath = (options.issuerPath ?? '').replace(/\/+$/, '');
  if (issuerPath !== '' && !/^\/[A-Za-z0-9._~\-/]+$/.test(issuerPath))
    throw new Error('issuerPath must be a plain path starting with /');
  const clients = new Map<string, OidcClient>();
  const codes = new Map<string, AuthCode>();
  const accessTokens = new Map<
    string,
    { user: OidcUser; scope: string[]; expiresAt: number; revoked: boolean }
  >();
  const keys: SigningKey[] = [await makeKey()];
  let current = keys[0]!;
  // Never published: a token signed with it names a kid the JWKS does not have.
  const strayKey = await makeKey();
  const faults = new Faults(options.seed);
  const log: OidcSimulator['log'] = [];
  const authorizeLog: Record<string, string>[] = [];
  const tokenLog: TokenRequest[] = [];
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);
  let denyNext = false;
  let forgery: IdTokenForgery | undefined;

  const addClient: OidcSimulator['addClient'] = (opts = {}) => {
    const client: OidcClient = {
      clientId: `client-${randomBytes(8).toString('hex')}`,
      clientSecret: randomBytes(24).toString('base64url'),
      redirectUris: opts.redirectUris ?? [],
      tokenEndpointAuthMethod: opts.tokenEndpointAuthMethod,
    };
    clients.set(client.clientId, client);
    return client;
  };
  const client = addClient();

  const makeUser = (overrides: Partial<OidcUser> = {}): OidcUser => ({
    sub: randomBytes(16).toString('base64url'),
    email: 'megan.bowen@contoso.test',
    email_verified: true,
    name: 'Megan Bowen',
    ...overrides,
  });

  type Send = (status: number, body?: unknown, headers?: Record<string, string>) => void;
  let base = '';
  const issuer = () => `${base}${issuerPath}`;

  const metadata = () => ({
    issuer: issuer(),
    authorization_endpoint: `${issuer()}/authorize`,
    token_endpoint: `${issuer()}/token`,
    jwks_uri: `${issuer()}/jwks`,
    userinfo_endpoint: `${issuer()}/userinfo`,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    scopes_supported: ['openid', 'email', 'profile'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    claims_supported: [
      'iss',
      'sub',
      'aud',
      'exp',
      'iat',
      'auth_time',
      'nonce',
      'email',
      'email_verified',
      'name',
      'tid',
      'oid',
      'xms_edov',
    ],
    code_challenge_methods_supported: ['S256'],
    authorization_response_iss_parameter_supported: true,
  });

  /** The claims the scopes grant (OIDC Core §5.4). */
  const userClaims = (user: OidcUser, scope: string[]): Record<string, unknown> => {
    const claims: Record<string, unknown> = { sub: user.sub };
    if (scope.includes('email')) {
      if (user.email !== undefined) claims['email'] = user.email;
      if (user.email_verified !== undefined) claims['email_verified'] = user.email_verified;
      if (user.xms_edov !== undefined) claims['xms_edov'] = user.xms_edov;
    }
    if (scope.includes('profile') && user.name !== undefined) claims['name'] = user.name;
    const tid = user.tid ?? options.entraTenantId;
    if (tid !== undefined) {
      claims['tid'] = tid;
      claims['oid'] =
        user.oid ??
        createHash('sha256')
          .update(`${tid}|${user.sub}`)
          .digest('hex')
          .slice(0, 32)
          .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
    } else if (user.oid !== undefined) claims['oid'] = user.oid;
    return claims;
  };

  const idToken = async (code: AuthCode): Promise<string> => {
    const forge = forgery;
    forgery = undefined;
    const nowS = Math.floor(now().getTime() / 1000);
    const iat = forge === 'expired' ? nowS - 2 * ID_TOKEN_LIFETIME_S : nowS;
    const payload: Record<string, unknown> = {
      ...userClaims(code.user, code.scope),
      iss: forge === 'wrong-issuer' ? `${issuer()}/elsewhere` : issuer(),
      aud: forge === 'wrong-audience' ? `client-${randomBytes(8).toString('hex')}` : code.clientId,
      iat,
      exp: iat + ID_TOKEN_LIFETIME_S,
      auth_time: Math.floor(code.issuedAt / 1000),
    };
    if (forge === 'wrong-nonce') payload['nonce'] = randomBytes(16).toString('base64url');
    else if (code.nonce !== undefined && forge !== 'no-nonce') payload['nonce'] = code.nonce;
    if (forge === 'alg-none') return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
    const key = forge === 'unknown-key' ? strayKey : current;
    const token = await new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
      .sign(key.privateKey);
    if (forge !== 'bad-signature') return token;
    const [h, p, s] = token.split('.');
    const sig = Buffer.from(s!, 'base64url');
    sig[10] = sig[10]! ^ 0xff;
    return `${h}.${p}.${sig.toString('base64url')}`;
  };

  // ---- authorization endpoint (OIDC Core §3.1.2) ----
  function authorize(url: URL, send: Send) {
    const q = url.searchParams;
    authorizeLog.push(Object.fromEntries(q.entries()));
    const page = (error: string, description: string) =>
      send(
        400,
        Buffer.from(
          `<!doctype html><title>Sign-in error</title><h1>${escapeHtml(error)}</h1><p>${escapeHtml(description)}</p>\n`,
        ),
        { 'content-type': 'text/html; charset=utf-8' },
      );
    // Until the client and its redirect URI are known to be good, the browser is not sent back
    // anywhere (RFC 6749 §4.1.2.1): an error page instead.
    const clientId = q.get('client_id') ?? '';
    const known = clients.get(clientId);
    if (!known) return page('invalid_client', `The client "${clientId}" is not registered.`);
    const redirectUri = q.get('redirect_uri') ?? '';
    let redirect: URL;
    try {
      redirect = new URL(redirectUri);
      if (redirect.protocol !== 'http:' && redirect.protocol !== 'https:') throw new Error('scheme');
      if (redirect.hash !== '') throw new Error('fragment');
    } catch {
      return page('invalid_request', 'The redirect_uri is missing or not an absolute http(s) URI.');
    }
    if (known.redirectUris.length > 0 && !known.redirectUris.includes(redirectUri))
      return page('invalid_request', 'The redirect_uri is not one the client registered.');

    const state = q.get('state');
    const back = (params: Record<string, string>) => {
      for (const [k, v] of Object.entries(params)) redirect.searchParams.set(k, v);
      if (state !== null) redirect.searchParams.set('state', state);
      redirect.searchParams.set('iss', issuer());
      return send(302, undefined, { location: redirect.toString() });
    };
    if (q.get('response_type') !== 'code')
      return back({
        error: 'unsupported_response_type',
        error_description: 'Only response_type=code is supported.',
      });
    const scope = (q.get('scope') ?? '').split(' ').filter(Boolean);
    if (!scope.includes('openid'))
      return back({ error: 'invalid_scope', error_description: 'The scope must include openid.' });
    const challenge = q.get('code_challenge');
    if (challenge === null)
      return back({ error: 'invalid_request', error_description: 'code_challenge is required (PKCE).' });
    if ((q.get('code_challenge_method') ?? 'plain') !== 'S256' || !S256_CHALLENGE_RE.test(challenge))
      return back({
        error: 'invalid_request',
        error_description: 'Only an S256 code_challenge is supported.',
      });
    if (denyNext) {
      denyNext = false;
      return back({ error: 'access_denied', error_description: 'The user declined to sign in.' });
    }
    const code = randomBytes(32).toString('base64url');
    codes.set(code, {
      clientId,
      redirectUri,
      challenge,
      scope,
      nonce: q.get('nonce') ?? undefined,
      user: { ...sim.nextUser },
      issuedAt: now().getTime(),
      used: false,
      accessTokens: [],
    });
    return back({ code });
  }

  // ---- token endpoint (RFC 6749 §4.1.3, §5) ----
  async function token(req: http.IncomingMessage, send: Send) {
    const record: TokenRequest = {
      grantType: '',
      authMethod: 'none',
      clientId: undefined,
      status: 0,
      error: undefined,
    };
    tokenLog.push(record);
    const noStore = { 'cache-control': 'no-store', pragma: 'no-cache' };
    const fail = (
      status: number,
      error: string,
      description: string,
      headers: Record<string, string> = {},
    ) => {
      record.status = status;
      record.error = error;
      return send(status, { error, error_description: description }, { ...noStore, ...headers });
    };
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    const raw = (await readBody(req)).toString('utf8');
    if (type !== 'application/x-www-form-urlencoded')
      return fail(400, 'invalid_request', 'The body must be application/x-www-form-urlencoded.');
    const form = new URLSearchParams(raw);
    record.grantType = form.get('grant_type') ?? '';

    // Client authentication: exactly one method (RFC 6749 §2.3).
    const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(String(req.headers.authorization ?? ''))?.[1];
    const postSecret = form.get('client_secret');
    let presented: { id: string; secret: string } | undefined;
    if (basic !== undefined && postSecret !== null) {
      record.authMethod = 'both';
      return fail(400, 'invalid_request', 'The client used more than one authentication method.');
    }
    if (basic !== undefined) {
      record.authMethod = 'client_secret_basic';
      const decoded = Buffer.from(basic, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const id = colon < 0 ? undefined : formDecode(decoded.slice(0, colon));
      const secret = colon < 0 ? undefined : formDecode(decoded.slice(colon + 1));
      if (id !== undefined && secret !== undefined) presented = { id, secret };
      const bodyId = form.get('client_id');
      if (presented && bodyId !== null && bodyId !== presented.id)
        return fail(400, 'invalid_request', 'client_id does not match the authenticated client.');
    } else if (postSecret !== null) {
      record.authMethod = 'client_secret_post';
      const id = form.get('client_id');
      if (id !== null) presented = { id, secret: postSecret };
    }
    const challengeBasic: Record<string, string> =
      basic !== undefined ? { 'www-authenticate': 'Basic realm="oidc-simulator"' } : {};
    const authenticated = presented ? clients.get(presented.id) : undefined;
    record.clientId = presented?.id;
    if (
      !presented ||
      !authenticated ||
      authenticated.clientSecret !== presented.secret ||
      (authenticated.tokenEndpointAuthMethod !== undefined &&
        authenticated.tokenEndpointAuthMethod !== record.authMethod)
    )
      return fail(401, 'invalid_client', 'Client authentication failed.', challengeBasic);

    if (record.grantType !== 'authorization_code')
      return fail(400, 'unsupported_grant_type', `The grant type "${record.grantType}" is not supported.`);
    const codeValue = form.get('code');
    if (!codeValue) return fail(400, 'invalid_request', 'code is required.');
    const code = codes.get(codeValue);
    if (!code || code.clientId !== authenticated.clientId)
      return fail(400, 'invalid_grant', 'The authorization code is not valid.');
    if (code.used) {
      // A replayed code: the tokens it gave are revoked (RFC 6749 §4.1.2).
      for (const t of code.accessTokens) {
        const at = accessTokens.get(t);
        if (at) at.revoked = true;
      }
      return fail(400, 'invalid_grant', 'The authorization code was already used.');
    }
    // Whatever goes wrong from here spends the code: a verifier cannot be guessed at.
    code.used = true;
    if (now().getTime() - code.issuedAt > CODE_LIFETIME_MS)
      return fail(400, 'invalid_grant', 'The authorization code has expired.');
    if (form.get('redirect_uri') !== code.redirectUri)
      return fail(400, 'invalid_grant', 'redirect_uri does not match the authorization request.');
    const verifier = form.get('code_verifier');
    if (verifier === null || !VERIFIER_RE.test(verifier))
      return fail(400, 'invalid_grant', 'code_verifier is missing or malformed.');
    if (createHash('sha256').update(verifier).digest('base64url') !== code.challenge)
      return fail(400, 'invalid_grant', 'code_verifier does not match the code_challenge.');

    const accessToken = randomBytes(32).toString('base64url');
    accessTokens.set(accessToken, {
      user: code.user,
      scope: code.scope,
      expiresAt: now().getTime() + ACCESS_TOKEN_LIFETIME_S * 1000,
      revoked: false,
    });
    code.accessTokens.push(accessToken);
    record.status = 200;
    return send(
      200,
      {
        access_token: accessToken,
        token_type: 'Bearer',
        expires_in: ACCESS_TOKEN_LIFETIME_S,
        scope: code.scope.join(' '),
        id_token: await idToken(code),
      },
      noStore,
    );
  }

  // ---- userinfo (OIDC Core §5.3) ----
  function userinfo(req: http.IncomingMessage, send: Send) {
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(String(req.headers.authorization ?? ''))?.[1];
    const grant = bearer ? accessTokens.get(bearer) : undefined;
    if (!grant || grant.revoked || grant.expiresAt < now().getTime())
      return send(
        401,
        { error: 'invalid_token', error_description: 'The access token is not valid.' },
        { 'www-authenticate': 'Bearer error="invalid_token"' },
      );
    return send(200, userClaims(grant.user, grant.scope));
  }

  async function control(req: http.IncomingMessage, path: string, send: Send) {
    const json = async () => JSON.parse((await readBody(req)).toString() || '{}') as Record<string, unknown>;
    if (path === '/_control/user' && req.method === 'POST') {
      const body = await json();
      if (typeof body['sub'] !== 'string' || body['sub'] === '')
        return send(400, { error: 'a user needs a sub' });
      sim.nextUser = body as unknown as OidcUser;
      return send(204);
    }
    if (path === '/_control/deny' && req.method === 'POST') {
      sim.denyNext();
      return send(204);
    }
    if (path === '/_control/forge' && req.method === 'POST') {
      const f = (await json())['forgery'];
      if (typeof f !== 'string' || !(ID_TOKEN_FORGERIES as readonly string[]).includes(f))
        return send(400, { error: `forgery must be one of ${ID_TOKEN_FORGERIES.join(', ')}` });
      sim.forgeNextIdToken(f as IdTokenForgery);
      return send(204);
    }
    if (path === '/_control/faults' && req.method === 'POST') {
      try {
        sim.fault(faultFromJson(await json()));
      } catch (err) {
        return send(400, { error: (err as Error).message });
      }
      return send(204);
    }
    if (path === '/_control/faults' && req.method === 'DELETE') {
      sim.clearFaults();
      return send(204);
    }
    if (path === '/_control/clock' && req.method === 'POST') {
      const seconds = (await json())['advanceSeconds'];
      if (typeof seconds !== 'number' || !Number.isFinite(seconds))
        return send(400, { error: 'advanceSeconds must be a number' });
      sim.advance(seconds);
      return send(204);
    }
    return send(404, { error: 'unknown control route' });
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const send: Send = (status, body, headers = {}) => {
      log.push({ method, path, status });
      if (body === undefined) res.writeHead(status, headers).end();
      else if (Buffer.isBuffer(body)) res.writeHead(status, headers).end(body);
      else
        res
          .writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers })
          .end(JSON.stringify(body));
    };
    try {
      if (path.startsWith('/_control/')) return await control(req, path, send);

      faults.observe(method, path, now().getTime());
      const fault = await faults.take(method, path);
      if (fault) {
        if (fault.retryAfter) faults.noteRetryAfter(method, path, now().getTime() + fault.retryAfter * 1000);
        return send(
          fault.status,
          {
            error: fault.status === 503 || fault.status === 429 ? 'temporarily_unavailable' : 'server_error',
            error_description: `simulated ${fault.status}`,
          },
          fault.retryAfter ? { 'retry-after': String(fault.retryAfter) } : {},
        );
      }

      if (!path.startsWith(`${issuerPath}/`))
        return send(404, { error: 'not_found', error_description: `no route ${method} ${path}` });
      const route = path.slice(issuerPath.length);
      if (route === '/.well-known/openid-configuration' && method === 'GET') return send(200, metadata());
      if (route === '/jwks' && method === 'GET')
        return send(200, { keys: keys.map((k) => k.jwk) }, { 'cache-control': 'public, max-age=3600' });
      if (route === '/authorize' && method === 'GET') return authorize(url, send);
      if (route === '/token' && method === 'POST') return await token(req, send);
      if (route === '/userinfo' && (method === 'GET' || method === 'POST')) return userinfo(req, send);
      if (['/.well-known/openid-configuration', '/jwks', '/authorize', '/token', '/userinfo'].includes(route))
        return send(405, { error: 'invalid_request', error_description: `${method} is not allowed here` });
      return send(404, { error: 'not_found', error_description: `no route ${method} ${path}` });
    } catch (err) {
      return send(500, { error: 'server_error', error_description: (err as Error).message });
    }
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const sim: OidcSimulator = {
    url: base,
    issuer: issuer(),
    discoveryUrl: `${issuer()}/.well-known/openid-configuration`,
    authorizationEndpoint: `${issuer()}/authorize`,
    tokenEndpoint: `${issuer()}/token`,
    jwksUri: `${issuer()}/jwks`,
    userinfoEndpoint: `${issuer()}/userinfo`,
    client,
    addClient,
    nextUser: makeUser(),
    user: makeUser,
    denyNext() {
      denyNext = true;
    },
    forgeNextIdToken(f) {
      forgery = f;
    },
    authorizeRequests: () => authorizeLog.map((r) => ({ ...r })),
    tokenRequests: () => tokenLog.map((r) => ({ ...r })),
    now,
    advance(seconds) {
      offsetMs += seconds * 1000;
    },
    async rotateKey() {
      current = await makeKey();
      keys.push(current);
      return current.kid;
    },
    fault(f) {
      faults.add(f);
    },
    clearFaults() {
      faults.clear();
    },
    retryAfterViolations: () => faults.retryAfterViolations(),
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return sim;
}
