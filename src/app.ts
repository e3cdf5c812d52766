// Composition root: turns a Config into running parts (database, queue, HTTP server, workers) and
// knows how to stop them in the right order. The CLI and the tests both start Relaydesk through here.
import { auditRoutes } from './modules/audit/routes.ts';
import { consoleRoutes } from './modules/console/routes.ts';
import { mailboxHealthTotals } from './modules/inbound/health.ts';
import { hookRoutes } from './modules/inbound/hooks.ts';
import { inboundJobs } from './modules/inbound/jobs.ts';
import { startUpkeepScheduler, warnWithoutPublicUrl } from './modules/inbound/upkeep.ts';
import { closeImapFetchPools } from './modules/inbound/providers/imap/fetch-pool.ts';
import { ImapListeners } from './modules/inbound/providers/imap/listener.ts';
import { oauthCallbackRoutes, oauthRoutes } from './modules/inbound/oauth-routes.ts';
import { inboundRoutes } from './modules/inbound/routes.ts';
import { type SmtpIngress, startSmtpIngress } from './modules/inbound/smtp-ingress.ts';
import { upkeepRoutes } from './modules/inbound/upkeep-routes.ts';
import { messageIdKey } from './modules/inbound/signing.ts';
import { OUTBOUND_SCHEDULES, outboundJobs } from './modules/outbound/jobs.ts';
import { ensurePartitions } from './modules/outbound/ledger.ts';
import { outboundRoutes } from './modules/outbound/routes.ts';
import { closeOutboundTransports, Transports } from './modules/outbound/transports.ts';
import type { AdapterChannel, ChannelAdapter } from './modules/notify/channel.ts';
import { startEventDispatcher } from './modules/notify/dispatcher.ts';
import { NOTIFY_SCHEDULES, notifyJobs } from './modules/notify/jobs.ts';
import { notificationRuleRoutes } from './modules/notify/routes.ts';
import { PEOPLE_SCHEDULES, peopleJobs } from './modules/people/jobs.ts';
import { TICKETS_SCHEDULES, ticketsJobs } from './modules/tickets/jobs.ts';
import { sessionRoutes } from './modules/sessions/routes.ts';
import { sessionAuthenticator, startSession } from './modules/sessions/sessions.ts';
import { slackChannel } from './modules/slack/adapter.ts';
import { slackIntegrationRoutes } from './modules/slack/routes.ts';
import { webhookChannel } from './modules/webhooks/channel.ts';
import { mergeRoutes } from './modules/merge/routes.ts';
import { mailTemplateRoutes } from './modules/outbound/template-routes.ts';
import { cannedReplyRoutes } from './modules/outbound/canned-reply-routes.ts';
import { peopleRoutes } from './modules/people/routes.ts';
import { unmappedRoutes } from './modules/people/unmapped-routes.ts';
import { queueRoutes } from './modules/queue/routes.ts';
import { AuthCache } from './modules/tokens/auth-cache.ts';
import { bootstrapDefaultTenant, type CreatedTenant } from './modules/tenants/service.ts';
import { slaRoutes } from './modules/sla/routes.ts';
import { ssoSignInRoutes } from './modules/sso/auth-routes.ts';
import { ssoSettingsRoutes } from './modules/sso/routes.ts';
import { startSlaScheduler } from './modules/sla/scheduler.ts';
import { teamsChannel } from './modules/teams/adapter.ts';
import { teamsHookRoutes } from './modules/teams/hook.ts';
import { teamsRoutes } from './modules/teams/routes.ts';
import { streamRoutes } from './modules/live/routes.ts';
import { historyRoutes } from './modules/history/routes.ts';
import { ticketRoutes } from './modules/tickets/routes.ts';
import { personTokenRoutes } from './modules/tokens/person-routes.ts';
import { tokenRoutes } from './modules/tokens/routes.ts';
import { tokenAuthenticator } from './modules/tokens/service.ts';
import { webhookRoutes } from './modules/webhooks/routes.ts';
import { type Clock, systemClock } from './platform/clock.ts';
import { type Database, migrateAll, openDatabase, resolveSecretKey } from './platform/db/database.ts';
import type { Config, UpkeepConfig } from './platform/config.ts';
import type { Pool } from './platform/db/pool.ts';
import { withSystemRead, withSystemTx } from './platform/db/tx.ts';
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
import { JobQueue } from './platform/queue/queue.ts';
import { JobRegistry } from './platform/queue/registry.ts';

/**
 * The notification channels of this installation, by channel (Teams, Slack, webhooks). The notify
 * module knows them only through this map: it never imports the modules that implement them.
 */
