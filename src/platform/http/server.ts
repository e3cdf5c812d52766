// The HTTP server: Fastify 5 with TypeBox schemas, OpenAPI at /docs, problem+json errors, bearer
// token authentication and permission checks before the body is even parsed, one log line per request.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import {
  registerAjvFormats,
  type TypeBoxTypeProvider,
  TypeBoxValidatorCompiler,
} from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type FastifyRequest, LogController } from 'fastify';
import { type Permission, roleAllows } from '../../modules/tokens/permissions.ts';
import type { AuthCache } from '../../modules/tokens/auth-cache.ts';
import { authenticate, type Principal } from '../../modules/tokens/service.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { migrationStatus } from '../db/migrate.ts';
import type { Pool } from '../db/pool.ts';
import { AppError, forbidden, unauthorized } from '../errors.ts';
import type { Logger } from '../logging.ts';
import type { JobQueue } from '../queue/queue.ts';
import { Metrics } from './metrics.ts';
import { errorHandler, problem, sendProblem, toProblem } from './problem.ts';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** Permission the route requires; routes under /api/v1 without one only need a valid token. */
    permission?: Permission;
    /** Route needs no token (health, docs, provider webhooks that verify their own proof). */
    public?: boolean;
  }
}

export interface ServerDeps {
  config: Pick<Config, 'bodyLimit'>;
  pool: Pool;
  logger: Logger;
  queue?: JobQueue;
  metrics?: Metrics;
  /** Token lookup cache; only used while it listens for invalidations. */
  authCache?: AuthCache;
  /** RELAYDESK_SECRET_KEY: seals provider credentials, keys signed Message-IDs. */
  secretKey?: Buffer;
  /** The time services run on (DESIGN §3.6). */
  clock: Clock;
}

export type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>;
export type RouteModule = (app: App, deps: ServerDeps) => void | Promise<void>;

registerAjvFormats();

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
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  // JSON only; routes that take other media (raw MIME) register their own parser.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler((error, request, reply) =>
    errorHandler(error, request as FastifyRequest, reply as never),
  );
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, problem(404, 'not_found', `No route ${request.method} ${request.url.split('?')[0]}`)),
  );

  app.decorateRequest('principal', undefined);

  // Authentication and authorisation come first, before the body is read or validated: a caller
  // without a valid token learns nothing about what the route would have accepted.
  app.addHook('onRequest', async (request) => {
    const url = request.url;
    if (!url.startsWith('/api/')) return;
    const routeConfig = request.routeOptions.config;
    if (routeConfig?.public) return;
    const header = request.headers.authorization;
    if (!header) throw unauthorized('Send an API token: Authorization: Bearer rd_...');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw unauthorized('The Authorization header must be "Bearer <token>"');
    request.principal = await authenticate(deps.pool, match[1]!, Date.now(), deps.authCache);
    const permission = routeConfig?.permission;
    if (permission && !roleAllows(request.principal.role, permission)) {
      throw forbidden(`A ${request.principal.role} token does not have the ${permission} permission`);
    }
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

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Relaydesk API', version: '1', description: 'Multi-tenant service-desk engine' },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'rd_... API token' } },
      },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/healthz', { config: { public: true }, schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { public: true }, schema: { hide: true } }, async (_request, reply) => {
    try {
      const { expected, applied } = await migrationStatus(deps.pool);
      if (applied < expected) {
        return sendProblem(
          reply,
          problem(503, 'migrations_pending', `database at migration ${applied}, code expects ${expected}`),
        );
      }
      return { status: 'ready', migration: applied };
    } catch (err) {
      return sendProblem(
        reply,
        toProblem(new AppError('database_unavailable', `database unreachable: ${(err as Error).message}`)),
      );
    }
  });
  app.get('/metrics', { config: { public: true }, schema: { hide: true } }, async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });

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
