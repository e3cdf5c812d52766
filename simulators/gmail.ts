// A local Gmail simulator (tests, benchmarks, `relaydesk demo`), following the public API:
//   POST /token                                  refresh-token grant (invalid_grant when revoked)
//   GET  /oauth2/v3/certs                        the JWKS that signs push tokens
//   GET  /gmail/v1/users/{u}/profile             {emailAddress, historyId}
//   POST /gmail/v1/users/{u}/watch               {historyId, expiration}
//   GET  /gmail/v1/users/{u}/history             messagesAdded since startHistoryId (404 when too old)
//   GET  /gmail/v1/users/{u}/messages            list
//   GET  /gmail/v1/users/{u}/messages/{id}?format=raw
// plus push(): a Pub/Sub push with an RS256 OIDC token signed by the simulator's key (or a wrong
// one, for tests), and fault injection like the Graph simulator's.
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { type Fault, Faults } from './faults.ts';

interface StoredMessage {
  id: string;
  raw: Buffer;
  historyId: number;
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

export interface GmailSimulator {
  url: string;
  apiBaseUrl: string;
  tokenUrl: string;
  jwksUrl: string;
  credentials: { clientId: string; clientSecret: string; refreshToken: string };
  deliver(user: string, raw: Buffer): string;
  /** Sends a push for the user's current history id to `endpoint`; returns the HTTP status. */
  push(endpoint: string, user: string, options: PushOptions): Promise<number>;
  /** The OIDC token a push carries (what push() sends as `Authorization: Bearer`). */
  pushToken(options: PushOptions): Promise<string>;
  /** The body a push carries: the Pub/Sub envelope around the user's current history id. */
  pushBody(user: string): {
    message: { data: string; messageId: string; publishTime: string };
    subscription: string;
  };
  /** Makes every history id before the current one too old (history.list answers 404). */
  expireHistory(user: string): void;
  revokeRefreshToken(): void;
  /** The next refresh answers with a new refresh token. */
  rotateRefreshTokenOnce(): string;
  fault(fault: Fault): void;
  log: { method: string; path: string; status: number }[];
  close(): Promise<void>;
}

const gmailError = (code: number, status: string, message: string) => ({
  error: { code, message, status, errors: [{ message, domain: 'global', reason: status }] },
});

export async function startGmailSimulator(): Promise<GmailSimulator> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const foreign = await generateKeyPair('RS256');
  const kid = randomBytes(8).toString('hex');
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const credentials = {
    clientId: 'sim-client.apps.googleusercontent.com',
    clientSecret: randomBytes(12).toString('hex'),
    refreshToken: `1//${randomBytes(16).toString('base64url')}`,
  };
  let revoked = false;
  let rotateTo: string | undefined;
  const tokens = new Set<string>();
  const boxes = new Map<string, { messages: StoredMessage[]; historyId: number; minHistoryId: number }>();
  const faults = new Faults();
  const log: GmailSimulator['log'] = [];
  const box = (user: string) => {
    const key = user.toLowerCase();
    let b = boxes.get(key);
    if (!b) {
      b = { messages: [], historyId: 1000, minHistoryId: 0 };
      boxes.set(key, b);
    }
    return b;
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
      log.push({ method: req.method ?? 'GET', path, status });
      res
        .writeHead(status, { 'content-type': 'application/json', ...headers })
        .end(body === undefined ? '' : JSON.stringify(body));
    };
    try {
      const fault = await faults.take(req.method, path);
      if (fault) {
        const status =
          fault.status === 429
            ? 'RESOURCE_EXHAUSTED'
            : fault.status === 404
              ? 'NOT_FOUND'
              : fault.status === 401
                ? 'UNAUTHENTICATED'
                : 'UNAVAILABLE';
        return send(
          fault.status,
          gmailError(fault.status, status, `simulated ${fault.status}`),
          fault.retryAfter ? { 'retry-after': String(fault.retryAfter) } : {},
        );
      }
      if (path === '/oauth2/v3/certs') return send(200, { keys: [jwk] });
      if (path === '/token' && req.method === 'POST') {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        if (form.get('grant_type') !== 'refresh_token') return send(400, { error: 'unsupported_grant_type' });
        if (
          form.get('client_id') !== credentials.clientId ||
          form.get('client_secret') !== credentials.clientSecret
        )
          return send(401, { error: 'invalid_client' });
        if (revoked || form.get('refresh_token') !== credentials.refreshToken)
          return send(400, {
            error: 'invalid_grant',
            error_description: 'Token has been expired or revoked.',
          });
        const accessToken = `ya29.${randomBytes(24).toString('base64url')}`;
        tokens.add(accessToken);
        const body: Record<string, unknown> = {
          access_token: accessToken,
          expires_in: 3599,
          token_type: 'Bearer',
          scope: 'https://www.googleapis.com/auth/gmail.readonly',
        };
        if (rotateTo) {
          credentials.refreshToken = rotateTo;
          body['refresh_token'] = rotateTo;
          rotateTo = undefined;
        }
        return send(200, body);
      }
      const m = /^\/gmail\/v1\/users\/([^/]+)\/(profile|watch|history|messages)(?:\/([^/]+))?$/.exec(path);
      if (!m) return send(404, gmailError(404, 'NOT_FOUND', 'Not Found'));
      const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (!bearer || !tokens.has(bearer))
        return send(
          401,
          gmailError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.'),
        );
      const user = decodeURIComponent(m[1]!);
      const b = box(user);
      if (m[2] === 'profile')
        return send(200, {
          emailAddress: user,
          messagesTotal: b.messages.length,
          historyId: String(b.historyId),
        });
      if (m[2] === 'watch' && req.method === 'POST')
        return send(200, { historyId: String(b.historyId), expiration: String(Date.now() + 7 * 86_400_000) });
      if (m[2] === 'history') {
        const start = Number(url.searchParams.get('startHistoryId'));
        if (!Number.isFinite(start) || start < b.minHistoryId)
          return send(404, gmailError(404, 'NOT_FOUND', 'Requested entity was not found.'));
        const added = b.messages.filter((x) => x.historyId > start);
        return send(200, {
          history: added.map((x) => ({
            id: String(x.historyId),
            messages: [{ id: x.id, threadId: x.id }],
            messagesAdded: [{ message: { id: x.id, threadId: x.id, labelIds: ['INBOX'] } }],
          })),
          historyId: String(b.historyId),
        });
      }
      if (m[2] === 'messages' && !m[3])
        return send(200, {
          messages: [...b.messages].reverse().map((x) => ({ id: x.id, threadId: x.id })),
          resultSizeEstimate: b.messages.length,
        });
      if (m[2] === 'messages' && m[3]) {
        const msg = b.messages.find((x) => x.id === m[3]);
        if (!msg) return send(404, gmailError(404, 'NOT_FOUND', 'Requested entity was not found.'));
        return send(200, {
          id: msg.id,
          threadId: msg.id,
          historyId: String(msg.historyId),
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

  const pushToken = async (options: PushOptions): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      email: options.email,
      email_verified: options.emailVerified ?? true,
      sub: '1234567890',
    })
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
      .setIssuer(options.issuer ?? 'https://accounts.google.com')
      .setAudience(options.audience)
      .setIssuedAt(now - 5)
      .setExpirationTime(now + (options.expiresIn ?? 3600))
      .sign(options.foreignKey ? foreign.privateKey : privateKey);
  };
  const pushBody = (user: string) => ({
    message: {
      data: Buffer.from(JSON.stringify({ emailAddress: user, historyId: box(user).historyId })).toString(
        'base64',
      ),
      messageId: randomUUID(),
      publishTime: new Date().toISOString(),
    },
    subscription: 'projects/sim/subscriptions/relaydesk',
  });

  return {
    url: base,
    apiBaseUrl: `${base}/gmail/v1`,
    tokenUrl: `${base}/token`,
    jwksUrl: `${base}/oauth2/v3/certs`,
    credentials,
    log,
    deliver(user, raw) {
      const b = box(user);
      b.historyId += 7;
      const id = randomBytes(8).toString('hex');
      b.messages.push({ id, raw, historyId: b.historyId });
      return id;
    },
    pushToken,
    pushBody,
    async push(endpoint, user, options) {
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await pushToken(options)}` },
        body: JSON.stringify(pushBody(user)),
      });
      return res.status;
    },
    expireHistory(user) {
      box(user).minHistoryId = box(user).historyId + 1;
    },
    revokeRefreshToken() {
      revoked = true;
    },
    rotateRefreshTokenOnce() {
      rotateTo = `1//${randomBytes(16).toString('base64url')}`;
      return rotateTo;
    },
    fault(f) {
      faults.add(f);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
