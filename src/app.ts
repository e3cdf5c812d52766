// Composition root: turns a Config into running parts (database, queue, HTTP server, workers) and
// knows how to stop them in the right order. The CLI and the tests both start Relaydesk through here.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { hookRoutes } from './modules/inbound/hooks.ts';
import { inboundJobs } from './modules/inbound/jobs.ts';
import { ImapListeners } from './modules/inbound/providers/imap/listener.ts';
import { inboundRoutes } from './modules/inbound/routes.ts';
import { messageIdKey } from './modules/inbound/signing.ts';
import { PEOPLE_SCHEDULES, peopleJobs } from './modules/people/jobs.ts';
import { mergeRoutes } from './modules/merge/routes.ts';
import { peopleRoutes } from './modules/people/routes.ts';
import { unmappedRoutes } from './modules/people/unmapped-routes.ts';
import { queueRoutes } from './modules/queue/routes.ts';
import { AuthCache } from './modules/tokens/auth-cache.ts';
import { bootstrapDefaultTenant, type CreatedTenant } from './modules/tenants/service.ts';
import { slaRoutes } from './modules/sla/routes.ts';
import { slaJobs, startSlaScheduler } from './modules/sla/scheduler.ts';
import { ticketRoutes } from './modules/tickets/routes.ts';
import { personTokenRoutes } from './modules/tokens/person-routes.ts';
import { tokenRoutes } from './modules/tokens/routes.ts';
import { tokenAuthenticator } from './modules/tokens/service.ts';
import { type Clock, systemClock } from './platform/clock.ts';
import { type Config, ConfigError, parseSecretKey } from './platform/config.ts';
import { type EmbeddedDatabase, type OwnerPurpose, openEmbedded } from './platform/db/embedded.ts';
import { migrate } from './platform/db/migrate.ts';
import { createPool, type Pool } from './platform/db/pool.ts';
import { APP_ROLE } from './platform/db/tx.ts';
import { waitForDatabase } from './platform/db/wait.ts';
import { AppError } from './platform/errors.ts';
import { Metrics } from './platform/http/metrics.ts';
import { checkCanListen } from './platform/http/port-check.ts';
import { type App, buildServer, type RouteModule } from './platform/http/server.ts';
import {
  markInitialAdminTokenShown,
  saveInitialAdminToken,
  unshownInitialAdminToken,
} from './platform/initial-admin-token.ts';
import type { Logger } from './platform/logging.ts';
import { installQueueSchema, JobQueue } from './platform/queue/queue.ts';
import { JobRegistry } from './platform/queue/registry.ts';

export const HOOK_ROUTES: RouteModule[] = [hookRoutes];
export const ROUTES: RouteModule[] = [
  tokenRoutes,
  peopleRoutes,
  personTokenRoutes,
  unmappedRoutes,
  mergeRoutes,
  ticketRoutes,
  queueRoutes,
  inboundRoutes,
  slaRoutes,
];

/** Every job type of every module. Modules add their definitions here. */
export function defaultRegistry(deps: {
  pool: Pool;
  secretKey: Buffer;
  logger: Logger;
  clock: Clock;
  jobLeaseSeconds?: number | undefined;
}): JobRegistry {
  const definitions = [
    ...slaJobs(),
    ...peopleJobs(deps.pool),
    ...inboundJobs({
      pool: deps.pool,
      messageIdKey: messageIdKey(deps.secretKey),
      secretKey: deps.secretKey,
      logger: deps.logger,
      clock: deps.clock,
    }),
  ];
  const lease = deps.jobLeaseSeconds;
  return new JobRegistry().register(
    ...(lease ? definitions.map((d) => ({ ...d, leaseSeconds: lease })) : definitions),
  );
}

/** Cron schedules of every module, kept registered by the scheduler role. */
export const SCHEDULES: { job: string; cron: string }[] = [...PEOPLE_SCHEDULES];

export interface Database {
  url: string;
  pool: Pool;
  embedded: EmbeddedDatabase | undefined;
  close(): Promise<void>;
}

/** How long a server waits for DATABASE_URL to answer, and a one-off CLI command (unless configured). */
export const SERVER_DB_WAIT_SECONDS = 30;
export const CLI_DB_WAIT_SECONDS = 5;