export function channelAdapters(deps: {
  pool: Pool;
  secretKey?: Buffer | undefined;
  clock: Clock;
  logger: Logger;
  /** RELAYDESK_ALLOW_PRIVATE_WEBHOOKS */
  allowPrivateWebhooks?: boolean | undefined;
}): Map<AdapterChannel, ChannelAdapter> {
  const adapters = new Map<AdapterChannel, ChannelAdapter>();
  if (!deps.secretKey) return adapters;
  const common = { pool: deps.pool, secretKey: deps.secretKey, clock: deps.clock, logger: deps.logger };
  adapters.set('teams', teamsChannel(common));
  adapters.set('slack', slackChannel(common));
  adapters.set('webhook', webhookChannel({ ...common, allowPrivate: deps.allowPrivateWebhooks ?? false }));
  return adapters;
}

export const HOOK_ROUTES: RouteModule[] = [
  hookRoutes,
  oauthCallbackRoutes,
  teamsHookRoutes,
  ssoSignInRoutes({ startSession }),
  consoleRoutes,
];
export const ROUTES: RouteModule[] = [
  // First: its hooks record every write of the routes after it.
  auditRoutes,
  sessionRoutes,
  tokenRoutes,
  peopleRoutes,
  personTokenRoutes,
  unmappedRoutes,
  mergeRoutes,
  ticketRoutes,
  outboundRoutes,
  queueRoutes,
  inboundRoutes,
  upkeepRoutes,
  oauthRoutes,
  slaRoutes,
  mailTemplateRoutes,
  cannedReplyRoutes,
  notificationRuleRoutes((deps) =>
    channelAdapters({ ...deps, allowPrivateWebhooks: deps.config.allowPrivateWebhooks }),
  ),
  slackIntegrationRoutes,
  webhookRoutes,
  teamsRoutes,
  ssoSettingsRoutes,
  streamRoutes,
  historyRoutes,
];

/** Every job type of every module. Modules add their definitions here. */
export function defaultRegistry(deps: {
  pool: Pool;
  secretKey: Buffer;
  logger: Logger;
  clock: Clock;
  jobLeaseSeconds?: number | undefined;
  publicUrl?: string | undefined;
  upkeep?: UpkeepConfig | undefined;
  oauth?: Config['oauth'] | undefined;
  deliveryRetentionDays?: number | undefined;
  faultKillAt?: string | undefined;
  allowPrivateWebhooks?: boolean | undefined;
}): JobRegistry {
  const definitions = [
    ...peopleJobs(deps.pool),
    ...ticketsJobs({ pool: deps.pool, clock: deps.clock }),
    ...inboundJobs({
      pool: deps.pool,
      messageIdKey: messageIdKey(deps.secretKey),
      secretKey: deps.secretKey,
      logger: deps.logger,
      clock: deps.clock,
      publicUrl: deps.publicUrl,
      oauth: deps.oauth,
      ...(deps.upkeep ? { upkeep: deps.upkeep } : {}),
    }),
    ...outboundJobs({
      pool: deps.pool,
      clock: deps.clock,
      logger: deps.logger,
      messageIdKey: messageIdKey(deps.secretKey),
      transports: new Transports({
        pool: deps.pool,
        secretKey: deps.secretKey,
        clock: deps.clock,
        oauth: deps.oauth,
      }),
      oauth: deps.oauth,
      retentionDays: deps.deliveryRetentionDays,
      killAt: deps.faultKillAt,
      leaseSeconds: deps.jobLeaseSeconds,
    }),
    ...notifyJobs({
      pool: deps.pool,
      clock: deps.clock,
      logger: deps.logger,
      messageIdKey: messageIdKey(deps.secretKey),
      adapters: channelAdapters(deps),
      leaseSeconds: deps.jobLeaseSeconds,
      killAt: deps.faultKillAt,
    }),
  ];
  const lease = deps.jobLeaseSeconds;
  return new JobRegistry().register(
    ...(lease ? definitions.map((d) => ({ ...d, leaseSeconds: lease })) : definitions),
  );
}

