// A local Microsoft Graph simulator for tests, benchmarks and `relaydesk demo`. It follows the
// public API's payloads, status codes and error shapes for what Relaydesk uses:
//   POST {tokenUrl}/{tenant}/oauth2/v2.0/token          client_credentials, authorization_code (PKCE), refresh_token (rotating)
//   GET  {tokenUrl}/{tenant}/oauth2/v2.0/authorize      delegated consent: 302 back with code (or error) and state
//   GET|POST /v1.0/subscriptions                        create runs the validation handshake (notificationUrl and lifecycleNotificationUrl)
//   GET|PATCH|DELETE /v1.0/subscriptions/{id}           read, renew, delete (404 ResourceNotFound when unknown or expired)
//   POST /v1.0/subscriptions/{id}/reauthorize           204
//   GET  /v1.0/users/{user}/messages/{id}[/$value]      the message, or its raw MIME
//   GET  /v1.0/users/{user}/mailFolders/{folder}/messages/delta    paged delta with skip/delta tokens (410 when unknown)
//   POST /v1.0/users/{user}/sendMail                    MIME content only (text/plain, base64): 202 Accepted, recorded in sent()
//   GET  /v1.0/users/{user}/messages?$filter=internetMessageId eq '<id>'   received and sent messages with that Message-ID
//   GET  /v1.0/me[/...]                                 with a delegated token: the signed-in user
// Subscriptions expire on the simulator's clock (real time plus an offset a test can advance).
// The control API under /_control drops a message into a mailbox (which sends the change
// notification), moves the clock, sends lifecycle notifications and injects faults (status codes
// with Retry-After, slow answers, at random with a seed).
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Fault, faultFromJson, Faults } from './faults.ts';
import { headerOf, SentMail, type SentMessage } from './sent-mail.ts';

export type { Fault } from './faults.ts';
export type { SentMessage } from './sent-mail.ts';

interface Subscription {
  id: string;
  resource: string;
  changeType: string;
  notificationUrl: string;
  lifecycleNotificationUrl: string | undefined;
  clientState: string | undefined;
  expirationDateTime: string;
  /** A reauthorizationRequired notification was sent and neither reauthorize nor a renewal followed. */
  reauthorizationRequired: boolean;
}

export type LifecycleEvent = 'reauthorizationRequired' | 'subscriptionRemoved' | 'missed';
const LIFECYCLE_EVENTS: readonly string[] = ['reauthorizationRequired', 'subscriptionRemoved', 'missed'];

export interface GraphSimulator {
  url: string;
  apiBaseUrl: string;
  tokenUrl: string;
  /** The delegated (authorization code) endpoints on the `common` tenant. */
  authorizeUrl: string;
  delegatedTokenUrl: string;
  credentials: { tenantId: string; clientId: string; clientSecret: string };
  /** The longest a subscription may run (Outlook messages: 10,080 minutes). */
  maxExpirationMinutes: number;
  /** The simulator's time: the real time plus what advance() added. */
  now(): Date;
  advance(seconds: number): void;
  /** Drops a raw message into a mailbox; sends change notifications unless told not to. Returns its id. */
  deliver(user: string, raw: Buffer, options?: { notify?: boolean }): Promise<string>;
  /** Removes a message (a later $value is 404; delta reports it as removed). */
  remove(user: string, id: string): void;
  /** What sendMail accepted, in order: the MIME as decoded from the request, which Graph sends on. */
  sent(): SentMessage[];
  clearSent(): void;
  fault(fault: Fault): void;
  clearFaults(): void;
  /** Requests that came back before the Retry-After the simulator gave for the same method and path. */
  retryAfterViolations(): number;
  /** The live (unexpired) subscriptions. */
  subscriptions(): Subscription[];
  /**
   * Benchmark and test aid, not Graph behaviour: stores a subscription as if it had been created
   * earlier, without the validation handshake and without counting it in `counts().created`, so
   * that thousands can be loaded at once (bench/upkeep.ts). Returns its id (a new UUID unless given).
   */
  seedSubscription(subscription: {
    id?: string;
    resource: string;
    notificationUrl: string;
    lifecycleNotificationUrl?: string;
    clientState?: string;
    expirationDateTime: string;
    changeType?: string;
  }): string;
  /**
   * Sends a lifecycle notification (to lifecycleNotificationUrl, else notificationUrl) and returns the
   * status the endpoint answered (0: unreachable or unknown subscription). subscriptionRemoved
   * removes the subscription first; reauthorizationRequired marks it pending until reauthorize or PATCH.
   */
  lifecycle(subscriptionId: string, event: string): Promise<number>;
  counts(): { created: number; renewed: number; deleted: number; reauthorized: number };
  renewalsBySubscription(): Map<string, number>;
  /** Every successful PATCH, in order, with the simulator's time it arrived. */
  renewals(): { subscriptionId: string; at: Date; expirationDateTime: string }[];
  /** The user the next consent is given as when the authorize request has no login_hint. */
  consentAs(user: string): void;
  /** The next authorize request is declined by the user (error=access_denied). */
  denyConsent(): void;
  /** Every refresh token issued so far (to `user`, or to anyone) stops working (invalid_grant). */
  revokeRefreshTokens(user?: string): void;
  /** Token requests by grant type. */
  tokenRequests(): Record<string, number>;
  /** Makes every delta and skip token issued so far unknown (the next use is 410). */
  resetDeltaTokens(): void;
  /** Requests seen, for assertions. */
  log: { method: string; path: string; status: number }[];
  close(): Promise<void>;
}

