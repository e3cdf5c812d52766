// A local Bot Framework simulator (Microsoft Teams side) for tests and `relaydesk demo`. It follows the
// documented connector authentication and REST API for what Relaydesk uses:
//   GET  /v1/.well-known/openidconfiguration              OpenID metadata (issuer, jwks_uri, RS256)
//   GET  /v1/.well-known/keys                             the JWKS, each key with its `endorsements` (channel ids)
//   POST /botframework.com/oauth2/v2.0/token              client credentials for a registered bot
//                                                         (scope https://api.botframework.com/.default)
//   POST {serviceUrl}v3/conversations/{id}/activities[/{activityId}]   proactive sends and replies:
//                                                         recorded in sent(), 201 {id}
// plus the "channel" side: activities and invokes from a Teams user, signed as the connector signs
// them (RS256, issuer https://api.botframework.com, audience the bot's app id, the `serviceurl`
// claim), or forged in one way (wrong issuer, audience, signature, expired, unknown key, a key not
// endorsed for the channel, `alg: none`, another serviceUrl) for the receiver to refuse.
// Connector faults: the next sends answer 401, 403 (with the documented error code), 404, 412, 429
// (Retry-After) or 5xx with the documented ErrorResponse body `{"error": {"code", "message"}}`.
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { type Fault, Faults } from './faults.ts';

export const BOT_FRAMEWORK_ISSUER = 'https://api.botframework.com';
export const BOT_FRAMEWORK_SCOPE = 'https://api.botframework.com/.default';

/** The ways an activity's token can be wrong (`none`: no Authorization header at all). */
export const FORGERIES = [
  'none',
  'wrong-issuer',
  'wrong-audience',
  'bad-signature',
  'expired',
  'unknown-key',
  'no-endorsement',
  'alg-none',
  'serviceurl-mismatch',
] as const;
export type Forgery = (typeof FORGERIES)[number];

/** The documented error codes of the connector by status (Teams: "Status codes from bot conversational APIs"). */
const DEFAULT_CODES: Record<number, string> = {
  400: 'BadArgument',
  401: 'BotNotRegistered',
  403: 'BotNotInConversationRoster',
  404: 'ConversationNotFound',
  412: 'PreconditionFailed',
  413: 'MessageSizeTooBig',
  429: 'Throttled',
  500: 'ServiceError',
  502: 'ServiceError',
  503: 'ServiceUnavailable',
  504: 'GatewayTimeout',
};

export interface ConnectorFault {
  /** Only sends to this conversation (default: any). */
  conversationId?: string;
  status: number;
  /** The ErrorResponse code (default: the documented one for the status). */
  code?: string;
  retryAfter?: number;
  /** How many sends it applies to (default 1). */
  times?: number;
}

export type Activity = Record<string, any>;

export interface ConnectorSend {
  conversationId: string;
  /** Set for a reply to an activity (POST .../activities/{activityId}). */
  replyToId: string | undefined;
  /** The app id the bearer token was issued to. */
  appId: string;
  activity: Activity;
  /** The simulator's wall-clock time of arrival. */
  at: Date;
}

export interface TeamsUser {
  id: string;
  name: string;
  aadObjectId: string;
}

