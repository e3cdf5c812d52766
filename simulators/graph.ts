// A local Microsoft Graph simulator for tests, benchmarks and `relaydesk demo`. It follows the
// public API's payloads, status codes and error shapes for what Relaydesk uses:
//   POST {tokenUrl}/{tenant}/oauth2/v2.0/token          client-credentials grant
//   POST /v1.0/subscriptions                            with the validation handshake against notificationUrl
//   PATCH|DELETE /v1.0/subscriptions/{id}               renew, delete (404 ResourceNotFound when unknown)
//   GET  /v1.0/users/{user}/messages/{id}[/$value]      the message, or its raw MIME
//   GET  /v1.0/users/{user}/mailFolders/{folder}/messages/delta
// and a control API under /_control to drop a message into a mailbox (which sends the change
// notification), send lifecycle notifications and inject faults (status codes with Retry-After,
// slow answers, dropped notifications).
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Fault, Faults } from './faults.ts';

export type { Fault } from './faults.ts';

interface Subscription {
  id: string;
  resource: string;
  changeType: string;
  notificationUrl: string;
  lifecycleNotificationUrl: string | undefined;
  clientState: string | undefined;
  expirationDateTime: string;
}

export interface GraphSimulator {
  url: string;
  apiBaseUrl: string;
  tokenUrl: string;
  credentials: { tenantId: string; clientId: string; clientSecret: string };
  /** Drops a raw message into a mailbox; sends change notifications unless told not to. Returns its id. */
  deliver(user: string, raw: Buffer, options?: { notify?: boolean }): Promise<string>;
  /** Removes a message (a later $value is 404). */
  remove(user: string, id: string): void;
  fault(fault: Fault): void;
  subscriptions(): Subscription[];
  /** Sends a lifecycle notification (reauthorizationRequired, subscriptionRemoved, missed). */
  lifecycle(subscriptionId: string, event: string): Promise<number>;
  /** Requests seen, for assertions. */
  log: { method: string; path: string; status: number }[];
  close(): Promise<void>;
}

