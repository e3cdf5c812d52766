// The HTTP server: Fastify 5 with TypeBox schemas, OpenAPI at /docs, problem+json errors, bearer
// token authentication and permission checks before the body is even parsed, one log line per request.
import cookie from '@fastify/cookie';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { registerAjvFormats, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type FastifyRequest, LogController } from 'fastify';
import { type TSchema, Type } from 'typebox';
import Format from 'typebox/format';
import type { Clock } from '../clock.ts';
import { type Authenticate, type AuthenticateSession, type Principal, SESSION_COOKIE } from './auth.ts';
import type { Config } from '../config.ts';
import { migrationStatus } from '../db/migrate.ts';
import type { Pool } from '../db/pool.ts';
import { safeEqual } from '../crypto.ts';
import { AppError, forbidden, unauthorized, validation } from '../errors.ts';
import { isUuid } from '../ids.ts';
import { isStorableInstant } from '../instants.ts';
import type { Logger } from '../logging.ts';
import type { JobQueue } from '../queue/queue.ts';
import { Metrics, metricsTokenCheck } from './metrics.ts';
import { freeFormProblems, inputProblems, queryStringReadable } from './input.ts';
import { clientErrorAnswer, errorHandler, problem, sendProblem, toProblem } from './problem.ts';
import { validatorCompiler } from './validation.ts';
import { withArticleCapital } from '../text.ts';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    /**
     * The files of a multipart request, as its route's multipart parser took them: what a summary
     * of the request (the audit trail's) says of them instead of their content.
     */
    uploadedFiles?: UploadedFile[];
    /**
     * The browser reached us over TLS: directly, or (RELAYDESK_PUBLIC_URL is https) through a proxy
     * that terminates it. Cookies set in the answer are then `Secure`.
     */
    secureContext: boolean;
    /**
     * Set by a route that changes several things at once (a bulk change): the audit trail records
     * one event per target, with its own outcome, instead of one for the request.
     */
    auditTargets?: AuditTarget[];
  }
  interface FastifyContextConfig {
    /** Permission the route requires; routes under /api/v1 without one only need a valid token. */
    permission?: string;
    /** Route needs no token (health, docs, provider webhooks that verify their own proof). */
    public?: boolean;
    /**
     * What the audit trail calls this route's writes ('tickets.update'), or false for a POST that
     * changes nothing (a preview); without it, a name derived from the method and path.
     */
    audit?: string | false;
    /**
     * Body fields the audit trail replaces with "[redacted]" in the request it hashes (passwords,
     * provider secrets, one-time codes, link tokens): a hash of a payload with a password in it would
     * be a fast hash of the password. A name, or a dotted path into nested objects, where `*` is any
     * field: `appPassword`, `credentials.*` (see redactFields in modules/audit/request-audit.ts).
     */
    auditRedact?: readonly string[];
    /**
     * Open to a console session that must still enrol a second factor (the session and TOTP
     * routes); every other route answers it 403 second_factor_enrollment_required.
     */
    beforeSecondFactor?: boolean;
  }
}

/** Limits of the public sign-in routes (the sessions module has the defaults); tests change them. */
export interface SignInLimits {
  /** Consecutive failures after which an account is locked (a minute, doubling with each further one). */
  accountFailures?: number;
  /** Requests a minute one client address may make to each public sign-in route (per process). */
  addressPerMinute?: number;
}

export interface ServerDeps {
  config: Pick<Config, 'bodyLimit'> & { signInLimits?: SignInLimits | undefined } & Partial<
      Pick<
        Config,
        | 'metricsToken'
        | 'docs'
        | 'providerOrigins'
        | 'publicUrl'
        | 'upkeep'
        | 'oauth'
        | 'allowPrivateWebhooks'
      >
    >;
  pool: Pool;
  logger: Logger;
  queue?: JobQueue;
  metrics?: Metrics;
  /** Authenticates the bearer token of every /api request. */
  authenticate: Authenticate;
  /**
   * Authenticates the console session cookie of an /api request that has no Authorization header;
   * without it only tokens are taken.
   */
  authenticateSession?: AuthenticateSession;
  /** RELAYDESK_SECRET_KEY: seals provider credentials, keys signed Message-IDs. */
  secretKey?: Buffer;
  /** The time services run on (DESIGN §3.6). */
  clock: Clock;
  /**
   * The application role's database URL for what needs a session of its own beside the pool (the
   * LISTEN connection of GET /stream): DATABASE_DIRECT_URL behind a transaction pooler.
   */
  databaseUrl?: string;
}