export interface BotFrameworkSimulator {
  url: string;
  openIdMetadataUrl: string;
  jwksUrl: string;
  tokenUrl: string;
  /** What activities carry as serviceUrl: the simulated connector (with Teams' trailing slash). */
  serviceUrl: string;
  /** The Entra tenant the simulated users belong to. */
  entraTenantId: string;
  /** The bot registered at start. */
  bot: { appId: string; appPassword: string };
  /** Registers another bot (another tenant's). */
  addBot(): { appId: string; appPassword: string };
  /** A Teams user (new ids each call unless given). */
  user(overrides?: Partial<TeamsUser>): TeamsUser;
  /** A message activity from `user` to the bot in their personal chat (or the conversation given). */
  message(
    user: TeamsUser,
    text: string,
    overrides?: { appId?: string; conversation?: Activity; [key: string]: unknown },
  ): Activity;
  /** An Action.Execute invoke (adaptiveCard/action) from `user`. */
  actionExecute(
    user: TeamsUser,
    verb: string,
    data: Record<string, unknown>,
    overrides?: { appId?: string; conversation?: Activity },
  ): Activity;
  /**
   * The headers a connector sends with `activity` (a signed token, or a forged one), its times on the
   * real clock unless `at` says otherwise.
   */
  signedHeaders(
    activity: Activity,
    options?: { forge?: Forgery; appId?: string; at?: Date },
  ): Promise<Record<string, string>>;
  /** Posts `activity` to the bot's endpoint as the connector would. */
  deliver(
    endpoint: string,
    activity: Activity,
    options?: { forge?: Forgery; appId?: string; at?: Date },
  ): Promise<{ status: number; body: any }>;
  /** Adds a new signing key (a new kid) to the JWKS and signs with it from now on. Returns its kid. */
  rotateKey(): Promise<string>;
  /** GETs of the JWKS so far. */
  jwksRequests(): number;
  /** Token requests so far (successful or not). */
  tokenRequests(): number;
  sent(): ConnectorSend[];
  clearSent(): void;
  fault(fault: ConnectorFault): void;
  clearFaults(): void;
  log: { method: string; path: string; status: number }[];
  close(): Promise<void>;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
  endorsements: string[];
}

async function makeKey(endorsements: string[]): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomBytes(12).toString('base64url');
  const jwk = { ...(await exportJWK(publicKey)), kid, use: 'sig', kty: 'RSA' };
  return { kid, privateKey, jwk, endorsements };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