const graphError = (code: string, message: string) => ({
  error: {
    code,
    message,
    innerError: { 'request-id': randomUUID(), date: new Date().toISOString().slice(0, 19) },
  },
});

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function startGraphSimulator(options: { port?: number } = {}): Promise<GraphSimulator> {
  const credentials = {
    tenantId: 'sim-tenant',
    clientId: 'sim-client',
    clientSecret: randomBytes(12).toString('hex'),
  };
  const tokens = new Set<string>();
  const mailboxes = new Map<string, Map<string, Buffer>>();
  const subs = new Map<string, Subscription>();
  const faults = new Faults();
  const log: GraphSimulator['log'] = [];

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

  const notify = async (user: string, id: string) => {
    const targets = [...subs.values()].filter((s) =>
      s.resource.toLowerCase().includes(`users/${user.toLowerCase()}`),
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

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
      log.push({ method: req.method ?? 'GET', path, status });
      if (body === undefined) {
        res.writeHead(status, headers).end();
      } else if (Buffer.isBuffer(body)) {
        res.writeHead(status, { 'content-type': 'message/rfc822', ...headers }).end(body);
      } else {
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
      }
    };
    try {
      const fault = await faults.take(req.method, path);
      if (fault) {
        const code =
          fault.status === 429
            ? 'TooManyRequests'
            : fault.status === 404
              ? 'ResourceNotFound'
              : fault.status === 401
                ? 'InvalidAuthenticationToken'
                : 'ServiceUnavailable';
        return send(
          fault.status,
          graphError(code, `simulated ${fault.status}`),
          fault.retryAfter ? { 'retry-after': String(fault.retryAfter) } : {},
        );
      }

      // Token endpoint: /token/{tenant}/oauth2/v2.0/token
      const tokenMatch = /^\/token\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(path);
      if (tokenMatch && req.method === 'POST') {
        const form = new URLSearchParams((await readBody(req)).toString());
        if (form.get('grant_type') !== 'client_credentials')
          return send(400, { error: 'unsupported_grant_type', error_description: 'client_credentials only' });
        if (
          tokenMatch[1] !== credentials.tenantId ||
          form.get('client_id') !== credentials.clientId ||
          form.get('client_secret') !== credentials.clientSecret
        ) {
          return send(401, {
            error: 'invalid_client',
            error_description: 'AADSTS7000215: Invalid client secret provided.',
          });
        }
        const token = randomBytes(24).toString('base64url');
        tokens.add(token);
        return send(200, {
          token_type: 'Bearer',
          expires_in: 3599,
          ext_expires_in: 3599,
          access_token: token,
        });
      }

      if (path.startsWith('/_control/')) return await control(req, path, send);

      if (!path.startsWith('/v1.0/'))
        return send(404, graphError('BadRequest', `Resource not found for the segment '${path}'.`));
      const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (!bearer || !tokens.has(bearer))
        return send(401, graphError('InvalidAuthenticationToken', 'Access token is empty or invalid.'));

      if (path === '/v1.0/subscriptions' && req.method === 'POST') {
        const body = JSON.parse((await readBody(req)).toString() || '{}') as Partial<Subscription>;
        if (!body.notificationUrl || !body.resource || !body.expirationDateTime)
          return send(400, graphError('InvalidRequest', 'missing properties'));
        // The validation handshake: Graph POSTs ?validationToken=... and expects it back as text/plain within 10 s.
        const validationToken = `Validation: ${randomBytes(8).toString('hex')}`;
        const ok = await fetch(
          `${body.notificationUrl}${body.notificationUrl.includes('?') ? '&' : '?'}validationToken=${encodeURIComponent(validationToken)}`,
          {
            method: 'POST',
            headers: { 'content-type': 'text/plain' },
            signal: AbortSignal.timeout(10_000),
          },
        )
          .then(
            async (r) =>
              r.status === 200 &&
              (r.headers.get('content-type') ?? '').startsWith('text/plain') &&
              (await r.text()) === validationToken,
          )
          .catch(() => false);
        if (!ok)
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
          changeType: body.changeType ?? 'created',
          notificationUrl: body.notificationUrl,
          lifecycleNotificationUrl: body.lifecycleNotificationUrl,
          clientState: body.clientState,
          expirationDateTime: body.expirationDateTime,
        };
        subs.set(sub.id, sub);
        return send(201, {
          '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity',
          ...sub,
        });
      }
      const subMatch = /^\/v1\.0\/subscriptions\/([^/]+)$/.exec(path);
      if (subMatch) {
        const sub = subs.get(subMatch[1]!);
        if (!sub)
          return send(404, graphError('ResourceNotFound', `The object '${subMatch[1]}' doesn't exist.`));
        if (req.method === 'PATCH') {
          const body = JSON.parse((await readBody(req)).toString() || '{}') as {
            expirationDateTime?: string;
          };
          if (body.expirationDateTime) sub.expirationDateTime = body.expirationDateTime;
          return send(200, sub);
        }
        if (req.method === 'DELETE') {
          subs.delete(sub.id);
          return send(204);
        }
        if (req.method === 'GET') return send(200, sub);
      }
      const msgMatch = /^\/v1\.0\/users\/([^/]+)\/messages\/([^/]+?)(\/\$value)?$/.exec(path);
      if (msgMatch && req.method === 'GET') {
        const raw = mailboxes
          .get(decodeURIComponent(msgMatch[1]!).toLowerCase())
          ?.get(decodeURIComponent(msgMatch[2]!));
        if (!raw)
          return send(
            404,
            graphError('ErrorItemNotFound', 'The specified object was not found in the store.'),
          );
        return msgMatch[3]
          ? send(200, raw)
          : send(200, { id: decodeURIComponent(msgMatch[2]!), size: raw.length });
      }
      const deltaMatch = /^\/v1\.0\/users\/([^/]+)\/mailFolders\/([^/]+)\/messages\/delta$/.exec(path);
      if (deltaMatch && req.method === 'GET') {
        const ids = [...(mailboxes.get(decodeURIComponent(deltaMatch[1]!).toLowerCase())?.keys() ?? [])];
        return send(200, {
          value: ids.map((id) => ({ id })),
          '@odata.deltaLink': `${base()}${path}?$deltatoken=${Date.now()}`,
        });
      }
      return send(404, graphError('BadRequest', `Resource not found for the segment '${path}'.`));
    } catch (err) {
      return send(500, graphError('InternalServerError', (err as Error).message));
    }
  });

  async function control(req: http.IncomingMessage, path: string, send: (s: number, b?: unknown) => void) {
    const deliverMatch = /^\/_control\/users\/([^/]+)\/messages$/.exec(path);
    if (deliverMatch && req.method === 'POST') {
      const id = await sim.deliver(decodeURIComponent(deliverMatch[1]!), await readBody(req));
      return send(201, { id });
    }
    if (path === '/_control/faults' && req.method === 'POST') {
      sim.fault(JSON.parse((await readBody(req)).toString()) as Fault);
      return send(204);
    }
    return send(404, { error: 'unknown control route' });
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const base = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const sim: GraphSimulator = {
    url: base(),
    apiBaseUrl: `${base()}/v1.0`,
    tokenUrl: `${base()}/token`,
    credentials,
    log,
    async deliver(user, raw, opts = {}) {
      const id = `AAMk${randomBytes(12).toString('base64url')}`;
      const box = mailboxes.get(user.toLowerCase()) ?? new Map<string, Buffer>();
      box.set(id, raw);
      mailboxes.set(user.toLowerCase(), box);
      if (opts.notify !== false) await notify(user, id);
      return id;
    },
    remove(user, id) {
      mailboxes.get(user.toLowerCase())?.delete(id);
    },
    fault(f) {
      faults.add(f);
    },
    subscriptions: () => [...subs.values()],
    async lifecycle(subscriptionId, event) {
      const s = subs.get(subscriptionId);
      if (!s) return 0;
      return post(s.lifecycleNotificationUrl ?? s.notificationUrl, {
        value: [
          {
            subscriptionId,
            subscriptionExpirationDateTime: s.expirationDateTime,
            tenantId: credentials.tenantId,
            clientState: s.clientState,
            lifecycleEvent: event,
          },
        ],
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return sim;
}