interface StoredMessage {
  raw: Buffer;
  /** Position in the simulator's change sequence (what delta tokens count). */
  seq: number;
  receivedDateTime: string;
}

interface AuthCode {
  clientId: string;
  redirectUri: string;
  challenge: string | undefined;
  challengeMethod: string;
  scope: string[];
  user: string;
  issuedAt: number;
  used: boolean;
}

interface RefreshGrant {
  user: string;
  clientId: string;
  scope: string[];
  issuedAt: number;
  lastUsedAt: number;
  state: 'active' | 'rotated' | 'revoked';
}

const AUTH_CODE_LIFETIME_MS = 10 * 60_000;
const REFRESH_INACTIVITY_MS = 90 * 86_400_000;
const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const b64 = (s: string) => Buffer.from(s).toString('base64url');

export async function startGraphSimulator(
  options: { port?: number; seed?: number } = {},
): Promise<GraphSimulator> {
  const credentials = {
    tenantId: 'sim-tenant',
    clientId: 'sim-client',
    clientSecret: randomBytes(12).toString('hex'),
  };
  const maxExpirationMinutes = 10_080;
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);

  /** Access tokens: app-only ones carry no user. */
  const tokens = new Map<string, { user: string | undefined }>();
  const mailboxes = new Map<string, Map<string, StoredMessage>>();
  const tombstones = new Map<string, { id: string; seq: number; addedSeq: number }[]>();
  let seq = 0;
  const subs = new Map<string, Subscription>();
  const sentMail = new SentMail();
  const faults = new Faults(options.seed);
  const log: GraphSimulator['log'] = [];
  const counters = { created: 0, renewed: 0, deleted: 0, reauthorized: 0 };
  const renewalLog: { subscriptionId: string; at: Date; expirationDateTime: string }[] = [];
  const grantCounts: Record<string, number> = {};
  const codes = new Map<string, AuthCode>();
  const refreshGrants = new Map<string, RefreshGrant>();
  let consentUser = 'admin@contoso.test';
  let denyNext = false;
  const deltaKey = randomBytes(32);
  let deltaGeneration = 1;

  const graphError = (code: string, message: string) => ({
    error: {
      code,
      message,
      innerError: {
        date: now().toISOString().slice(0, 19),
        'request-id': randomUUID(),
        'client-request-id': randomUUID(),
      },
    },
  });
  /** The Microsoft identity platform's error body. */
  const aadError = (error: string, code: number, text: string) => {
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = now().toISOString().replace('T', ' ').slice(0, 19) + 'Z';
    return {
      error,
      error_description: `AADSTS${code}: ${text} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
    };
  };

  /** The subscription, unless it is unknown or has expired (an expired one is gone for good). */
  const live = (id: string): Subscription | undefined => {
    const s = subs.get(id);
    if (s && now().getTime() > Date.parse(s.expirationDateTime)) {
      subs.delete(id);
      return undefined;
    }
    return s;
  };
  const liveSubs = () => [...subs.keys()].map(live).filter((s): s is Subscription => s !== undefined);
  const view = (s: Subscription) => ({
    id: s.id,
    resource: s.resource,
    applicationId: credentials.clientId,
    changeType: s.changeType,
    clientState: s.clientState ?? null,
    notificationUrl: s.notificationUrl,
    lifecycleNotificationUrl: s.lifecycleNotificationUrl ?? null,
    expirationDateTime: s.expirationDateTime,
    creatorId: credentials.clientId,
    includeResourceData: false,
    latestSupportedTlsVersion: 'v1_2',
    encryptionCertificate: null,
    encryptionCertificateId: null,
    notificationUrlAppId: null,
  });

  /** Graph refuses an expiration in the past or beyond the resource's maximum (400 ExtensionError). */
  const expirationProblem = (value: unknown, operation: 'Create' | 'Update'): string | undefined => {
    const at = typeof value === 'string' ? Date.parse(value) : NaN;
    const wrap = (reason: string) =>
      `Operation: ${operation}; Exception: [Status Code: BadRequest; Reason: ${reason}]`;
    if (Number.isNaN(at)) return wrap('The expirationDateTime is not a valid date and time.');
    if (at <= now().getTime()) return wrap('Subscription expiration must be in the future.');
    if (at > now().getTime() + maxExpirationMinutes * 60_000)
      return wrap(`Subscription expiration can only be ${maxExpirationMinutes} minutes in the future.`);
    return undefined;
  };

  const post = async (url: string, body: unknown): Promise<number> => {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      return res.status;
    } catch {
      return 0;
    }
  };

  /** The validation handshake: Graph POSTs ?validationToken=... and expects it back as text/plain within 10 s. */
  const validate = async (endpoint: string): Promise<boolean> => {
    const validationToken = `Validation: ${randomBytes(8).toString('hex')}`;
    return fetch(
      `${endpoint}${endpoint.includes('?') ? '&' : '?'}validationToken=${encodeURIComponent(validationToken)}`,
      { method: 'POST', headers: { 'content-type': 'text/plain' }, signal: AbortSignal.timeout(10_000) },
    )
      .then(
        async (r) =>
          r.status === 200 &&
          (r.headers.get('content-type') ?? '').startsWith('text/plain') &&
          (await r.text()) === validationToken,
      )
      .catch(() => false);
  };

  const notify = async (user: string, id: string) => {
    const targets = liveSubs().filter(
      (s) =>
        s.resource.toLowerCase().includes(`users/${user.toLowerCase()}`) &&
        s.changeType.split(',').some((c) => c.trim() === 'created'),
    );
    await Promise.all(
      targets.map((s) =>
        post(s.notificationUrl, {
          value: [
            {
              subscriptionId: s.id,
              subscriptionExpirationDateTime: s.expirationDateTime,
              changeType: 'created',
              resource: `Users/${user}/Messages/${id}`,
              resourceData: {
                '@odata.type': '#Microsoft.Graph.Message',
                '@odata.id': `Users/${user}/Messages/${id}`,
                id,
              },
              clientState: s.clientState,
              tenantId: credentials.tenantId,
            },
          ],
        }),
      ),
    );
  };

  // ---- delta tokens: opaque, signed, and derived from the change sequence (not the wall clock) ----
  interface DeltaState {
    g: number;
    u: string;
    /** Changes after this sequence number (null: the initial full sync). */
    from: number | null;
    /** ... up to and including this one (the snapshot the round reads). */
    to: number;
    /** Skip tokens: the last sequence number already returned. */
    after?: number;
  }
  const sign = (payload: string) =>
    createHmac('sha256', deltaKey).update(payload).digest('base64url').slice(0, 22);
  const encodeToken = (state: DeltaState) => {
    const payload = b64(JSON.stringify(state));
    return `${payload}.${sign(payload)}`;
  };
  const decodeToken = (token: string, user: string): DeltaState | undefined => {
    const [payload, mac, extra] = token.split('.');
    if (!payload || !mac || extra !== undefined || sign(payload) !== mac) return undefined;
    try {
      const state = JSON.parse(Buffer.from(payload, 'base64url').toString()) as DeltaState;
      return state.g === deltaGeneration && state.u === user ? state : undefined;
    } catch {
      return undefined;
    }
  };
  const deltaItems = (user: string, from: number | null, to: number) => {
    const items: { seq: number; item: Record<string, unknown> }[] = [];
    for (const [id, m] of mailboxes.get(user) ?? [])
      if (m.seq <= to && (from === null || m.seq > from))
        items.push({
          seq: m.seq,
          item: {
            '@odata.type': '#microsoft.graph.message',
            '@odata.etag': `W/"${b64(String(m.seq))}"`,
            id,
            receivedDateTime: m.receivedDateTime,
          },
        });
    if (from !== null)
      for (const t of tombstones.get(user) ?? [])
        if (t.seq > from && t.seq <= to && t.addedSeq <= from)
          items.push({
            seq: t.seq,
            item: { '@odata.type': '#microsoft.graph.message', id: t.id, '@removed': { reason: 'deleted' } },
          });
    return items.sort((a, b) => a.seq - b.seq);
  };

  // ---- delegated OAuth ----
  const delegatedTenant = (tenant: string) =>
    tenant === 'common' || tenant === 'organizations' || tenant === credentials.tenantId;
  const grantedScope = (scope: string[]) =>
    scope
      .filter((s) => !OIDC_SCOPES.has(s))
      .map((s) => (s.includes('://') ? s : `https://graph.microsoft.com/${s}`))
      .join(' ');
  const issueDelegated = (user: string, clientId: string, scope: string[]) => {
    const accessToken = `eyJ0eXAiOiJKV1Qi.${randomBytes(24).toString('base64url')}`;
    tokens.set(accessToken, { user });
    const body: Record<string, unknown> = {
      token_type: 'Bearer',
      scope: grantedScope(scope),
      expires_in: 3599,
      ext_expires_in: 3599,
      access_token: accessToken,
    };
    // The identity platform only issues a refresh token when offline_access was asked for.
    if (scope.includes('offline_access')) {
      const refreshToken = `0.A${randomBytes(48).toString('base64url')}`;
      const at = now().getTime();
      refreshGrants.set(refreshToken, {
        user,
        clientId,
        scope,
        issuedAt: at,
        lastUsedAt: at,
        state: 'active',
      });
      body['refresh_token'] = refreshToken;
    }
    return body;
  };

  type Send = (status: number, body?: unknown, headers?: Record<string, string>) => void;

  async function tokenEndpoint(req: http.IncomingMessage, tenant: string, send: Send) {
    const form = new URLSearchParams((await readBody(req)).toString());
    const grantType = form.get('grant_type') ?? '';
    grantCounts[grantType] = (grantCounts[grantType] ?? 0) + 1;
    if (grantType === 'client_credentials') {
      if (
        tenant !== credentials.tenantId ||
        form.get('client_id') !== credentials.clientId ||
        form.get('client_secret') !== credentials.clientSecret
      ) {
        return send(401, {
          error: 'invalid_client',
          error_description: 'AADSTS7000215: Invalid client secret provided.',
        });
      }
      const token = randomBytes(24).toString('base64url');
      tokens.set(token, { user: undefined });
      return send(200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token });
    }
    if (grantType !== 'authorization_code' && grantType !== 'refresh_token')
      return send(
        400,
        aadError(
          'unsupported_grant_type',
          70003,
          `The app requested an unsupported grant type '${grantType}'.`,
        ),
      );
    if (!delegatedTenant(tenant))
      return send(400, aadError('invalid_request', 90002, `Tenant '${tenant}' not found.`));
    const clientId = form.get('client_id') ?? '';
    if (clientId !== credentials.clientId)
      return send(
        400,
        aadError(
          'unauthorized_client',
          700016,
          `Application with identifier '${clientId}' was not found in the directory '${tenant}'.`,
        ),
      );
    if (form.get('client_secret') !== credentials.clientSecret)
      return send(
        401,
        aadError(
          'invalid_client',
          7000215,
          'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.',
        ),
      );

    if (grantType === 'authorization_code') {
      const code = codes.get(form.get('code') ?? '');
      if (!code || code.clientId !== clientId)
        return send(
          400,
          aadError('invalid_grant', 9002313, 'Invalid request. Request is malformed or invalid.'),
        );
      if (code.used)
        return send(
          400,
          aadError(
            'invalid_grant',
            54005,
            'OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.',
          ),
        );
      if (now().getTime() - code.issuedAt > AUTH_CODE_LIFETIME_MS)
        return send(
          400,
          aadError(
            'invalid_grant',
            70008,
            'The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.',
          ),
        );
      if (form.get('redirect_uri') !== code.redirectUri)
        return send(
          400,
          aadError(
            'invalid_grant',
            500112,
            'The reply address does not match the reply address provided when requesting Authorization code.',
          ),
        );
      if (code.challenge !== undefined) {
        const verifier = form.get('code_verifier');
        if (!verifier)
          return send(
            400,
            aadError(
              'invalid_grant',
              50148,
              'The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.',
            ),
          );
        const derived =
          code.challengeMethod === 'S256'
            ? createHash('sha256').update(verifier).digest('base64url')
            : verifier;
        if (derived !== code.challenge)
          return send(
            400,
            aadError(
              'invalid_grant',
              501481,
              'The Code_Verifier does not match the code_challenge supplied in the authorization request.',
            ),
          );
      }
      code.used = true;
      return send(200, issueDelegated(code.user, clientId, code.scope));
    }

    // refresh_token: rotates; the old one is refused from now on.
    const presented = form.get('refresh_token') ?? '';
    const grant = refreshGrants.get(presented);
    if (!grant || grant.clientId !== clientId)
      return send(
        400,
        aadError('invalid_grant', 9002313, 'Invalid request. Request is malformed or invalid.'),
      );
    const inactive = now().getTime() - grant.lastUsedAt > REFRESH_INACTIVITY_MS;
    if (grant.state === 'revoked' || inactive)
      return send(
        400,
        aadError(
          'invalid_grant',
          700082,
          `The refresh token has expired due to inactivity. The token was issued on ${new Date(grant.issuedAt).toISOString()} and was inactive for 90.00:00:00.`,
        ),
      );
    if (grant.state === 'rotated')
      return send(
        400,
        aadError(
          'invalid_grant',
          70000,
          'Provided grant is invalid or malformed: the refresh token was already redeemed.',
        ),
      );
    grant.state = 'rotated';
    const requested = form.get('scope')?.split(/\s+/).filter(Boolean);
    const scope = requested?.length ? [...new Set([...requested, 'offline_access'])] : grant.scope;
    return send(200, issueDelegated(grant.user, clientId, scope));
  }

  function authorizeEndpoint(url: URL, tenant: string, send: Send) {
    const q = url.searchParams;
    const clientId = q.get('client_id') ?? '';
    if (!delegatedTenant(tenant))
      return send(400, aadError('invalid_request', 90002, `Tenant '${tenant}' not found.`));
    if (clientId !== credentials.clientId)
      return send(
        400,
        aadError(
          'unauthorized_client',
          700016,
          `Application with identifier '${clientId}' was not found in the directory '${tenant}'.`,
        ),
      );
    const redirectUri = q.get('redirect_uri') ?? '';
    let redirect: URL;
    try {
      redirect = new URL(redirectUri);
      if (redirect.protocol !== 'http:' && redirect.protocol !== 'https:') throw new Error('scheme');
    } catch {
      return send(
        400,
        aadError(
          'invalid_request',
          50011,
          `The redirect URI '${redirectUri}' specified in the request does not match the redirect URIs configured for the application '${clientId}'.`,
        ),
      );
    }
    const state = q.get('state');
    const back = (params: Record<string, string>) => {
      for (const [k, v] of Object.entries(params)) redirect.searchParams.set(k, v);
      if (state !== null) redirect.searchParams.set('state', state);
      return send(302, undefined, { location: redirect.toString() });
    };
    if (q.get('response_type') !== 'code')
      return back({
        error: 'unsupported_response_type',
        error_description: `AADSTS700054: response_type '${q.get('response_type') ?? ''}' is not enabled for the application.`,
      });
    const scope = (q.get('scope') ?? '').split(/\s+/).filter(Boolean);
    if (!scope.length)
      return back({
        error: 'invalid_request',
        error_description: "AADSTS900144: The request body must contain the following parameter: 'scope'.",
      });
    const challenge = q.get('code_challenge') ?? undefined;
    const challengeMethod = q.get('code_challenge_method') ?? 'plain';
    if (challenge !== undefined && challengeMethod !== 'S256' && challengeMethod !== 'plain')
      return back({
        error: 'invalid_request',
        error_description:
          'AADSTS501491: Invalid size of Code_Challenge parameter or unsupported code_challenge_method.',
      });
    if (denyNext) {
      denyNext = false;
      return back({
        error: 'access_denied',
        error_description: 'AADSTS65004: User declined to consent to access the app.',
      });
    }
    const code = `1.A${randomBytes(32).toString('base64url')}`;
    codes.set(code, {
      clientId,
      redirectUri,
      challenge,
      challengeMethod,
      scope,
      user: q.get('login_hint') || consentUser,
      issuedAt: now().getTime(),
      used: false,
    });
    return back({ code });
  }

  /**
   * user: sendMail with MIME content: the body is the base64 of the whole message (line breaks
   * allowed). Graph answers 202 Accepted with no body, delivery follows; a body that is not base64 of
   * a message is 400 ErrorMimeContentInvalidBase64String, one over 4 MB is 413. The JSON form is not
   * simulated.
   */
  async function sendMail(req: http.IncomingMessage, user: string, send: Send) {
    const bytes = await readBody(req);
    // Graph's request limit (4 MB): larger requests are refused whole.
    if (bytes.length > 4 * 1024 * 1024)
      return send(413, graphError('RequestEntityTooLarge', 'The maximum request length supported is 4MB.'));
    const body = bytes.toString('latin1');
    if (!String(req.headers['content-type'] ?? '').startsWith('text/plain'))
      return send(400, graphError('BadRequest', 'The simulator takes sendMail with MIME content only.'));
    const base64 = body.replace(/\s+/g, '');
    const raw = Buffer.from(base64, 'base64');
    // Node decodes leniently; Graph refuses what is not base64, or does not decode to a message.
    const isBase64 = /^[A-Za-z0-9+/]+={0,2}$/.test(base64) && base64.length % 4 === 0;
    if (!isBase64 || !/^[!-9;-~]+:/.test(raw.toString('latin1')))
      return send(
        400,
        graphError('ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.'),
      );
    sentMail.record(`AAMk${randomBytes(12).toString('base64url')}`, { user, raw, at: now() });
    return send(202, undefined, { 'request-id': randomUUID() });
  }

  /** List messages, by the one filter Relaydesk asks for: internetMessageId eq '<id>' (received or sent). */
  function listMessages(url: URL, user: string, send: Send) {
    const param = url.searchParams.get('$filter');
    const filter = /^internetMessageId eq '((?:[^']|'')*)'$/i.exec((param ?? '').trim());
    if (!filter)
      return send(
        400,
        graphError(
          'BadRequest',
          param === null
            ? 'The simulator lists messages by internetMessageId only.'
            : 'Invalid filter clause',
        ),
      );
    const wanted = filter[1]!.replace(/''/g, "'");
    const received = [...(mailboxes.get(user.toLowerCase()) ?? [])]
      .filter(([, m]) => headerOf(m.raw, 'Message-ID') === wanted)
      .map(([id]) => id);
    const select = url.searchParams
      .get('$select')
      ?.split(',')
      .map((f) => f.trim());
    return send(200, {
      '@odata.context': `https://graph.microsoft.com/v1.0/$metadata#users('${user}')/messages${select ? `(${select.join(',')})` : ''}`,
      value: [...received, ...sentMail.idsByMessageId(user, wanted)].map((id) =>
        select && !select.includes('internetMessageId') ? { id } : { id, internetMessageId: wanted },
      ),
    });
  }

  function delta(req: http.IncomingMessage, url: URL, user: string, folder: string, send: Send) {
    const f = folder.replace(/^\('(.*)'\)$/, '$1').replace(/^\((.*)\)$/, '$1');
    if (f.toLowerCase() !== 'inbox')
      return send(404, graphError('ErrorItemNotFound', 'The specified object was not found in the store.'));
    const skip = url.searchParams.get('$skiptoken');
    const deltaToken = url.searchParams.get('$deltatoken');
    let state: DeltaState;
    if (skip !== null || deltaToken !== null) {
      const decoded = decodeToken(skip ?? deltaToken!, user);
      if (!decoded)
        return send(
          410,
          graphError(
            'SyncStateNotFound',
            'The sync state generation is not found. The delta token is expired and data must be synchronized again.',
          ),
        );
      state = skip !== null ? decoded : { g: deltaGeneration, u: user, from: decoded.to, to: seq };
    } else {
      state = { g: deltaGeneration, u: user, from: null, to: seq };
    }
    const preferred = /odata\.maxpagesize=(\d+)/i.exec(String(req.headers['prefer'] ?? ''))?.[1];
    const pageSize = Math.max(1, Math.min(1000, preferred ? Number(preferred) : 10));
    const rest = deltaItems(user, state.from, state.to).filter(
      (i) => state.after === undefined || i.seq > state.after,
    );
    const page = rest.slice(0, pageSize);
    const link = `${base()}${url.pathname}`;
    const body: Record<string, unknown> = {
      '@odata.context': `https://graph.microsoft.com/v1.0/$metadata#Collection(message)`,
    };
    if (rest.length > pageSize)
      body['@odata.nextLink'] =
        `${link}?$skiptoken=${encodeToken({ ...state, after: page[page.length - 1]!.seq })}`;
    else
      body['@odata.deltaLink'] =
        `${link}?$deltatoken=${encodeToken({ g: deltaGeneration, u: user, from: null, to: state.to })}`;
    body['value'] = page.map((i) => i.item);
    return send(200, body, preferred ? { 'preference-applied': `odata.maxpagesize=${pageSize}` } : {});
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let path = url.pathname;
    const method = req.method ?? 'GET';
    const send: Send = (status, body, headers = {}) => {
      log.push({ method, path: url.pathname, status });
      if (body === undefined) {
        res.writeHead(status, headers).end();
      } else if (Buffer.isBuffer(body)) {
        res.writeHead(status, { 'content-type': 'message/rfc822', ...headers }).end(body);
      } else {
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
      }
    };
    try {
      if (path.startsWith('/_control/')) return await control(req, path, send);

      faults.observe(method, path, now().getTime());
      const fault = await faults.take(method, path);
      if (fault) {
        const code =
          fault.status === 429
            ? 'TooManyRequests'
            : fault.status === 404
              ? 'ResourceNotFound'
              : fault.status === 401
                ? 'InvalidAuthenticationToken'
                : 'ServiceUnavailable';
        if (fault.retryAfter) faults.noteRetryAfter(method, path, now().getTime() + fault.retryAfter * 1000);
        return send(
          fault.status,
          graphError(code, `simulated ${fault.status}`),
          fault.retryAfter ? { 'retry-after': String(fault.retryAfter) } : {},
        );
      }

      const oauthMatch = /^\/token\/([^/]+)\/oauth2\/v2\.0\/(token|authorize)$/.exec(path);
      if (oauthMatch) {
        const tenant = decodeURIComponent(oauthMatch[1]!);
        if (oauthMatch[2] === 'token' && method === 'POST') return await tokenEndpoint(req, tenant, send);
        if (oauthMatch[2] === 'authorize' && method === 'GET') return authorizeEndpoint(url, tenant, send);
        return send(405, aadError('invalid_request', 900561, 'The endpoint only accepts POST requests.'));
      }

      if (!path.startsWith('/v1.0/'))
        return send(404, graphError('BadRequest', `Resource not found for the segment '${path}'.`));
      const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
      const caller = bearer ? tokens.get(bearer) : undefined;
      if (!caller)
        return send(401, graphError('InvalidAuthenticationToken', 'Access token is empty or invalid.'));

      if (path === '/v1.0/me' || path.startsWith('/v1.0/me/')) {
        if (!caller.user)
          return send(
            400,
            graphError('BadRequest', '/me request is only valid with delegated authentication flow.'),
          );
        if (path === '/v1.0/me' && method === 'GET')
          return send(200, {
            '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#users/$entity',
            id: createHash('sha256').update(caller.user.toLowerCase()).digest('hex').slice(0, 32),
            userPrincipalName: caller.user,
            mail: caller.user,
            displayName: caller.user.split('@')[0],
          });
        path = `/v1.0/users/${encodeURIComponent(caller.user)}${path.slice('/v1.0/me'.length)}`;
      }

      if (path === '/v1.0/subscriptions' && method === 'GET')
        return send(200, {
          '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#subscriptions',
          value: liveSubs().map(view),
        });
      if (path === '/v1.0/subscriptions' && method === 'POST') {
        const body = JSON.parse((await readBody(req)).toString() || '{}') as Partial<Subscription>;
        if (!body.notificationUrl || !body.resource || !body.expirationDateTime || !body.changeType)
          return send(
            400,
            graphError(
              'InvalidRequest',
              'The request is missing one of changeType, notificationUrl, resource or expirationDateTime.',
            ),
          );
        const problem = expirationProblem(body.expirationDateTime, 'Create');
        if (problem) return send(400, graphError('ExtensionError', problem));
        const endpoints = [body.notificationUrl];
        if (body.lifecycleNotificationUrl && body.lifecycleNotificationUrl !== body.notificationUrl)
          endpoints.push(body.lifecycleNotificationUrl);
        for (const endpoint of endpoints)
          if (!(await validate(endpoint)))
            return send(
              400,
              graphError(
                'ValidationError',
                'Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.',
              ),
            );
        const sub: Subscription = {
          id: randomUUID(),
          resource: body.resource,
          changeType: body.changeType,
          notificationUrl: body.notificationUrl,
          lifecycleNotificationUrl: body.lifecycleNotificationUrl,
          clientState: body.clientState,
          expirationDateTime: body.expirationDateTime,
          reauthorizationRequired: false,
        };
        subs.set(sub.id, sub);
        counters.created++;
        return send(201, {
          '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity',
          ...view(sub),
        });
      }
      const subMatch = /^\/v1\.0\/subscriptions\/([^/]+)(\/reauthorize)?$/.exec(path);
      if (subMatch) {
        const id = decodeURIComponent(subMatch[1]!);
        const sub = live(id);
        if (!sub) return send(404, graphError('ResourceNotFound', `The object '${id}' doesn't exist.`));
        if (subMatch[2]) {
          if (method !== 'POST') return send(405, graphError('BadRequest', 'Only POST is allowed.'));
          sub.reauthorizationRequired = false;
          counters.reauthorized++;
          return send(204);
        }
        if (method === 'PATCH') {
          const body = JSON.parse((await readBody(req)).toString() || '{}') as {
            expirationDateTime?: string;
            notificationUrl?: string;
          };
          if (body.expirationDateTime !== undefined) {
            const problem = expirationProblem(body.expirationDateTime, 'Update');
            if (problem) return send(400, graphError('ExtensionError', problem));
          }
          if (body.notificationUrl && body.notificationUrl !== sub.notificationUrl) {
            if (!(await validate(body.notificationUrl)))
              return send(
                400,
                graphError(
                  'ValidationError',
                  'Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.',
                ),
              );
            sub.notificationUrl = body.notificationUrl;
          }
          if (body.expirationDateTime !== undefined) sub.expirationDateTime = body.expirationDateTime;
          sub.reauthorizationRequired = false;
          counters.renewed++;
          renewalLog.push({ subscriptionId: sub.id, at: now(), expirationDateTime: sub.expirationDateTime });
          return send(200, {
            '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity',
            ...view(sub),
          });
        }
        if (method === 'DELETE') {
          subs.delete(sub.id);
          counters.deleted++;
          return send(204);
        }
        if (method === 'GET')
          return send(200, {
            '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity',
            ...view(sub),
          });
      }
      const userMatch = /^\/v1\.0\/users\/([^/]+)\/(sendMail|messages)$/.exec(path);
      if (userMatch?.[2] === 'sendMail' && method === 'POST')
        return await sendMail(req, decodeURIComponent(userMatch[1]!), send);
      if (userMatch?.[2] === 'messages' && method === 'GET')
        return listMessages(url, decodeURIComponent(userMatch[1]!), send);
      const msgMatch = /^\/v1\.0\/users\/([^/]+)\/messages\/([^/]+?)(\/\$value)?$/.exec(path);
      if (msgMatch && method === 'GET') {
        const id = decodeURIComponent(msgMatch[2]!);
        const msg = mailboxes.get(decodeURIComponent(msgMatch[1]!).toLowerCase())?.get(id);
        if (!msg)
          return send(
            404,
            graphError('ErrorItemNotFound', 'The specified object was not found in the store.'),
          );
        return msgMatch[3]
          ? send(200, msg.raw)
          : send(200, { id, receivedDateTime: msg.receivedDateTime, size: msg.raw.length });
      }
      const deltaMatch =
        /^\/v1\.0\/users\/([^/]+)\/mailFolders(?:\/([^/]+)|(\([^/]*\)))\/messages\/delta$/i.exec(path);
      if (deltaMatch && method === 'GET')
        return delta(
          req,
          url,
          decodeURIComponent(deltaMatch[1]!).toLowerCase(),
          decodeURIComponent(deltaMatch[2] ?? deltaMatch[3]!),
          send,
        );
      return send(404, graphError('BadRequest', `Resource not found for the segment '${path}'.`));
    } catch (err) {
      return send(500, graphError('InternalServerError', (err as Error).message));
    }
  });

  async function control(req: http.IncomingMessage, path: string, send: Send) {
    const json = async () => JSON.parse((await readBody(req)).toString() || '{}') as Record<string, unknown>;
    const deliverMatch = /^\/_control\/users\/([^/]+)\/messages$/.exec(path);
    if (deliverMatch && req.method === 'POST') {
      const id = await sim.deliver(decodeURIComponent(deliverMatch[1]!), await readBody(req));
      return send(201, { id });
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
    const lifecycleMatch = /^\/_control\/subscriptions\/([^/]+)\/lifecycle$/.exec(path);
    if (lifecycleMatch && req.method === 'POST') {
      const event = (await json())['event'];
      if (typeof event !== 'string' || !LIFECYCLE_EVENTS.includes(event))
        return send(400, { error: `event must be one of ${LIFECYCLE_EVENTS.join(', ')}` });
      const id = decodeURIComponent(lifecycleMatch[1]!);
      if (!live(id)) return send(404, { error: 'unknown subscription' });
      return send(202, { status: await sim.lifecycle(id, event) });
    }
    return send(404, { error: 'unknown control route' });
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const base = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const sim: GraphSimulator = {
    url: base(),
    apiBaseUrl: `${base()}/v1.0`,
    tokenUrl: `${base()}/token`,
    authorizeUrl: `${base()}/token/common/oauth2/v2.0/authorize`,
    delegatedTokenUrl: `${base()}/token/common/oauth2/v2.0/token`,
    credentials,
    maxExpirationMinutes,
    log,
    now,
    advance(seconds) {
      offsetMs += seconds * 1000;
    },
    async deliver(user, raw, opts = {}) {
      const id = `AAMk${randomBytes(12).toString('base64url')}`;
      const key = user.toLowerCase();
      const box = mailboxes.get(key) ?? new Map<string, StoredMessage>();
      box.set(id, { raw, seq: ++seq, receivedDateTime: now().toISOString().slice(0, 19) + 'Z' });
      mailboxes.set(key, box);
      if (opts.notify !== false) await notify(user, id);
      return id;
    },
    remove(user, id) {
      const key = user.toLowerCase();
      const msg = mailboxes.get(key)?.get(id);
      if (!msg) return;
      mailboxes.get(key)!.delete(id);
      const list = tombstones.get(key) ?? [];
      list.push({ id, seq: ++seq, addedSeq: msg.seq });
      tombstones.set(key, list);
    },
    sent: () => sentMail.all(),
    clearSent() {
      sentMail.clear();
    },
    fault(f) {
      faults.add(f);
    },
    clearFaults() {
      faults.clear();
    },
    retryAfterViolations: () => faults.retryAfterViolations(),
    subscriptions: () => liveSubs().map((s) => ({ ...s })),
    seedSubscription(seed) {
      const id = seed.id ?? randomUUID();
      subs.set(id, {
        id,
        resource: seed.resource,
        changeType: seed.changeType ?? 'created',
        notificationUrl: seed.notificationUrl,
        lifecycleNotificationUrl: seed.lifecycleNotificationUrl,
        clientState: seed.clientState,
        expirationDateTime: seed.expirationDateTime,
        reauthorizationRequired: false,
      });
      return id;
    },
    async lifecycle(subscriptionId, event) {
      const s = live(subscriptionId);
      if (!s) return 0;
      if (event === 'subscriptionRemoved') subs.delete(s.id);
      if (event === 'reauthorizationRequired') s.reauthorizationRequired = true;
      return post(s.lifecycleNotificationUrl ?? s.notificationUrl, {
        value: [
          {
            subscriptionId: s.id,
            subscriptionExpirationDateTime: s.expirationDateTime,
            tenantId: credentials.tenantId,
            clientState: s.clientState,
            lifecycleEvent: event,
          },
        ],
      });
    },
    counts: () => ({ ...counters }),
    renewalsBySubscription() {
      const by = new Map<string, number>();
      for (const r of renewalLog) by.set(r.subscriptionId, (by.get(r.subscriptionId) ?? 0) + 1);
      return by;
    },
    renewals: () => renewalLog.map((r) => ({ ...r, at: new Date(r.at) })),
    consentAs(user) {
      consentUser = user;
    },
    denyConsent() {
      denyNext = true;
    },
    revokeRefreshTokens(user) {
      for (const g of refreshGrants.values())
        if (g.state === 'active' && (user === undefined || g.user.toLowerCase() === user.toLowerCase()))
          g.state = 'revoked';
    },
    tokenRequests: () => ({ ...grantCounts }),
    resetDeltaTokens() {
      deltaGeneration++;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return sim;
}