export async function startBotFrameworkSimulator(
  options: { port?: number; entraTenantId?: string } = {},
): Promise<BotFrameworkSimulator> {
  const bots = new Map<string, string>();
  const tokens = new Map<string, { appId: string; expiresAt: number }>();
  const keys: SigningKey[] = [await makeKey(['msteams', 'skype', 'webchat'])];
  // In the JWKS, but endorsed for another channel only: a token signed with it is not for Teams.
  const otherChannelKey = await makeKey(['webchat']);
  // Never published.
  const strayKey = await makeKey(['msteams']);
  let current = keys[0]!;
  const faults = new Faults();
  const sentLog: ConnectorSend[] = [];
  const log: BotFrameworkSimulator['log'] = [];
  let jwksCount = 0;
  let tokenCount = 0;
  const entraTenantId = options.entraTenantId ?? randomUUID();

  const addBot = () => {
    const appId = randomUUID();
    const appPassword = randomBytes(24).toString('base64url');
    bots.set(appId, appPassword);
    return { appId, appPassword };
  };
  const bot = addBot();

  const readBody = (req: http.IncomingMessage) =>
    new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });

  let base = '';
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      log.push({ method, path: url.pathname, status });
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(body === undefined ? '' : JSON.stringify(body));
    };
    try {
      if (method === 'GET' && url.pathname === '/v1/.well-known/openidconfiguration') {
        return send(200, {
          issuer: BOT_FRAMEWORK_ISSUER,
          authorization_endpoint: `${base}/v1/.well-known/authorize`,
          jwks_uri: `${base}/v1/.well-known/keys`,
          id_token_signing_alg_values_supported: ['RS256'],
          token_endpoint_auth_methods_supported: ['private_key_jwt'],
        });
      }
      if (method === 'GET' && url.pathname === '/v1/.well-known/keys') {
        jwksCount++;
        return send(200, {
          keys: [...keys, otherChannelKey].map((k) => ({ ...k.jwk, endorsements: k.endorsements })),
        });
      }
      if (method === 'POST' && url.pathname === '/botframework.com/oauth2/v2.0/token') {
        tokenCount++;
        const form = new URLSearchParams(await readBody(req));
        if (form.get('grant_type') !== 'client_credentials')
          return send(400, {
            error: 'unsupported_grant_type',
            error_description: 'AADSTS70003: The app requested an unsupported grant type.',
          });
        const appId = form.get('client_id') ?? '';
        if (!bots.has(appId) || bots.get(appId) !== form.get('client_secret'))
          return send(401, {
            error: 'invalid_client',
            error_description: 'AADSTS7000215: Invalid client secret provided.',
          });
        if (form.get('scope') !== BOT_FRAMEWORK_SCOPE)
          return send(400, {
            error: 'invalid_scope',
            error_description: 'AADSTS70011: The scope is not valid.',
          });
        const token = randomBytes(32).toString('base64url');
        tokens.set(token, { appId, expiresAt: Date.now() + 3600_000 });
        return send(200, {
          token_type: 'Bearer',
          expires_in: 3599,
          ext_expires_in: 3599,
          access_token: token,
        });
      }
      const m = /^\/amer\/v3\/conversations\/([^/]+)\/activities(?:\/([^/]+))?$/.exec(url.pathname);
      if (m && method === 'POST') {
        const auth = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
        const grant = auth ? tokens.get(auth) : undefined;
        if (!grant || grant.expiresAt < Date.now())
          return send(401, { message: 'Authorization has been denied for this request.' });
        const conversationId = decodeURIComponent(m[1]!);
        const fault = (await faults.take(method, `/conversations/${conversationId}/`)) as
          (Fault & { status: number; code?: string }) | undefined;
        if (fault) {
          const code = fault.code ?? DEFAULT_CODES[fault.status] ?? 'ServiceError';
          const headers: Record<string, string> = {};
          if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
          return send(fault.status, { error: { code, message: `simulated ${code}` } }, headers);
        }
        let activity: Activity;
        try {
          activity = JSON.parse(await readBody(req)) as Activity;
        } catch {
          return send(400, { error: { code: 'BadArgument', message: 'The body is not JSON' } });
        }
        if (!activity || typeof activity !== 'object' || typeof activity['type'] !== 'string')
          return send(400, { error: { code: 'BadArgument', message: 'Activity type is required' } });
        sentLog.push({
          conversationId,
          replyToId: m[2] ? decodeURIComponent(m[2]) : undefined,
          appId: grant.appId,
          activity,
          at: new Date(),
        });
        return send(201, { id: `${Date.now()}${sentLog.length}` });
      }
      return send(404, { error: { code: 'NotFound', message: `no route ${method} ${url.pathname}` } });
    } catch (err) {
      return send(500, { error: { code: 'ServiceError', message: (err as Error).message } });
    }
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const serviceUrl = `${base}/amer/`;

  const user = (overrides: Partial<TeamsUser> = {}): TeamsUser => ({
    id: `29:${randomBytes(16).toString('base64url')}`,
    name: 'Megan Bowen',
    aadObjectId: randomUUID(),
    ...overrides,
  });

  const activityFrom = (
    who: TeamsUser,
    fields: Activity,
    overrides: { appId?: string; conversation?: Activity; [key: string]: unknown } = {},
  ): Activity => {
    const { appId = bot.appId, conversation, ...rest } = overrides;
    return {
      id: randomUUID(),
      timestamp: new Date().toISOString(),
      serviceUrl,
      channelId: 'msteams',
      from: { id: who.id, name: who.name, aadObjectId: who.aadObjectId },
      conversation: conversation ?? {
        conversationType: 'personal',
        tenantId: entraTenantId,
        id: `a:${Buffer.from(`${who.id}|${appId}`).toString('base64url')}`,
      },
      recipient: { id: `28:${appId}`, name: 'Relaydesk' },
      channelData: { tenant: { id: entraTenantId } },
      ...fields,
      ...rest,
    };
  };

  const signedHeaders: BotFrameworkSimulator['signedHeaders'] = async (
    activity,
    opts = {},
  ): Promise<Record<string, string>> => {
    const forge = opts.forge;
    if (forge === 'none') return { 'content-type': 'application/json' };
    const appId = opts.appId ?? (String(activity['recipient']?.id ?? '').replace(/^28:/, '') || bot.appId);
    const nowSeconds = Math.floor((opts.at?.getTime() ?? Date.now()) / 1000);
    const claims = {
      serviceurl:
        forge === 'serviceurl-mismatch' ? 'https://smba.example.invalid/emea/' : activity['serviceUrl'],
    };
    if (forge === 'alg-none') {
      const payload = {
        ...claims,
        iss: BOT_FRAMEWORK_ISSUER,
        aud: appId,
        nbf: nowSeconds - 5,
        exp: nowSeconds + 3600,
      };
      return {
        'content-type': 'application/json',
        authorization: `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`,
      };
    }
    const key = forge === 'unknown-key' ? strayKey : forge === 'no-endorsement' ? otherChannelKey : current;
    const expired = forge === 'expired';
    let token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: key.kid, x5t: key.kid, typ: 'JWT' })
      .setIssuer(forge === 'wrong-issuer' ? 'https://sts.windows.net/botframework/' : BOT_FRAMEWORK_ISSUER)
      .setAudience(forge === 'wrong-audience' ? randomUUID() : appId)
      .setNotBefore(expired ? nowSeconds - 7200 : nowSeconds - 5)
      .setExpirationTime(expired ? nowSeconds - 600 : nowSeconds + 3600)
      .sign(key.privateKey);
    if (forge === 'bad-signature') {
      const [h, p, s] = token.split('.');
      const sig = Buffer.from(s!, 'base64url');
      sig[10] = sig[10]! ^ 0xff;
      token = `${h}.${p}.${sig.toString('base64url')}`;
    }
    return { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  };

  const sim: BotFrameworkSimulator = {
    url: base,
    openIdMetadataUrl: `${base}/v1/.well-known/openidconfiguration`,
    jwksUrl: `${base}/v1/.well-known/keys`,
    tokenUrl: `${base}/botframework.com/oauth2/v2.0/token`,
    serviceUrl,
    entraTenantId,
    bot,
    addBot,
    user,
    message: (who, text, overrides) =>
      activityFrom(who, { type: 'message', text, textFormat: 'plain' }, overrides),
    actionExecute: (who, verb, data, overrides) =>
      activityFrom(
        who,
        {
          type: 'invoke',
          name: 'adaptiveCard/action',
          value: { action: { type: 'Action.Execute', id: randomUUID(), verb, data }, trigger: 'manual' },
        },
        overrides,
      ),
    signedHeaders,
    async deliver(endpoint, activity, opts) {
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: await signedHeaders(activity, opts),
        body: JSON.stringify(activity),
      });
      const text = await res.text();
      let body: unknown = text;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        // not JSON
      }
      return { status: res.status, body };
    },
    async rotateKey() {
      current = await makeKey(['msteams', 'skype', 'webchat']);
      keys.push(current);
      return current.kid;
    },
    jwksRequests: () => jwksCount,
    tokenRequests: () => tokenCount,
    sent: () => [...sentLog],
    clearSent() {
      sentLog.length = 0;
    },
    fault(f) {
      const fault: Fault & { code?: string } = {
        pathPrefix:
          f.conversationId === undefined ? '/conversations/' : `/conversations/${f.conversationId}/`,
        method: 'POST',
        status: f.status,
        times: f.times ?? 1,
        ...(f.retryAfter === undefined ? {} : { retryAfter: f.retryAfter }),
        ...(f.code === undefined ? {} : { code: f.code }),
      };
      faults.add(fault);
    },
    clearFaults() {
      faults.clear();
    },
    log,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return sim;
}