/**
 * Connects to DATABASE_URL (waiting up to config.dbWaitSeconds for it, or the purpose's default),
 * or starts/joins the embedded PostgreSQL of the data directory.
 */
export async function openDatabase(
  config: Config,
  logger: Logger,
  options: { purpose: OwnerPurpose; exclusive?: boolean; poolSize?: number },
): Promise<Database> {
  const embedded = config.databaseUrl
    ? undefined
    : await openEmbedded({
        dataDir: config.dataDir,
        logger,
        purpose: options.purpose,
        exclusive: options.exclusive ?? false,
      });
  const url = config.databaseUrl ?? embedded!.url;
  const pool = createPool({
    connectionString: url,
    max: options.poolSize ?? config.poolSize,
    // While closing, idle connections the server drops on its way down are expected, not news.
    onError: (err) => {
      if (!closing) logger.warn({ err }, 'database connection lost');
    },
  });
  let closing = false;
  if (config.databaseUrl) {
    const waitSeconds =
      config.dbWaitSeconds ?? (options.purpose === 'server' ? SERVER_DB_WAIT_SECONDS : CLI_DB_WAIT_SECONDS);
    try {
      await waitForDatabase({ db: pool, url, waitSeconds, logger });
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  }
  return {
    url,
    pool,
    embedded,
    async close() {
      closing = true;
      await pool.end().catch(() => undefined);
      await embedded?.stop();
    },
  };
}

/** Applies our migrations and installs the queue schema. Safe to run from several processes at once. */
export async function migrateAll(db: Database): Promise<number[]> {
  const applied = await migrate(db.pool);
  await installQueueSchema(db.url, APP_ROLE);
  return applied;
}

/**
 * The credential-encryption key: configured, or generated once into the data directory. With
 * DATABASE_URL it must be configured: processes on several machines share one database, and a key
 * generated by each would leave each unable to open what the others sealed.
 */
export async function resolveSecretKey(config: Config): Promise<Buffer> {
  if (config.secretKey) return config.secretKey;
  if (config.databaseUrl) {
    throw new ConfigError([
      'RELAYDESK_SECRET_KEY is required with DATABASE_URL: it encrypts provider credentials, and every ' +
        'process must use the same one. Make one with: openssl rand -base64 32 (and keep it safe: ' +
        'stored credentials cannot be read without it)',
    ]);
  }
  await mkdir(config.dataDir, { recursive: true, mode: 0o755 });
  const file = path.join(config.dataDir, 'secret-key');
  const existing = await readFile(file, 'utf8').catch(() => undefined);
  if (existing !== undefined) {
    const problems: string[] = [];
    const key = parseSecretKey(existing, file, problems);
    if (!key) throw new Error(problems.join('; '));
    return key;
  }
  const key = randomBytes(32);
  await writeFile(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' }).catch(async (err) => {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  });
  return resolveSecretKey(config);
}

export interface RunningRelaydesk {
  config: Config;
  db: Database;
  queue: JobQueue;
  app: App | undefined;
  /** Set on the very first start against an empty database. */
  bootstrap: CreatedTenant | undefined;
  /**
   * The first admin token while it has not been shown: made by this start, or by an earlier one
   * that stopped before showing it. Whoever shows it calls adminTokenShown().
   */
  unshownAdminToken: string | undefined;
  adminTokenShown(): Promise<void>;
  url: string | undefined;
  stop(): Promise<void>;
}

export interface StartOptions {
  config: Config;
  logger: Logger;
  registry?: JobRegistry;
  /** The time everything runs on; the system clock unless a test passes its own. */
  clock?: Clock;
}

export async function startRelaydesk({
  config,
  logger,
  registry,
  clock = systemClock,
}: StartOptions): Promise<RunningRelaydesk> {
  const role = config.role;
  const serves = role === 'all' || role === 'api';
  // A port that is taken (or an address that is not ours) fails the start before anything is
  // started or created, above all before the first start creates the tenant and its token.
  if (serves) await checkCanListen(config.host, config.port);
  const secretKey = await resolveSecretKey(config);
  const db = await openDatabase(config, logger, { purpose: 'server', exclusive: true });
  let queue: JobQueue | undefined;
  let app: App | undefined;
  let authCache: AuthCache | undefined;
  let imap: ImapListeners | undefined;
  let stopSla: (() => Promise<void>) | undefined;
  try {
    await migrateAll(db);

    const runsWorkers = role === 'all' || role === 'worker';
    const supervises = role === 'all' || role === 'worker' || role === 'scheduler';
    queue = new JobQueue({
      connectionString: db.url,
      logger,
      registry:
        registry ??
        defaultRegistry({ pool: db.pool, secretKey, logger, clock, jobLeaseSeconds: config.jobLeaseSeconds }),
      supervise: supervises,
      schedule: role === 'all' || role === 'scheduler',
      instanceName: `relaydesk-${role}-${process.pid}`,
    });
    await queue.start();
    await queue.ensureQueues();
    if (role === 'all' || role === 'scheduler') {
      for (const s of SCHEDULES) await queue.boss.schedule(s.job, s.cron, {}, { tz: 'UTC' });
    }
    if (role === 'all' || role === 'scheduler')
      stopSla = startSlaScheduler({ pool: db.pool, queue, logger, clock });
    if (runsWorkers) {
      await queue.startWorkers();
      imap = new ImapListeners({ pool: db.pool, connectionString: db.url, secretKey, logger, queue });
      await imap.start();
    }

    let url: string | undefined;
    let bootstrap: CreatedTenant | undefined;
    let unshownAdminToken: string | undefined;
    if (serves) {
      authCache = new AuthCache();
      await authCache.start(db.url, logger);
      app = await buildServer(
        {
          config,
          pool: db.pool,
          logger,
          queue,
          metrics: new Metrics(queue),
          authenticate: tokenAuthenticator({ pool: db.pool, clock, cache: authCache }),
          secretKey,
          clock,
        },
        ROUTES,
        HOOK_ROUTES,
      );
      url = await app.listen({ host: config.host, port: config.port });
      // Only now, with the server listening, is the first tenant created: its token is kept on disk
      // before the tenant commits, and shown by a later start if this one dies before showing it.
      bootstrap = await bootstrapDefaultTenant(db.pool, {
        beforeCommit: (created) => saveInitialAdminToken(config.dataDir, created.adminToken.token),
      });
      unshownAdminToken = bootstrap?.adminToken.token ?? (await unshownInitialAdminToken(config.dataDir));
      if (!bootstrap && unshownAdminToken) {
        const works = await tokenAuthenticator({ pool: db.pool, clock })(unshownAdminToken).then(
          () => true,
          (err: unknown) => {
            if (err instanceof AppError && err.code === 'unauthorized') return false;
            throw err;
          },
        );
        // Revoked, or its tenant deleted, since: nothing worth showing.
        if (!works) {
          unshownAdminToken = undefined;
          await markInitialAdminTokenShown(config.dataDir);
        }
      }
    }

    let stopping: Promise<void> | undefined;
    const running: RunningRelaydesk = {
      config,
      db,
      queue,
      app,
      bootstrap,
      unshownAdminToken,
      adminTokenShown: () => markInitialAdminTokenShown(config.dataDir),
      url,
      stop() {
        stopping ??= (async () => {
          // Stop taking requests, let workers finish (or hand their jobs back), then the database.
          await app?.close().catch((err) => logger.warn({ err }, 'closing the HTTP server failed'));
          await authCache?.stop();
          await stopSla?.();
          await imap?.stop().catch((err) => logger.warn({ err }, 'stopping IMAP listeners failed'));
          await queue
            ?.stop({ graceful: true, timeoutMs: 10_000 })
            .catch((err) => logger.warn({ err }, 'stopping the queue failed'));
          await db.close();
        })();
        return stopping;
      },
    };
    return running;
  } catch (err) {
    await app?.close().catch(() => undefined);
    await authCache?.stop();
    await stopSla?.();
    await imap?.stop().catch(() => undefined);
    await queue?.stop({ graceful: false }).catch(() => undefined);
    await db.close();
    throw err;
  }
}
