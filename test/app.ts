// An in-process API on a per-file test database, with two tenants, for route tests (app.inject:
// real Fastify, real PostgreSQL, no socket).
import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';
import { HOOK_ROUTES, ROUTES } from '../src/app.ts';
import type { InboundDeps } from '../src/modules/inbound/process.ts';
import { messageIdKey } from '../src/modules/inbound/signing.ts';
import { streamRoutes, streamRoutesWith } from '../src/modules/live/routes.ts';
import { type CreatedTenant, createTenant } from '../src/modules/tenants/service.ts';
import { tokenAuthenticator } from '../src/modules/tokens/service.ts';
import type { Config } from '../src/platform/config.ts';
import { type App, buildServer, type RouteModule, type ServerDeps } from '../src/platform/http/server.ts';
import { createLogger } from '../src/platform/logging.ts';
import { JobQueue } from '../src/platform/queue/queue.ts';
import { JobRegistry } from '../src/platform/queue/registry.ts';
import { TestClock } from './clock.ts';
import { type TestDatabase, useTestDatabase } from './db.ts';

export interface TestApp {
  app: App;
  db: TestDatabase;
  queue: JobQueue;
  a: CreatedTenant;
  b: CreatedTenant;
  /** The key the server encrypts provider credentials and signs Message-IDs with. */
  secretKey: Buffer;
  /** What the inbound pipeline's functions take (processInbound, acceptRawMessage, ...), with that key. */
  inboundDeps(): InboundDeps;
  /** The clock the server runs on: the real time until the test freezes or moves it. */
  clock: TestClock;
  /** The server's configuration, read at each request: a test may set publicUrl or oauth later. */
  config: ServerDeps['config'];
  /** Sends a request with a bearer token; returns status, parsed body and headers. */
  call(
    token: string | undefined,
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT',
    url: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
}

export interface TestAppOptions {
  bodyLimit?: number;
  secretKey?: Buffer;
  /** RELAYDESK_PUBLIC_URL; may also be set later through `config` (once the app listens). */
  publicUrl?: string;
  /** The install's OAuth app registrations (RELAYDESK_MICROSOFT_* / RELAYDESK_GOOGLE_*). */
  oauth?: Config['oauth'];
  /** Route modules not (yet) in ROUTES, for a module's own tests; one already there is not added twice. */
  extraRoutes?: RouteModule[];
  /** RELAYDESK_ALLOW_PRIVATE_WEBHOOKS (default on: receivers are simulators on loopback). */
  allowPrivateWebhooks?: boolean;
  /** How long a GET /stream lasts (default 10 minutes): inject waits for its end. */
  streamLifetimeMs?: number;
}

export async function useTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const db = await useTestDatabase();
  const clock = new TestClock();
  const logger = createLogger('silent');
  const secretKey = options.secretKey ?? randomBytes(32);
  const queue = new JobQueue({
    connectionString: db.url,
    logger,
    registry: new JobRegistry(),
    supervise: false,
    schedule: false,
    poolSize: 2,
  });
  await queue.start();
  // Provider simulators listen on loopback ports of their own.
  const config: TestApp['config'] = {
    bodyLimit: options.bodyLimit ?? 10 * 1024 * 1024,
    providerOrigins: ['http://127.0.0.1:*'],
    publicUrl: options.publicUrl,
    oauth: options.oauth ?? {},
    // Webhook receivers in tests are simulators on loopback (RELAYDESK_ALLOW_PRIVATE_WEBHOOKS=1).
    allowPrivateWebhooks: options.allowPrivateWebhooks ?? true,
  };
  const app = await buildServer(
    {
      config,
      pool: db.pool,
      logger,
      queue,
      secretKey,
      clock,
      databaseUrl: db.url,
      authenticate: tokenAuthenticator({ pool: db.pool, clock }),
    },
    [
      ...ROUTES.map((r) =>
        r === streamRoutes && options.streamLifetimeMs !== undefined
          ? streamRoutesWith({ maxLifetimeMs: options.streamLifetimeMs })
          : r,
      ),
      ...(options.extraRoutes ?? []).filter((r) => !ROUTES.includes(r)),
    ],
    HOOK_ROUTES,
  );
  await app.ready();
  const a = await createTenant(db.pool, { name: 'Tenant A' });
  const b = await createTenant(db.pool, { name: 'Tenant B' });
  afterAll(async () => {
    await app.close();
    await queue.stop({ graceful: false });
  });
  return {
    app,
    db,
    queue,
    a,
    b,
    secretKey,
    clock,
    config,
    inboundDeps: () => ({
      pool: db.pool,
      messageIdKey: messageIdKey(secretKey),
      secretKey,
      logger,
      clock,
      oauth: config.oauth,
    }),
    async call(token, method, url, body, headers = {}) {
      const res = await app.inject({
        method,
        url,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
        ...(body === undefined
          ? {}
          : typeof body === 'string' || Buffer.isBuffer(body)
            ? { payload: body }
            : { payload: body as object }),
      });
      let parsed: unknown = res.body;
      try {
        parsed = res.body === '' ? undefined : JSON.parse(res.body);
      } catch {
        // not JSON
      }
      return { status: res.statusCode, body: parsed, headers: res.headers };
    },
  };
}

let counter = 0;
/** A ticket created through the API (factory). */
export async function makeTicket(
  t: TestApp,
  token: string,
  overrides: Record<string, unknown> = {},
): Promise<any> {
  counter++;
  const res = await t.call(token, 'POST', '/api/v1/tickets', {
    subject: `Ticket ${counter}`,
    requester: { email: `requester${counter}@example.com` },
    message: { text: 'Something is broken' },
    ...overrides,
  });
  if (res.status !== 201) throw new Error(`makeTicket: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** A person created through the API (factory). */
export async function makePerson(
  t: TestApp,
  token: string,
  overrides: Record<string, unknown> = {},
): Promise<any> {
  counter++;
  const res = await t.call(token, 'POST', '/api/v1/people', {
    displayName: `Person ${counter}`,
    kind: 'agent',
    email: `person${counter}@example.com`,
    ...overrides,
  });
  if (res.status !== 201) throw new Error(`makePerson: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}