/** Cron schedules of every module, kept registered by the scheduler role. */
export const SCHEDULES: { job: string; cron: string }[] = [
  ...PEOPLE_SCHEDULES,
  ...TICKETS_SCHEDULES,
  ...OUTBOUND_SCHEDULES,
  ...NOTIFY_SCHEDULES,
];

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
  if (serves && config.smtpPort) await checkCanListen(config.host, config.smtpPort);
  const secretKey = await resolveSecretKey(config);
  const db = await openDatabase(config, logger, { purpose: 'server', exclusive: true });
  let queue: JobQueue | undefined;
  let app: App | undefined;
  let authCache: AuthCache | undefined;
  let imap: ImapListeners | undefined;
  let stopSla: (() => Promise<void>) | undefined;
  let stopUpkeep: (() => Promise<void>) | undefined;
  let stopDispatcher: (() => Promise<void>) | undefined;
  let smtp: SmtpIngress | undefined;
  try {
    await migrateAll(db);
    // The ledger's partitions for this month and the next ones, in case no scheduler ran for months.
    await withSystemTx(db.pool, (sys) => ensurePartitions(sys, { now: clock.now(), monthsAhead: 3 }));

    const runsWorkers = role === 'all' || role === 'worker';
    const supervises = role === 'all' || role === 'worker' || role === 'scheduler';
    queue = new JobQueue({
      connectionString: db.url,
      listen: !db.pooled,
      logger,
      registry:
        registry ??
        defaultRegistry({
          pool: db.pool,
          secretKey,
          logger,
          clock,
          jobLeaseSeconds: config.jobLeaseSeconds,
          publicUrl: config.publicUrl,
          upkeep: config.upkeep,
          oauth: config.oauth,
          deliveryRetentionDays: config.deliveryRetentionDays,
          faultKillAt: config.faultKillAt,
          allowPrivateWebhooks: config.allowPrivateWebhooks,
        }),
      supervise: supervises,
      schedule: role === 'all' || role === 'scheduler',
      instanceName: `relaydesk-${role}-${process.pid}`,
    });
    await queue.start();
    await queue.ensureQueues();
    // Every role: a worker renews subscriptions and an api process connects mailboxes by OAuth with
    // its own RELAYDESK_PUBLIC_URL, so each one that lacks it says so.
    await warnWithoutPublicUrl(db.pool, config, logger);
    if (role === 'all' || role === 'scheduler') {
      for (const s of SCHEDULES) await queue.schedule(s.job, s.cron);
    }
    if (role === 'all' || role === 'scheduler') {
      stopSla = startSlaScheduler({ pool: db.pool, queue, logger, clock });
      stopUpkeep = startUpkeepScheduler(
        {
          pool: db.pool,
          secretKey,
          clock,
          logger,
          publicUrl: config.publicUrl,
          upkeep: config.upkeep,
          oauth: config.oauth,
        },
        queue,
      );
    }
    if (runsWorkers) {
      await queue.startWorkers();
      stopDispatcher = startEventDispatcher({
        pool: db.pool,
        queue,
        logger,
        connectionString: db.directUrl,
        adapters: channelAdapters({
          pool: db.pool,
          secretKey,
          clock,
          logger,
          allowPrivateWebhooks: config.allowPrivateWebhooks,
        }),
      });
      imap = new ImapListeners({ pool: db.pool, connectionString: db.directUrl, secretKey, logger, queue });
      await imap.start();
    }

    let url: string | undefined;
    let bootstrap: CreatedTenant | undefined;
    let unshownAdminToken: string | undefined;
    if (serves) {
      authCache = new AuthCache();
      await authCache.start(db.directUrl, logger);
      app = await buildServer(
        {
          config,
          pool: db.pool,
          logger,
          queue,
          metrics: new Metrics(queue, {
            mailboxHealth: () => withSystemRead(db.pool, mailboxHealthTotals),
          }),
          authenticate: tokenAuthenticator({ pool: db.pool, clock, cache: authCache }),
          authenticateSession: sessionAuthenticator({ pool: db.pool, clock }),
          secretKey,
          clock,
          databaseUrl: db.directUrl,
        },
        ROUTES,
        HOOK_ROUTES,
      );
      url = await app.listen({ host: config.host, port: config.port });
      if (config.smtpPort !== undefined)
        smtp = await startSmtpIngress({
          pool: db.pool,
          queue,
          logger,
          host: config.host,
          port: config.smtpPort,
          tls: config.smtpTls,
        });
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
          await smtp?.close().catch((err) => logger.warn({ err }, 'closing the SMTP listener failed'));
          await authCache?.stop();
          await stopSla?.();
          await stopUpkeep?.();
          await stopDispatcher?.();
          await imap?.stop().catch((err) => logger.warn({ err }, 'stopping IMAP listeners failed'));
          await queue
            ?.stop({ graceful: true, timeoutMs: 10_000 })
            .catch((err) => logger.warn({ err }, 'stopping the queue failed'));
          // After the queue: its last jobs may still have been fetching through these connections.
          await closeImapFetchPools();
          closeOutboundTransports();
          await db.close();
        })();
        return stopping;
      },
    };
    return running;
  } catch (err) {
    await app?.close().catch(() => undefined);
    await smtp?.close().catch(() => undefined);
    await authCache?.stop();
    await stopSla?.();
    await stopUpkeep?.();
    await stopDispatcher?.();
    await imap?.stop().catch(() => undefined);
    await queue?.stop({ graceful: false }).catch(() => undefined);
    await closeImapFetchPools();
    closeOutboundTransports();
    await db.close();
    throw err;
  }
}