/** One thing a request changed or failed to change, for the audit trail. */
export interface AuditTarget {
  targetType: string;
  targetId: string;
  ok: boolean;
  errorCode: string | null;
}

/** One file of a multipart request: its form field, name and size in bytes. */
export interface UploadedFile {
  field: string;
  filename: string;
  size: number;
}

export type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>;
/**
 * Registers a module's routes under /api/v1. All modules share that one scope, so hooks a module adds
 * to it (the audit trail's onSend and onResponse) apply to every /api/v1 route, whichever module
 * registered it (register such a module first all the same); nothing outside /api/v1 sees them.
 */
export type RouteModule = (app: App, deps: ServerDeps) => void | Promise<void>;

registerAjvFormats();
// ajv-formats' uuid also takes "urn:uuid:<uuid>", which PostgreSQL's uuid type refuses: the plain form only.
Format.Set('uuid', isUuid);
// RFC 3339 allows instants PostgreSQL refuses (year 0000, an offset of 16 hours or more, a fraction
// of hundreds of digits): a date-time parameter is also one timestamptz takes (instants.ts).
const rfc3339DateTime = Format.Get('date-time')!;
Format.Set('date-time', (value) => rfc3339DateTime(value) && isStorableInstant(value));

/**
 * The longest path parameter the router takes: the longest the API defines (an external id of 512
 * characters) percent-encoded at 4 bytes a character. Longer is 414 uri_too_long.
 */
export const MAX_PARAM_LENGTH = 512 * 4 * 3;

/** Methods that change nothing, which a console session may use without its CSRF token. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The query string of a route that documents none: any parameter is refused, as unknown. */
const NoQuery = Type.Object({}, { additionalProperties: false });

/**
 * What no request body may carry (input.ts), and a JSON body is never ignored: an operation without
 * one refuses it, one with one needs it. Runs before validation, for multipart bodies once parsed.
 */
export function assertBodyAcceptable(request: FastifyRequest): void {
  const body = request.body;
  const parsed = body !== undefined && !Buffer.isBuffer(body);
  const problems = parsed ? inputProblems(body, 'body') : [];
  const declared = request.routeOptions.schema?.body as
    (TSchema & { content?: Record<string, { schema: TSchema }> }) | undefined;
  const contentType = String(request.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim()
    .toLowerCase();
  const schema = declared?.content ? declared.content[contentType]?.schema : declared;
  if (problems.length === 0 && parsed) problems.push(...freeFormProblems(schema, body));
  if (problems.length > 0) {
    throw validation(problems.map((e) => `${e.path} ${e.message}`).join('; '), problems.slice(0, 20));
  }
  if (request.url.startsWith('/api/')) {
    if (declared === undefined && parsed) {
      throw validation('This operation takes no JSON body', [
        { path: '/', message: 'this operation takes no JSON body', in: 'body' },
      ]);
    }
    if (declared !== undefined && body === undefined) {
      throw validation('The JSON body is missing', [{ path: '/', message: 'is required', in: 'body' }]);
    }
  }
}

/** The authenticated principal of a request under /api/v1 (set by the onRequest hook). */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw unauthorized();
  return request.principal;
}

