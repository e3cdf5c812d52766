// A local Gmail simulator (tests, benchmarks, `relaydesk demo`), following the public API:
//   GET  /o/oauth2/v2/auth                       consent: 302 back with code (or error=access_denied) and state
//   POST /token                                  authorization_code (PKCE) and refresh_token grants (invalid_grant when revoked)
//   GET  /oauth2/v3/certs                        the JWKS that signs push tokens
//   GET  /gmail/v1/users/{u}/profile             {emailAddress, historyId}
//   POST /gmail/v1/users/{u}/watch               {historyId, expiration}; POST .../stop → 204
//   GET  /gmail/v1/users/{u}/history             messagesAdded since startHistoryId (404 when older than the kept history), paged
//   GET  /gmail/v1/users/{u}/messages            list with q (rfc822msgid: among the operators), maxResults and pageToken
//   GET  /gmail/v1/users/{u}/messages/{id}?format=raw
//   POST /gmail/v1/users/{u}/messages/send       {raw, threadId?}: the sent Message, labelled SENT, recorded in sent()
// plus push(): a Pub/Sub push with an RS256 OIDC token signed by the simulator's key (or a wrong
// one, for tests), a clock a test can advance (watches and history expire on it), a control API
// under /_control, and fault injection like the Graph simulator's.
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { type Fault, faultFromJson, Faults } from './faults.ts';
import { bareMessageId, headerOf, SentMail, type SentMessage } from './sent-mail.ts';

export type { SentMessage } from './sent-mail.ts';

interface StoredMessage {
  id: string;
  threadId: string;
  raw: Buffer;
  historyId: number;
  /** ms since the epoch, on the simulator's clock. */
  internalDate: number;
  labelIds: string[];
}

export interface PushOptions {
  audience: string;
  email: string;
  issuer?: string;
  emailVerified?: boolean;
  /** Seconds until expiry (negative: already expired). */
  expiresIn?: number;
  /** Sign with a key that is not in the JWKS. */
  foreignKey?: boolean;
}

export interface GmailWatch {
  topicName: string;
  labelIds: string[];
  labelFilterBehavior: string | undefined;
  historyId: string;
  /** ms since the epoch, as a string (what users.watch answers). */
  expiration: string;
}

export interface GmailSimulator {
  url: string;
  apiBaseUrl: string;
  tokenUrl: string;
  /** Google's authorization endpoint (/o/oauth2/v2/auth). */
  authorizeUrl: string;
  jwksUrl: string;
  credentials: { clientId: string; clientSecret: string; refreshToken: string };
  /** The simulator's time: the real time plus what advance() added. */
  now(): Date;
  advance(seconds: number): void;
  deliver(user: string, raw: Buffer): string;
  /** What users.messages.send accepted, in order: the MIME as decoded from `raw`. */
  sent(): SentMessage[];
  clearSent(): void;
  /**
   * Sends a push for the user's current history id to `endpoint`; returns the HTTP status. Once the
   * user has called users.watch, pushes stop (0, nothing sent) when that watch expires or is stopped.
   */
  push(endpoint: string, user: string, options: PushOptions): Promise<number>;
  /** The OIDC token a push carries (what push() sends as `Authorization: Bearer`). */
  pushToken(options: PushOptions): Promise<string>;
  /** The body a push carries: the Pub/Sub envelope around the user's current history id. */
  pushBody(user: string): {
    message: { data: string; messageId: string; publishTime: string };
    subscription: string;
  };
  /** The user's current (unexpired, unstopped) watch. */
  watch(user: string): GmailWatch | undefined;
  counts(): { watches: number; stops: number };
  /** Makes every history id before the current one too old (history.list answers 404). */
  expireHistory(user: string): void;
  /** Every refresh token issued so far (to `user`, or to anyone) is refused from now on. */
  revokeRefreshTokens(user?: string): void;
  /** Same as revokeRefreshTokens() (kept for existing callers). */
  revokeRefreshToken(): void;
  /** The next refresh answers with a new refresh token. */
  rotateRefreshTokenOnce(): string;
  /** When on, every refresh answers with a new refresh token and the old one stops working (default off). */
  rotateRefreshTokens(on: boolean): void;
  /** The user the next consent is given as when the request has no login_hint. */
  consentAs(user: string): void;
  /** The next consent is declined (error=access_denied). */
  denyConsent(): void;
  tokenRequests(): Record<string, number>;
  fault(fault: Fault): void;
  clearFaults(): void;
  retryAfterViolations(): number;
  log: { method: string; path: string; status: number }[];
  close(): Promise<void>;
}

