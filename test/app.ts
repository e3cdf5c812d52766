// An in-process API on a per-file test database, with two tenants, for route tests (app.inject:
// real Fastify, real PostgreSQL, no socket).
import { randomBytes } from 'node:crypto';
import { HOOK_ROUTES, ROUTES } from '../src/app.ts';
import type { InboundDeps } from '../src/modules/inbound/process.ts';
import { setAgentPassword } from '../src/modules/sessions/accounts.ts';
import { sessionAuthenticator } from '../src/modules/sessions/sessions.ts';
import { messageIdKey } from '../src/modules/inbound/signing.ts';
import { streamRoutes, streamRoutesWith } from '../src/modules/live/routes.ts';
import { type CreatedTenant, createTenant } from '../src/modules/tenants/service.ts';
import { tokenAuthenticator } from '../src/modules/tokens/service.ts';
import type { Config } from '../src/platform/config.ts';
import { SESSION_COOKIE } from '../src/platform/http/auth.ts';
import {
  type App,
  buildServer,
  type RouteModule,
  type ServerDeps,
  type SignInLimits,
} from '../src/platform/http/server.ts';
import { createLogger } from '../src/platform/logging.ts';
import { JobQueue } from '../src/platform/queue/queue.ts';
import { JobRegistry } from '../src/platform/queue/registry.ts';
import { TestClock } from './clock.ts';
import { type TestDatabase, useTestDatabase } from './db.ts';
import { atFileEnd } from './file-end.ts';

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
  /**
   * Signs in to the console (POST /api/v1/session) as a new agent of tenant `a` (or `tenant`), or as
   * `personId`, with a password set for the purpose: a session whose `call` sends its cookie and,
   * on writes, its CSRF token.
   */
  signIn(options?: SignInOptions): Promise<TestSession>;
}

export interface SignInOptions {
  tenant?: CreatedTenant;
  /** An existing agent of the tenant (default: a new agent). */
  personId?: string;
  /** The new agent's role (default agent). */
  role?: 'admin' | 'agent' | 'viewer';
  /** Default: a fresh random one. */
  password?: string;
}

export interface TestSession {
  personId: string;
  email: string;
  password: string;
  /** The `rd_session` cookie's value. */
  secret: string;
  csrfToken: string;
  /** SessionInfo as POST /session answered it. */
  session: any;
  /** A request with the session's cookie (and its CSRF token on writes, unless headers say otherwise). */
  call(
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
  /**
   * Limits of the public sign-in routes; by default high enough that no test meets them (a test of
   * the limits sets its own, here or later through `config`).
   */
  signInLimits?: SignInLimits;
  /** The routes outside /api/v1 in place of HOOK_ROUTES (a module's own tests of such routes). */
  hookRoutes?: RouteModule[];
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
    signInLimits: options.signInLimits ?? { accountFailures: 1_000_000, addressPerMinute: 1_000_000 },
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
      authenticateSession: sessionAuthenticator({ pool: db.pool, clock }),
    },
    [
      ...ROUTES.map((r) =>
        r === streamRoutes && options.streamLifetimeMs !== undefined
          ? streamRoutesWith({ maxLifetimeMs: options.streamLifetimeMs })
          : r,
      ),
      ...(options.extraRoutes ?? []).filter((r) => !ROUTES.includes(r)),
    ],
    options.hookRoutes ?? HOOK_ROUTES,
  );
  await app.ready();
  const a = await createTenant(db.pool, { name: 'Tenant A' });
  const b = await createTenant(db.pool, { name: 'Tenant B' });
  atFileEnd(async () => {
    await app.close();
    await queue.stop({ graceful: false });
  });
  async function call(
    token: string | undefined,
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT',
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) {
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
    return { status: res.statusCode, body: parsed as any, headers: res.headers };
  }

  async function signIn(options: SignInOptions = {}): Promise<TestSession> {
    const tenant = options.tenant ?? a;
    const password = options.password ?? `pw-${randomBytes(12).toString('base64url')}`;
    let personId = options.personId;
    let email: string;
    if (personId) {
      const person = await call(tenant.adminToken.token, 'GET', `/api/v1/people/${personId}`);
      email = person.body.email;
    } else {
      counter++;
      email = `agent${counter}-${randomBytes(3).toString('hex')}@console.test`;
      const person = await makePersonIn(tenant, {
        displayName: `Agent ${counter}`,
        kind: 'agent',
        email,
        role: options.role,
      });
      personId = person.id as string;
    }
    await setAgentPassword(db.pool, { tenantId: tenant.tenant.id, personId, password, now: clock.now() });
    const res = await call(undefined, 'POST', '/api/v1/session', {
      email,
      password,
      tenant: tenant.tenant.name,
    });
    if (res.status !== 200) throw new Error(`signIn: ${res.status} ${JSON.stringify(res.body)}`);
    const cookie = String([res.headers['set-cookie']].flat()[0] ?? '');
    const secret = new RegExp(`^${SESSION_COOKIE}=([^;]+)`).exec(cookie)?.[1];
    if (!secret) throw new Error(`signIn: no ${SESSION_COOKIE} cookie in ${cookie}`);
    const csrfToken = res.body.session.csrfToken as string;
    return {
      personId,
      email,
      password,
      secret,
      csrfToken,
      session: res.body.session,
      call: (method, url, body, headers = {}) =>
        call(undefined, method, url, body, {
          cookie: `${SESSION_COOKIE}=${secret}`,
          ...(method === 'GET' ? {} : { 'x-csrf-token': csrfToken }),
          ...headers,
        }),
    };
  }

  async function makePersonIn(tenant: CreatedTenant, body: Record<string, unknown>): Promise<any> {
    const res = await call(tenant.adminToken.token, 'POST', '/api/v1/people', body);
    if (res.status !== 201) throw new Error(`signIn: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

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
    call,
    signIn,
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