export async function buildServer(
  deps: ServerDeps,
  routes: RouteModule[],
  rootRoutes: RouteModule[] = [],
): Promise<App> {
  const metrics = deps.metrics ?? new Metrics(deps.queue);
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.config.bodyLimit,
    trustProxy: false,
    return503OnClosing: true,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    // What the router refuses before any route runs (a path that is not percent-encoded UTF-8, a
    // path parameter over MAX_PARAM_LENGTH) is a problem like any other.
    frameworkErrors: (error, _request, reply) => sendProblem(reply as never, toProblem(error)),
    // And what the HTTP parser refuses before there is a request at all.
    clientErrorHandler: (error, socket) => {
      // A reset connection has no one to answer (Fastify's default does the same).
      if ((error as { code?: string }).code === 'ECONNRESET' || socket.destroyed) return;
      if (socket.writable) socket.write(clientErrorAnswer(error as { code?: unknown }));
      socket.destroy(error);
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // JSON only; routes that take other media (raw MIME) register their own parser.
  app.removeContentTypeParser('text/plain');
  // JSON is UTF-8 (RFC 8259): bytes that are not are refused, never decoded to U+FFFD. An empty body
  // is no body (a route that takes one says it is missing). Fastify's own parser does the rest,
  // refusing __proto__ and constructor.prototype keys.
  app.removeContentTypeParser('application/json');
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    if (bytes.length === 0) return done(null, undefined);
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      return done(new AppError('invalid_json', 'The body is not valid JSON: it is not UTF-8'), undefined);
    }
    return parseJson(request, text, done);
  });
  app.setErrorHandler((error, request, reply) =>
    errorHandler(error, request as FastifyRequest, reply as never),
  );
  // Every route's path pattern and methods, so that a wrong method on a known path is a 405 that
  // says which methods the path has (Allow), not a 404.
  const routeMethods: { pattern: RegExp; methods: Set<string> }[] = [];
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/api/') && !route.schema?.querystring)
      route.schema = { ...route.schema, querystring: NoQuery };
    const pattern = new RegExp(
      `^${route.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z0-9_]+/g, '[^/]+')}/?$`,
    );
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map(String);
    const known = routeMethods.find((r) => r.pattern.source === pattern.source);
    if (known) for (const m of methods) known.methods.add(m);
    else routeMethods.push({ pattern, methods: new Set(methods) });
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!;
    const allowed = new Set<string>();
    for (const r of routeMethods) if (r.pattern.test(path)) for (const m of r.methods) allowed.add(m);
    if (allowed.size > 0 && !allowed.has(request.method)) {
      const allow = [...allowed].sort().join(', ');
      reply.header('allow', allow);
      return sendProblem(
        reply,
        problem('method_not_allowed', `${request.method} is not allowed on ${path}; use ${allow}`),
      );
    }
    return sendProblem(reply, problem('not_found', `No route ${request.method} ${path}`));
  });

  app.decorateRequest('principal', undefined);
  app.decorateRequest('uploadedFiles', undefined);
  app.decorateRequest('auditTargets', undefined);
  app.decorateRequest('secureContext', {
    getter(this: FastifyRequest) {
      return this.protocol === 'https' || (deps.config.publicUrl?.startsWith('https:') ?? false);
    },
  });
  // Cookies are read before the hook below, which may authenticate by one.
  await app.register(cookie, { hook: 'onRequest' });

  // Authentication and authorisation come first, before the body is read or validated: a caller
  // without a valid token learns nothing about what the route would have accepted. A bearer token
  // wins over a session cookie (an integration calling from a browser that is signed in is still the
  // integration).
  app.addHook('onRequest', async (request) => {
    const url = request.url;
    if (!url.startsWith('/api/')) return;
    const routeConfig = request.routeOptions.config;
    if (routeConfig?.public) return;
    const header = request.headers.authorization;
    const sessionSecret = deps.authenticateSession ? request.cookies[SESSION_COOKIE] : undefined;
    if (header) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!match) throw unauthorized('The Authorization header must be "Bearer <token>"');
      request.principal = await deps.authenticate(match[1]!);
    } else if (sessionSecret) {
      const session = await deps.authenticateSession!(sessionSecret);
      request.principal = session;
      // A cookie goes along with any request the browser makes, a forged cross-site one included;
      // the CSRF token does not: a page of another origin cannot read it (GET /session answers it).
      if (!SAFE_METHODS.has(request.method)) {
        const sent = request.headers['x-csrf-token'];
        if (typeof sent !== 'string' || !safeEqual(sent, session.csrfToken))
          throw new AppError(
            'csrf_failed',
            'A console session must send its CSRF token (GET /api/v1/session: csrfToken) in X-CSRF-Token',
          );
      }
      if (session.secondFactorEnrollmentRequired && !routeConfig?.beforeSecondFactor)
        throw new AppError(
          'second_factor_enrollment_required',
          'This tenant requires a second factor: enrol an authenticator app (POST /api/v1/session/totp) first',
        );
    } else throw unauthorized('Send an API token: Authorization: Bearer rd_... (or sign in to the console)');
    const permission = routeConfig?.permission;
    if (permission && !request.principal.permissions.includes(permission)) {
      throw forbidden(
        `${withArticleCapital(request.principal.role)} ${request.principal.via} does not have the ${permission} permission`,
      );
    }
  });

  // Bodies are read as they come: one compressed (Content-Encoding gzip, deflate, br, …) would be
  // taken for its compressed bytes, as JSON that is not UTF-8 or as a raw message stored as such.
  // After authentication (onRequest), before any body is parsed.
  app.addHook('preParsing', async (request) => {
    const encoding = request.headers['content-encoding'];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity')
      throw new AppError(
        'unsupported_media_type',
        `A body with Content-Encoding "${encoding.slice(0, 40)}" is not taken: send it uncompressed`,
      );
  });

  // Before validation and handlers, for every route: input.ts says what no request may carry. A
  // multipart body is parsed later, by the plugin of the route that takes one, which checks it then.
  app.addHook('preValidation', async (request) => {
    if (!queryStringReadable(request.url)) {
      throw new AppError('bad_request', 'The query string is not valid percent-encoded UTF-8');
    }
    const problems = [...inputProblems(request.params, 'path'), ...inputProblems(request.query, 'query')];
    if (problems.length > 0) {
      throw validation(problems.map((e) => `${e.path} ${e.message}`).join('; '), problems.slice(0, 20));
    }
    if (!request.isMultipart?.()) assertBodyAcceptable(request);
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    metrics.httpDuration.observe(
      { method: request.method, route, status: String(reply.statusCode) },
      seconds,
    );
    if (!(request.log as unknown as { isLevelEnabled(level: string): boolean }).isLevelEnabled('info'))
      return;
    request.log.info(
      {
        tenant: request.principal?.tenantId,
        tokenPreview: request.principal?.preview,
        method: request.method,
        route,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request',
    );
  });

  app.addHook('onSend', async (_request, reply, payload) => {
    if (
      String(reply.getHeader('content-type') ?? '').startsWith('application/problem+json') &&
      typeof payload === 'string'
    ) {
      try {
        metrics.httpErrors.inc({ code: JSON.parse(payload).code ?? 'unknown' });
      } catch {
        // not JSON; nothing to count
      }
    }
    return payload;
  });

  // The API reference lists every route to whoever reaches the port: on unless configured off
  // (RELAYDESK_DOCS; by default off when the server listens beyond loopback).
  if (deps.config.docs ?? true) {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: { title: 'Relaydesk API', version: '1', description: 'Multi-tenant service-desk engine' },
        components: {
          securitySchemes: {
            bearer: { type: 'http', scheme: 'bearer', description: 'rd_... API token' },
            session: {
              type: 'apiKey',
              in: 'cookie',
              name: SESSION_COOKIE,
              description:
                'A console session (POST /api/v1/session); its writes also send X-CSRF-Token (the csrfToken of GET /api/v1/session)',
            },
          },
        },
        security: [{ bearer: [] }, { session: [] }],
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
  }

  app.get('/healthz', { config: { public: true }, schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
    try {
      const { expected, applied } = await migrationStatus(deps.pool);
      if (applied < expected) {
        return sendProblem(
          reply,
          problem('migrations_pending', `database at migration ${applied}, code expects ${expected}`),
        );
      }
      return { status: 'ready', migration: applied };
    } catch (err) {
      // The driver's message can name the socket's path or the server's address: logged, not answered.
      request.log.warn({ err }, 'readiness check: database unreachable');
      return sendProblem(reply, problem('database_unavailable', 'The database cannot be reached'));
    }
  });
  // Public unless RELAYDESK_METRICS_TOKEN is set (an install bound to 0.0.0.0 may not want to show
  // its queue depths and request rates to everyone).
  const metricsToken = deps.config.metricsToken;
  app.get(
    '/metrics',
    {
      config: { public: true },
      schema: { hide: true },
      ...(metricsToken ? { onRequest: metricsTokenCheck(metricsToken) } : {}),
    },
    async (_request, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  );

  await app.register(
    async (api) => {
      for (const register of routes) await register(api as App, deps);
    },
    { prefix: '/api/v1' },
  );
  // Routes outside the API (provider webhooks): each in its own scope, verifying its own proof.
  for (const register of rootRoutes) await app.register(async (scope) => register(scope as App, deps));
  return app;
}