const REASONS: Record<string, string> = {
  NOT_FOUND: 'notFound',
  INVALID_ARGUMENT: 'invalidArgument',
  FAILED_PRECONDITION: 'failedPrecondition',
  UNAUTHENTICATED: 'authError',
  RESOURCE_EXHAUSTED: 'rateLimitExceeded',
  UNAVAILABLE: 'backendError',
  INTERNAL: 'backendError',
};
const gmailError = (code: number, status: string, message: string) => ({
  error: {
    code,
    message,
    errors: [{ message, domain: 'global', reason: REASONS[status] ?? 'badRequest' }],
    status,
  },
});

const WATCH_LIFETIME_MS = 7 * 86_400_000;
const HISTORY_KEPT_MS = 7 * 86_400_000;
const AUTH_CODE_LIFETIME_MS = 10 * 60_000;

interface Box {
  messages: StoredMessage[];
  historyId: number;
  minHistoryId: number;
  /** When each history id was recorded (history older than a week is forgotten). */
  historyTimes: { id: number; at: number }[];
  watch: (Omit<GmailWatch, 'expiration'> & { expiration: number; stopped: boolean }) | undefined;
}

interface RefreshGrant {
  user: string | undefined;
  scope: string;
  state: 'active' | 'rotated' | 'revoked';
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function startGmailSimulator(options: { seed?: number } = {}): Promise<GmailSimulator> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const foreign = await generateKeyPair('RS256');
  const kid = randomBytes(8).toString('hex');
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const credentials = {
    clientId: 'sim-client.apps.googleusercontent.com',
    clientSecret: randomBytes(12).toString('hex'),
    refreshToken: `1//${randomBytes(16).toString('base64url')}`,
  };
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);
  const refreshGrants = new Map<string, RefreshGrant>([
    [
      credentials.refreshToken,
      { user: undefined, scope: 'https://www.googleapis.com/auth/gmail.readonly', state: 'active' },
    ],
  ]);
  let rotateTo: string | undefined;
  let rotateAlways = false;
  let consentUser = 'helpdesk@example.test';
  let denyNext = false;
  const codes = new Map<
    string,
    {
      redirectUri: string;
      challenge: string | undefined;
      challengeMethod: string;
      scope: string;
      user: string;
      offline: boolean;
      issuedAt: number;
      used: boolean;
    }
  >();
  const grantCounts: Record<string, number> = {};
  /** Access tokens, with the user they were granted for (undefined: the preset refresh token). */
  const tokens = new Map<string, { user: string | undefined }>();
  const boxes = new Map<string, Box>();
  const sentMail = new SentMail();
  const faults = new Faults(options.seed);
  const log: GmailSimulator['log'] = [];
  const counters = { watches: 0, stops: 0 };
  const pageKey = randomBytes(32);
  const box = (user: string) => {
    const key = user.toLowerCase();
    let b = boxes.get(key);
    if (!b) {
      b = { messages: [], historyId: 1000, minHistoryId: 0, historyTimes: [], watch: undefined };
      boxes.set(key, b);
    }
    return b;
  };
  const activeWatch = (b: Box) =>
    b.watch && !b.watch.stopped && b.watch.expiration > now().getTime() ? b.watch : undefined;
  /** Adds a message to the mailbox as a new history record; a new thread unless one is given. */
  const store = (user: string, raw: Buffer, labelIds: string[], threadId?: string): StoredMessage => {
    const b = box(user);
    b.historyId += 7;
    const id = randomBytes(8).toString('hex');
    const at = now().getTime();
    const message = { id, threadId: threadId ?? id, raw, historyId: b.historyId, internalDate: at, labelIds };
    b.messages.push(message);
    b.historyTimes.push({ id: b.historyId, at });
    return message;
  };

  // Page tokens: opaque and signed, so a made-up one is refused (400).
  const sign = (payload: string) =>
    createHmac('sha256', pageKey).update(payload).digest('base64url').slice(0, 22);
  const pageToken = (state: unknown) => {
    const payload = Buffer.from(JSON.stringify(state)).toString('base64url');
    return `${payload}.${sign(payload)}`;
  };
  const readPageToken = <T>(token: string): T | undefined => {
    const [payload, mac] = token.split('.');
    if (!payload || !mac || sign(payload) !== mac) return undefined;
    return JSON.parse(Buffer.from(payload, 'base64url').toString()) as T;
  };

  type Send = (status: number, body?: unknown, headers?: Record<string, string>) => void;

  /** Gmail search, for what a resync needs: after:/before:/newer_than:/older_than:, in:/label:, from:/to:/subject:, words. */
  const matcher = (q: string): ((m: StoredMessage) => boolean) => {
    const terms = [...q.matchAll(/(-?)(?:(\w+):)?("([^"]*)"|\S+)/g)].map((t) => ({
      negate: t[1] === '-',
      op: t[2]?.toLowerCase(),
      value: (t[4] ?? t[3]!).toLowerCase(),
    }));
    const dateOf = (v: string) =>
      /^\d+$/.test(v) ? Number(v) * 1000 : Date.parse(`${v.replace(/\//g, '-')}T00:00:00Z`);
    const ageMs = (v: string) => {
      const m = /^(\d+)([dmy])$/.exec(v);
      if (!m) return NaN;
      return (
        Number(m[1]) * { d: 86_400_000, m: 30 * 86_400_000, y: 365 * 86_400_000 }[m[2] as 'd' | 'm' | 'y']
      );
    };
    const header = (m: StoredMessage, name: string) => (headerOf(m.raw, name) ?? '').toLowerCase();
    return (m) =>
      terms.every((t) => {
        let hit: boolean;
        switch (t.op) {
          case 'after':
            hit = m.internalDate >= dateOf(t.value);
            break;
          case 'before':
            hit = m.internalDate < dateOf(t.value);
            break;
          case 'newer_than':
            hit = m.internalDate >= now().getTime() - ageMs(t.value);
            break;
          case 'older_than':
            hit = m.internalDate < now().getTime() - ageMs(t.value);
            break;
          case 'in':
          case 'label':
            hit = m.labelIds.some((l) => l.toLowerCase() === t.value);
            break;
          case 'from':
          case 'to':
          case 'subject':
            hit = header(m, t.op).includes(t.value);
            break;
          case 'rfc822msgid':
            hit = bareMessageId(header(m, 'Message-ID')) === bareMessageId(t.value);
            break;
          default:
            hit = m.raw
              .toString('latin1')
              .toLowerCase()
              .includes(t.op ? `${t.op}:${t.value}` : t.value);
        }
        return t.negate ? !hit : hit;
      });
  };

  const maxResultsOf = (url: URL, fallback: number): number | undefined => {
    const raw = url.searchParams.get('maxResults');
    if (raw === null) return fallback;
    const n = Number(raw);
    return Number.isInteger(n) && n >= 0 ? Math.min(n || fallback, 500) : undefined;
  };

  async function tokenEndpoint(req: http.IncomingMessage, send: Send) {
    const form = new URLSearchParams((await readBody(req)).toString());
    const grantType = form.get('grant_type') ?? '';
    grantCounts[grantType] = (grantCounts[grantType] ?? 0) + 1;
    if (grantType !== 'refresh_token' && grantType !== 'authorization_code')
      return send(400, {
        error: 'unsupported_grant_type',
        error_description: `Invalid grant_type: ${grantType}`,
      });
    if (
      form.get('client_id') !== credentials.clientId ||
      form.get('client_secret') !== credentials.clientSecret
    )
      return send(401, { error: 'invalid_client', error_description: 'Unauthorized' });
    const issue = (user: string | undefined, scope: string) => {
      const accessToken = `ya29.${randomBytes(24).toString('base64url')}`;
      tokens.set(accessToken, { user });
      return { access_token: accessToken, expires_in: 3599, scope, token_type: 'Bearer' } as Record<
        string,
        unknown
      >;
    };
    if (grantType === 'authorization_code') {
      const code = codes.get(form.get('code') ?? '');
      if (!code) return send(400, { error: 'invalid_grant', error_description: 'Malformed auth code.' });
      if (code.used || now().getTime() - code.issuedAt > AUTH_CODE_LIFETIME_MS)
        return send(400, { error: 'invalid_grant', error_description: 'Bad Request' });
      if (form.get('redirect_uri') !== code.redirectUri)
        return send(400, { error: 'redirect_uri_mismatch', error_description: 'Bad Request' });
      if (code.challenge !== undefined) {
        const verifier = form.get('code_verifier');
        if (!verifier)
          return send(400, { error: 'invalid_grant', error_description: 'Missing code verifier.' });
        const derived =
          code.challengeMethod === 'S256'
            ? createHash('sha256').update(verifier).digest('base64url')
            : verifier;
        if (derived !== code.challenge)
          return send(400, { error: 'invalid_grant', error_description: 'Invalid code verifier.' });
      }
      code.used = true;
      const body = issue(code.user, code.scope);
      // A refresh token only for offline access.
      if (code.offline) {
        const refreshToken = `1//${randomBytes(32).toString('base64url')}`;
        refreshGrants.set(refreshToken, { user: code.user, scope: code.scope, state: 'active' });
        body['refresh_token'] = refreshToken;
      }
      return send(200, body);
    }
    const presented = form.get('refresh_token') ?? '';
    const grant = refreshGrants.get(presented);
    if (!grant || grant.state !== 'active')
      return send(400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
    const body = issue(grant.user, grant.scope);
    if (rotateTo || rotateAlways) {
      const next = rotateTo ?? `1//${randomBytes(32).toString('base64url')}`;
      rotateTo = undefined;
      grant.state = 'rotated';
      refreshGrants.set(next, { ...grant, state: 'active' });
      if (presented === credentials.refreshToken) credentials.refreshToken = next;
      body['refresh_token'] = next;
    }
    return send(200, body);
  }

  function authorizeEndpoint(url: URL, send: Send) {
    const q = url.searchParams;
    if (q.get('client_id') !== credentials.clientId)
      return send(401, { error: 'invalid_client', error_description: 'The OAuth client was not found.' });
    const redirectUri = q.get('redirect_uri');
    if (!redirectUri)
      return send(400, {
        error: 'invalid_request',
        error_description: 'Missing required parameter: redirect_uri',
      });
    let redirect: URL;
    try {
      redirect = new URL(redirectUri);
    } catch {
      return send(400, {
        error: 'invalid_request',
        error_description: `Invalid parameter value for redirect_uri`,
      });
    }
    if (q.get('response_type') !== 'code')
      return send(400, {
        error: 'unsupported_response_type',
        error_description: `Unsupported response_type: ${q.get('response_type') ?? ''}`,
      });
    const scope = q.get('scope');
    if (!scope)
      return send(400, { error: 'invalid_request', error_description: 'Missing required parameter: scope' });
    const challenge = q.get('code_challenge') ?? undefined;
    const challengeMethod = q.get('code_challenge_method') ?? 'plain';
    if (challenge !== undefined && challengeMethod !== 'S256' && challengeMethod !== 'plain')
      return send(400, {
        error: 'invalid_request',
        error_description: 'Invalid code_challenge_method value.',
      });
    const state = q.get('state');
    const back = (params: Record<string, string>) => {
      if (state !== null) redirect.searchParams.set('state', state);
      for (const [k, v] of Object.entries(params)) redirect.searchParams.set(k, v);
      return send(302, undefined, { location: redirect.toString() });
    };
    if (denyNext) {
      denyNext = false;
      return back({ error: 'access_denied' });
    }
    const code = `4/0A${randomBytes(32).toString('base64url')}`;
    codes.set(code, {
      redirectUri,
      challenge,
      challengeMethod,
      scope,
      user: q.get('login_hint') || consentUser,
      offline: q.get('access_type') === 'offline',
      issuedAt: now().getTime(),
      used: false,
    });
    return back({ code, scope });
  }

  /**
   * users.messages.send: the whole message base64url-encoded in `raw` (Google's bytes fields also take
   * standard base64). Gmail refuses a message without a recipient. The sent message joins the
   * mailbox labelled SENT, in the requested thread when the documented conditions hold (threadId
   * given, In-Reply-To or References set, the Subject matching, here once Re:/Fwd: prefixes are
   * dropped), else in a new thread.
   */
  async function sendMessage(req: http.IncomingMessage, user: string, send: Send) {
    let body: { raw?: unknown; threadId?: unknown };
    try {
      body = JSON.parse((await readBody(req)).toString() || '{}') as typeof body;
    } catch {
      return send(400, gmailError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.'));
    }
    if (typeof body.raw !== 'string' || body.raw === '')
      return send(
        400,
        gmailError(
          400,
          'INVALID_ARGUMENT',
          "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        ),
      );
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(body.raw))
      return send(
        400,
        gmailError(
          400,
          'INVALID_ARGUMENT',
          "Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed",
        ),
      );
    const raw = Buffer.from(body.raw, 'base64url');
    if (!['To', 'Cc', 'Bcc'].some((name) => headerOf(raw, name)))
      return send(400, gmailError(400, 'INVALID_ARGUMENT', 'Recipient address required'));
    const topic = (m: Buffer) =>
      (headerOf(m, 'Subject') ?? '')
        .replace(/^((re|fwd?)\s*:\s*)+/i, '')
        .trim()
        .toLowerCase();
    const parent = box(user).messages.find((x) => x.threadId === body.threadId);
    const joins =
      parent !== undefined &&
      (headerOf(raw, 'In-Reply-To') !== undefined || headerOf(raw, 'References') !== undefined) &&
      topic(parent.raw) === topic(raw);
    const message = store(user, raw, ['SENT'], joins ? parent.threadId : undefined);
    sentMail.record(message.id, { user, raw, at: now() });
    return send(200, { id: message.id, threadId: message.threadId, labelIds: message.labelIds });
  }

  async function control(req: http.IncomingMessage, path: string, send: Send) {
    const json = async () => JSON.parse((await readBody(req)).toString() || '{}') as Record<string, unknown>;
    if (path === '/_control/clock' && req.method === 'POST') {
      const seconds = (await json())['advanceSeconds'];
      if (typeof seconds !== 'number' || !Number.isFinite(seconds))
        return send(400, { error: 'advanceSeconds must be a number' });
      sim.advance(seconds);
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
    const deliverMatch = /^\/_control\/users\/([^/]+)\/messages$/.exec(path);
    if (deliverMatch && req.method === 'POST')
      return send(201, { id: sim.deliver(decodeURIComponent(deliverMatch[1]!), await readBody(req)) });
    return send(404, { error: 'unknown control route' });
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const send: Send = (status, body, headers = {}) => {
      log.push({ method, path, status });
      if (body === undefined) res.writeHead(status, headers).end();
      else
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
    };
    try {
      if (path.startsWith('/_control/')) return await control(req, path, send);
      faults.observe(method, path, now().getTime());
      const fault = await faults.take(method, path);
      if (fault) {
        const status =
          fault.status === 429
            ? 'RESOURCE_EXHAUSTED'
            : fault.status === 404
              ? 'NOT_FOUND'
              : fault.status === 401
                ? 'UNAUTHENTICATED'
                : 'UNAVAILABLE';
        if (fault.retryAfter) faults.noteRetryAfter(method, path, now().getTime() + fault.retryAfter * 1000);
        return send(
          fault.status,
          gmailError(fault.status, status, `simulated ${fault.status}`),
          fault.retryAfter ? { 'retry-after': String(fault.retryAfter) } : {},
        );
      }
      if (path === '/oauth2/v3/certs') return send(200, { keys: [jwk] });
      if (path === '/o/oauth2/v2/auth' && method === 'GET') return authorizeEndpoint(url, send);
      if (path === '/token' && method === 'POST') return await tokenEndpoint(req, send);
      const m = /^\/gmail\/v1\/users\/([^/]+)\/(profile|watch|stop|history|messages)(?:\/([^/]+))?$/.exec(
        path,
      );
      if (!m) return send(404, gmailError(404, 'NOT_FOUND', 'Not Found'));
      const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
      const caller = bearer ? tokens.get(bearer) : undefined;
      if (!caller)
        return send(
          401,
          gmailError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.'),
        );
      const named = decodeURIComponent(m[1]!);
      const user = named === 'me' && caller.user ? caller.user : named;
      const b = box(user);
      if (m[2] === 'profile')
        return send(200, {
          emailAddress: user,
          messagesTotal: b.messages.length,
          threadsTotal: b.messages.length,
          historyId: String(b.historyId),
        });
      if (m[2] === 'watch' && method === 'POST') {
        const body = JSON.parse((await readBody(req)).toString() || '{}') as {
          topicName?: unknown;
          labelIds?: unknown;
          labelFilterBehavior?: unknown;
          labelFilterAction?: unknown;
        };
        if (typeof body.topicName !== 'string' || !/^projects\/[^/]+\/topics\/[^/]+$/.test(body.topicName))
          return send(
            400,
            gmailError(
              400,
              'INVALID_ARGUMENT',
              'Invalid topicName does not match projects/SOME-ANDROID-PROJECT/topics/*',
            ),
          );
        const filter = body.labelFilterBehavior ?? body.labelFilterAction;
        const expiration = now().getTime() + WATCH_LIFETIME_MS;
        b.watch = {
          topicName: body.topicName,
          labelIds: Array.isArray(body.labelIds) ? body.labelIds.map(String) : [],
          labelFilterBehavior: typeof filter === 'string' ? filter : undefined,
          historyId: String(b.historyId),
          expiration,
          stopped: false,
        };
        counters.watches++;
        return send(200, { historyId: String(b.historyId), expiration: String(expiration) });
      }
      if (m[2] === 'stop' && method === 'POST') {
        if (b.watch) b.watch.stopped = true;
        counters.stops++;
        return send(204);
      }
      if (m[2] === 'history' && method === 'GET') {
        const rawStart = url.searchParams.get('startHistoryId');
        const start = Number(rawStart);
        if (rawStart === null || !/^\d+$/.test(rawStart))
          return send(400, gmailError(400, 'INVALID_ARGUMENT', 'Invalid startHistoryId'));
        const forgotten =
          b.historyTimes.filter((h) => h.at < now().getTime() - HISTORY_KEPT_MS).at(-1)?.id ?? 0;
        if (start < b.minHistoryId || start < forgotten)
          return send(404, gmailError(404, 'NOT_FOUND', 'Requested entity was not found.'));
        const maxResults = maxResultsOf(url, 100);
        if (maxResults === undefined)
          return send(400, gmailError(400, 'INVALID_ARGUMENT', 'Invalid maxResults'));
        const token = url.searchParams.get('pageToken');
        let after = start;
        if (token) {
          const state = readPageToken<{ start: number; after: number }>(token);
          if (!state || state.start !== start)
            return send(400, gmailError(400, 'INVALID_ARGUMENT', 'Invalid pageToken'));
          after = state.after;
        }
        const added = b.messages.filter((x) => x.historyId > after).sort((x, y) => x.historyId - y.historyId);
        const page = added.slice(0, maxResults);
        const body: Record<string, unknown> = {
          history: page.map((x) => ({
            id: String(x.historyId),
            messages: [{ id: x.id, threadId: x.threadId }],
            messagesAdded: [{ message: { id: x.id, threadId: x.threadId, labelIds: x.labelIds } }],
          })),
          historyId: String(b.historyId),
        };
        if (!page.length) delete body['history'];
        if (added.length > page.length)
          body['nextPageToken'] = pageToken({ start, after: page[page.length - 1]!.historyId });
        return send(200, body);
      }
      if (m[2] === 'messages' && !m[3] && method === 'GET') {
        const q = url.searchParams.get('q') ?? '';
        const labelIds = url.searchParams.getAll('labelIds');
        const maxResults = maxResultsOf(url, 100);
        if (maxResults === undefined)
          return send(400, gmailError(400, 'INVALID_ARGUMENT', 'Invalid maxResults'));
        const matches = matcher(q);
        // Newest first, as Gmail lists.
        const all = b.messages
          .filter((x) => matches(x) && labelIds.every((l) => x.labelIds.includes(l)))
          .sort((x, y) => y.internalDate - x.internalDate || y.historyId - x.historyId);
        let rest = all;
        const token = url.searchParams.get('pageToken');
        if (token) {
          const state = readPageToken<{ q: string; labels: string[]; before: number }>(token);
          if (!state || state.q !== q || state.labels.join() !== labelIds.join())
            return send(400, gmailError(400, 'INVALID_ARGUMENT', 'Invalid pageToken'));
          rest = all.filter((x) => x.historyId < state.before);
        }
        const page = rest.slice(0, maxResults);
        const body: Record<string, unknown> = {
          messages: page.map((x) => ({ id: x.id, threadId: x.threadId })),
          resultSizeEstimate: rest.length,
        };
        if (!page.length) delete body['messages'];
        if (rest.length > page.length)
          body['nextPageToken'] = pageToken({
            q,
            labels: labelIds,
            before: page[page.length - 1]!.historyId,
          });
        return send(200, body);
      }
      if (m[2] === 'messages' && m[3] === 'send' && method === 'POST')
        return await sendMessage(req, user, send);
      if (m[2] === 'messages' && m[3] && method === 'GET') {
        const msg = b.messages.find((x) => x.id === m[3]);
        if (!msg) return send(404, gmailError(404, 'NOT_FOUND', 'Requested entity was not found.'));
        return send(200, {
          id: msg.id,
          threadId: msg.threadId,
          labelIds: msg.labelIds,
          historyId: String(msg.historyId),
          internalDate: String(msg.internalDate),
          sizeEstimate: msg.raw.length,
          raw: msg.raw.toString('base64url'),
        });
      }
      return send(404, gmailError(404, 'NOT_FOUND', 'Not Found'));
    } catch (err) {
      return send(500, gmailError(500, 'INTERNAL', (err as Error).message));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // The push token's times stay on the real clock: the receiving app checks them against its own.
  const pushToken = async (options: PushOptions): Promise<string> => {
    const nowSeconds = Math.floor(Date.now() / 1000);
    return new SignJWT({
      email: options.email,
      email_verified: options.emailVerified ?? true,
      sub: '1234567890',
    })
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
      .setIssuer(options.issuer ?? 'https://accounts.google.com')
      .setAudience(options.audience)
      .setIssuedAt(nowSeconds - 5)
      .setExpirationTime(nowSeconds + (options.expiresIn ?? 3600))
      .sign(options.foreignKey ? foreign.privateKey : privateKey);
  };
  const pushBody = (user: string) => ({
    message: {
      data: Buffer.from(JSON.stringify({ emailAddress: user, historyId: box(user).historyId })).toString(
        'base64',
      ),
      messageId: randomUUID(),
      publishTime: now().toISOString(),
    },
    subscription: 'projects/sim/subscriptions/relaydesk',
  });

  const sim: GmailSimulator = {
    url: base,
    apiBaseUrl: `${base}/gmail/v1`,
    tokenUrl: `${base}/token`,
    authorizeUrl: `${base}/o/oauth2/v2/auth`,
    jwksUrl: `${base}/oauth2/v3/certs`,
    credentials,
    log,
    now,
    advance(seconds) {
      offsetMs += seconds * 1000;
    },
    deliver(user, raw) {
      return store(user, raw, ['INBOX', 'UNREAD']).id;
    },
    sent: () => sentMail.all(),
    clearSent() {
      sentMail.clear();
    },
    pushToken,
    pushBody,
    async push(endpoint, user, options) {
      const b = box(user);
      if (b.watch && !activeWatch(b)) return 0;
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await pushToken(options)}` },
        body: JSON.stringify(pushBody(user)),
      });
      return res.status;
    },
    watch(user) {
      const w = activeWatch(box(user));
      if (!w) return undefined;
      return {
        topicName: w.topicName,
        labelIds: [...w.labelIds],
        labelFilterBehavior: w.labelFilterBehavior,
        historyId: w.historyId,
        expiration: String(w.expiration),
      };
    },
    counts: () => ({ ...counters }),
    expireHistory(user) {
      box(user).minHistoryId = box(user).historyId + 1;
    },
    revokeRefreshTokens(user) {
      for (const g of refreshGrants.values())
        if (g.state === 'active' && (user === undefined || g.user?.toLowerCase() === user.toLowerCase()))
          g.state = 'revoked';
    },
    revokeRefreshToken() {
      sim.revokeRefreshTokens();
    },
    rotateRefreshTokenOnce() {
      rotateTo = `1//${randomBytes(16).toString('base64url')}`;
      return rotateTo;
    },
    rotateRefreshTokens(on) {
      rotateAlways = on;
    },
    consentAs(user) {
      consentUser = user;
    },
    denyConsent() {
      denyNext = true;
    },
    tokenRequests: () => ({ ...grantCounts }),
    fault(f) {
      faults.add(f);
    },
    clearFaults() {
      faults.clear();
    },
    retryAfterViolations: () => faults.retryAfterViolations(),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return sim;
}
