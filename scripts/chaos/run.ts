// `npm run chaos`: the whole pipeline under faults (docs/reliability.md). Starts its own PostgreSQL,
// 2 api, 2 worker and 1 scheduler processes, the provider simulators, an SMTP sink and Dovecot; feeds
// mail, replies and urgent tickets while it kills processes, stops the database once and makes the
// providers fail; then lets the pipeline drain, checks the invariants and prints one line. Exit code
// 1 when an invariant fails (2 when the run itself could not be set up).
//
//   npm run chaos                    the short mode (about 2 minutes of load)
//   npm run chaos -- --minutes 30    the long mode
//   npm run chaos -- --keep          keep the run's directory (logs of every process) afterwards
//
// Progress goes to stderr; the one result line to stdout.
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startBotFrameworkSimulator } from '../../simulators/botframework.ts';
import { startGraphSimulator } from '../../simulators/graph.ts';
import { startSlackSimulator } from '../../simulators/slack.ts';
import { startSmtpSimulator } from '../../simulators/smtp.ts';
import { startWebhookReceiver } from '../../simulators/webhook-receiver.ts';
import { Cluster } from '../../test/cluster.ts';
import { startDovecot } from '../../test/dovecot.ts';
import { type PgBouncer, startPgBouncer } from '../../test/pgbouncer.ts';
import { APP_ROLE } from '../../src/platform/db/tx.ts';
import { type Balancer, startBalancer } from './balancer.ts';
import { type ChaosDatabase, openChaosDatabase } from './database.ts';
import {
  clearProviderFaults,
  killLoop,
  newFaultLog,
  providerFaultLoop,
  stopDatabaseOnce,
  subscriptionLoop,
} from './faults.ts';
import { Feeders, type Rates } from './feeders.ts';
import { checkInvariants, graphMailboxes } from './invariants.ts';
import { type ChaosTenant, setUpTenants, type Simulators } from './setup.ts';
import { Traffic } from './traffic.ts';

interface Plan {
  mode: 'short' | 'long';
  feedSeconds: number;
  databaseStopAfterSeconds: number;
  databaseStopSeconds: number;
  killEveryMs: number;
  providerFaultsEveryMs: number;
  subscriptionsExpireEveryMs: number;
  drainSeconds: number;
  rates: Rates;
}

function plan(argv: string[]): { plan: Plan; keep: boolean } {
  const keep = argv.includes('--keep');
  const at = argv.indexOf('--minutes');
  const minutes = at >= 0 ? Number(argv[at + 1]) : undefined;
  if (minutes !== undefined && !(minutes > 0)) {
    process.stderr.write('--minutes takes a positive number\n');
    process.exit(2);
  }
  // The long run's rates make its figures (20,000 mails, 2,000 replies, 5,000 notifications in 30
  // minutes); the short run's fit a shared 2-core CI machine, so that it drains within its minutes.
  const rates: Rates = {
    mimePerSecond: 7,
    graphPerSecond: 3.5,
    imapPerSecond: 1.5,
    repliesPerSecond: 1.2,
    urgentPerSecond: 0.4,
  };
  const shortRates: Rates = {
    mimePerSecond: 4,
    graphPerSecond: 2,
    imapPerSecond: 1,
    repliesPerSecond: 1,
    urgentPerSecond: 0.4,
  };
  if (minutes === undefined)
    return {
      keep,
      plan: {
        mode: 'short',
        feedSeconds: 60,
        // Shorter than the long run's 30 s, so that CI's run stays near two minutes.
        databaseStopAfterSeconds: 20,
        databaseStopSeconds: 15,
        killEveryMs: 5_000,
        providerFaultsEveryMs: 15_000,
        subscriptionsExpireEveryMs: 15_000,
        drainSeconds: 240,
        rates: shortRates,
      },
    };
  const feedSeconds = Math.round(minutes * 60);
  return {
    keep,
    plan: {
      mode: 'long',
      feedSeconds,
      databaseStopAfterSeconds: Math.round(feedSeconds / 3),
      databaseStopSeconds: 30,
      killEveryMs: 8_000,
      providerFaultsEveryMs: 30_000,
      subscriptionsExpireEveryMs: 120_000,
      drainSeconds: 900,
      rates,
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (line: string) =>
  process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

async function main(): Promise<number> {
  const { plan: p, keep } = plan(process.argv.slice(2));
  const root = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-chaos-'));
  await chmod(root, 0o755); // PostgreSQL runs as the postgres user when we are root: it must reach its files
  let db: ChaosDatabase | undefined;
  let cluster: Cluster | undefined;
  let balancer: Balancer | undefined;
  let owner: pg.Client | undefined;
  const sims: Partial<Simulators> = {};
  const pooled = process.argv.includes('--pgbouncer');
  let bouncer: PgBouncer | undefined;
  let ok = false;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await cluster?.stopAll({ graceMs: 10_000 }).catch(() => undefined);
      await balancer?.close().catch(() => undefined);
      await owner?.end().catch(() => undefined);
      for (const s of [sims.graph, sims.bot, sims.slack, sims.receiver, sims.smtp])
        await s?.close().catch(() => undefined);
      await sims.dovecot?.stop().catch(() => undefined);
      await bouncer?.stop().catch(() => undefined);
      await db?.stop().catch(() => undefined);
      if (ok && !keep) await rm(root, { recursive: true, force: true });
      else say(`the run's directory (process logs in cluster/*.log) is kept: ${root}`);
    })());
  const interrupted = (signal: string) => {
    say(`${signal}: stopping everything the run started`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', () => interrupted('SIGINT'));
  process.once('SIGTERM', () => interrupted('SIGTERM'));
  // Whatever happens to this process, the Relaydesk processes it started do not outlive it.
  process.once('exit', () => cluster?.killAllNow());

  try {
    say(
      `${p.mode} mode: ${p.feedSeconds} s of load, database stop ${p.databaseStopSeconds} s; directory ${root}`,
    );
    db = await openChaosDatabase(root);
    sims.graph = await startGraphSimulator();
    sims.bot = await startBotFrameworkSimulator();
    sims.slack = await startSlackSimulator();
    sims.receiver = await startWebhookReceiver();
    sims.smtp = await startSmtpSimulator();
    sims.dovecot = await startDovecot('support@imap-alpha.test');
    const simulators = sims as Simulators;
    const secretKey = randomBytes(32).toString('base64');
    const env: NodeJS.ProcessEnv = {
      LOG_LEVEL: 'warn',
      RELAYDESK_PROVIDER_ORIGINS: 'http://127.0.0.1:*',
      RELAYDESK_ALLOW_PRIVATE_WEBHOOKS: '1',
      // A process restarted while PostgreSQL is stopped waits for it instead of giving up.
      RELAYDESK_DB_WAIT_SECONDS: '300',
      // A killed worker's jobs come back within a minute rather than the job types' own two to ten.
      // Not shorter: on a saturated machine a batch that is merely slow outlives a short lease, and
      // pg-boss counts each expiry as an attempt, so its mail ends dead-lettered (`failed`).
      RELAYDESK_JOB_LEASE_SECONDS: '60',
      // Subscriptions as short as Graph allows, renewed about every 20 s, and looked after every 5 s.
      RELAYDESK_GRAPH_SUBSCRIPTION_MINUTES: '45',
      RELAYDESK_UPKEEP_LOOKAHEAD_SECONDS: String(45 * 60 - 20),
      RELAYDESK_UPKEEP_INTERVAL_SECONDS: '5',
      RELAYDESK_RECONCILE_INTERVAL_SECONDS: '60',
      RELAYDESK_POOL_SIZE: '10',
    };
    if (pooled) {
      bouncer = await startPgBouncer({
        serverUrl: db.appUrl,
        users: [{ name: APP_ROLE, password: decodeURIComponent(new URL(db.appUrl).password) }],
        poolSize: 20,
      });
      say(`PgBouncer (transaction pooling) on port ${bouncer.port}, pid ${bouncer.pid}`);
    }
    cluster = await Cluster.create({
      databaseUrl: bouncer ? bouncer.through(db.appUrl) : db.appUrl,
      directDatabaseUrl: bouncer ? db.appUrl : undefined,
      secretKey,
      env,
      root: path.join(root, 'cluster'),
    });
    balancer = await startBalancer(cluster);
    env['RELAYDESK_PUBLIC_URL'] = balancer.url;
    await cluster.startLayout({ api: 2, worker: 2, scheduler: 1 });
    say(
      `processes up: ${cluster
        .processes()
        .map((x) => `${x.name} pid ${x.pid}`)
        .join(', ')}`,
    );

    const traffic = new Traffic(cluster);
    const tenants: ChaosTenant[] = await setUpTenants({
      names: ['alpha', 'bravo'],
      cliEnv: {
        ...process.env,
        LOG_LEVEL: 'warn',
        DATABASE_URL: db.appUrl,
        RELAYDESK_SECRET_KEY: secretKey,
        RELAYDESK_DATA_DIR: path.join(root, 'cli'),
      },
      traffic,
      sims: simulators,
      publicUrl: balancer.url,
    });
    say(`tenants ${tenants.map((t) => t.name).join(', ')} set up`);

    const connectOwner = async () => {
      const client = new pg.Client({ connectionString: db!.ownerUrl });
      client.on('error', () => {
        if (owner === client) owner = undefined;
      });
      await client.connect();
      owner = client;
    };
    await connectOwner();
    const feeders = new Feeders(tenants, simulators, traffic, () => {
      if (!owner && !traffic.databaseDown) void connectOwner().catch(() => undefined);
      return owner;
    });
    const faults = newFaultLog();
    const feedEnd = Date.now() + p.feedSeconds * 1000;
    const until = () => Date.now() >= feedEnd;
    const progress = setInterval(() => {
      say(
        `mails accepted ${feeders.load.mails.length}, replies ${feeders.load.replies.length}, urgent ${feeders.load.urgentTickets.length}, ` +
          `kills ${faults.kills.length}, database ${traffic.databaseDown ? 'STOPPED' : 'up'}, request failures ${traffic.failed}`,
      );
    }, 10_000);
    await Promise.all([
      feeders.run({ seconds: p.feedSeconds, rates: p.rates }),
      killLoop({ cluster, traffic, log: faults, everyMs: p.killEveryMs, until }),
      stopDatabaseOnce({
        db,
        traffic,
        log: faults,
        afterMs: p.databaseStopAfterSeconds * 1000,
        seconds: p.databaseStopSeconds,
      }),
      providerFaultLoop({ sims: simulators, log: faults, everyMs: p.providerFaultsEveryMs, until }),
      subscriptionLoop({
        sims: simulators,
        tenants,
        log: faults,
        everyMs: p.subscriptionsExpireEveryMs,
        until,
      }),
    ]);
    clearInterval(progress);
    clearProviderFaults(simulators);
    say(`load done; draining (at most ${p.drainSeconds} s)`);

    await owner?.end().catch(() => undefined);
    owner = undefined;
    const check = new pg.Client({ connectionString: db.ownerUrl });
    await check.connect();
    try {
      await drain(
        check,
        feeders.load.mails.map((m) => m.messageId),
        tenants,
        simulators,
        p.drainSeconds,
      );
      const verdict = await checkInvariants({
        db: check,
        tenants,
        sims: simulators,
        load: feeders.load,
        traffic,
        faults,
        mode: p.mode,
        minutes: Math.round((p.feedSeconds / 60) * 10) / 10,
      });
      for (const d of verdict.details) say(d);
      process.stdout.write(`${verdict.line}\n`);
      ok = verdict.ok;
    } finally {
      await check.end();
    }
  } catch (err) {
    say(`the run could not complete: ${(err as Error).stack ?? String(err)}`);
    await cleanup();
    return 2;
  }
  await cleanup();
  return ok ? 0 : 1;
}

/**
 * Waits until every accepted mail is in, no work that is due is left in the queue, and every Graph
 * mailbox is healthy on a subscription Graph has (the verdict's own test, invariants.ts graphMailboxes). That last one heals on the next renewal after the last
 * expiry (about 20 s here), or when a renewal job lost with a killed worker or the database stop
 * comes back with its lease: the drain waits for it instead of catching it half-way.
 */
async function drain(
  db: pg.Client,
  messageIds: string[],
  tenants: ChaosTenant[],
  sims: Simulators,
  seconds: number,
) {
  const until = Date.now() + seconds * 1000;
  const ids = messageIds.map((m) => m.toLowerCase());
  const tenantIds = tenants.map((t) => t.id);
  let last = '';
  for (;;) {
    const { rows } = await db.query<{ found: number; inbound: number; due: number; events: number }>(
      `SELECT (SELECT count(DISTINCT lower(btrim(rfc_message_id, '<>')))::int FROM ticket_messages
                WHERE tenant_id = ANY($1) AND lower(btrim(rfc_message_id, '<>')) = ANY($2)) AS found,
              (SELECT count(*)::int FROM inbound_messages WHERE tenant_id = ANY($1) AND status IN ('queued', 'processing')) AS inbound,
              (SELECT count(*)::int FROM pgboss.job
                WHERE name IN ('inbound.process', 'outbound.send', 'notify.deliver', 'notify.fanout', 'mailbox.renew')
                  AND state IN ('created', 'retry', 'active') AND start_after < now() + interval '10 seconds') AS due,
              (SELECT count(*)::int FROM events WHERE tenant_id = ANY($1) AND (dispatched_at IS NULL OR fanned_out_at IS NULL)) AS events`,
      [tenantIds, ids],
    );
    const graph = await graphMailboxes(db, tenantIds, sims);
    const live = graph.filter((g) => g.healthy).length;
    const r = rows[0]!;
    const state = `mails in ${r.found}/${ids.length}, inbound pending ${r.inbound}, jobs due ${r.due}, events pending ${r.events}, subscriptions healthy ${live}/${graph.length}`;
    if (r.found === ids.length && r.inbound === 0 && r.due === 0 && r.events === 0 && live === graph.length) {
      say(`drained: ${state}`);
      return;
    }
    if (Date.now() > until) {
      say(`not drained after ${seconds} s: ${state}`);
      return;
    }
    if (state !== last) say(`draining: ${state}`);
    last = state;
    await sleep(3000);
  }
}

process.exit(await main());
