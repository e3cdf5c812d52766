// Subscription upkeep benchmark: `npm run bench -- upkeep` (issue 11).
//
// 10,000 Graph mailboxes (100 tenants × 100; BENCH_UPKEEP_TENANTS=1 puts them in one tenant), every
// subscription expiring within the next hour and so inside upkeep's look-ahead: all due at once.
// A whole Relaydesk (API, workers and scheduler in this process, `startRelaydesk`) renews them
// against the Graph simulator, which answers 5 % of the renewal PATCHes with a fault: 429 with a
// Retry-After of 2, 3 or 5 s, 503 or 500 without one (upkeep backs off, 30 s ± 20 %, doubling), or
// 404, after which upkeep makes a new subscription (the simulator runs the validation handshake
// against this Relaydesk's /hooks/graph/{id}, at RELAYDESK_PUBLIC_URL) and deletes the stale one.
// Measured: the time until every mailbox is healthy again with its new expiry (from the first
// scheduler pass, which runs as Relaydesk starts), renewals per second, the simulator's PATCH calls
// against mailboxes renewed and faults retried (no mailbox renewed twice), Retry-After violations,
// recreations. Then the scheduler's pass loop alone (no workers, no API) with nothing due, for
// BENCH_UPKEEP_IDLE_SECONDS, in a process of its own (upkeep-idle.ts): its CPU as a share of one
// core (process.cpuUsage()).
//
// Load: the tenants through createTenant; the mailboxes (sealed credentials, as mailboxes.ts seals
// them) and their health rows with bulk SQL through the owner pool; the simulator's subscriptions
// seeded to match (ids, clientState, expiry) without handshakes. Each health row says it was last
// reconciled at load time, as a running install's would, so no scheduled reconciliation joins in:
// what is measured is renewal alone.
//
// Faults: the simulator takes the first fault whose path matches (simulators/faults.ts), so one
// fault with a probability per kind would hide the others. Each kind instead owns some first hex
// digits of the subscription id (`/v1.0/subscriptions/<digit>`), each hit with BENCH_UPKEEP_FAULT_RATE:
// the kinds interleave over the run, and a subscription that drew a kind draws the same again on a
// retry (a rate-limited one is rate-limited again at the same rate).
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { type GraphSimulator, startGraphSimulator } from '../simulators/graph.ts';
import { startRelaydesk } from '../src/app.ts';
import { normalizeEmail } from '../src/modules/people/service.ts';
import { createTenant } from '../src/modules/tenants/service.ts';
import type { Config, LogLevel } from '../src/platform/config.ts';
import { seal } from '../src/platform/crypto.ts';
import { migrateAll, openDatabase } from '../src/platform/db/database.ts';
import type { Pool } from '../src/platform/db/pool.ts';
import { uuidv7 } from '../src/platform/ids.ts';
import { createLogger } from '../src/platform/logging.ts';
import {
  benchConfig,
  defer,
  fmt,
  freePort,
  heading,
  line,
  machineBusySeconds,
  ownerPool,
  postmasterPid,
  runJsonChild,
  sleep,
  table,
  tempDir,
  treeCpu,
  treeCpuDelta,
  usingExternalDatabase,
  verdict,
  waitForQuietMachine,
} from './lib.ts';
import type { IdleResult, IdleSpec } from './upkeep-idle.ts';

const MAILBOXES = Number(process.env['BENCH_UPKEEP_MAILBOXES'] ?? 10_000);
const TENANTS = Number(process.env['BENCH_UPKEEP_TENANTS'] ?? 100);
const FAULT_RATE = Number(process.env['BENCH_UPKEEP_FAULT_RATE'] ?? 0.05);
/** How long to wait for every mailbox to be healthy before reporting the ones still waiting. */
const WAIT_SECONDS = Number(process.env['BENCH_UPKEEP_WAIT'] ?? 200);
const IDLE_SECONDS = Number(process.env['BENCH_UPKEEP_IDLE_SECONDS'] ?? 60);
/** The idle pass loop's interval: 1 s is the worst case (the default interval is 900 s). */
const IDLE_INTERVAL_SECONDS = Number(process.env['BENCH_UPKEEP_IDLE_INTERVAL'] ?? 1);
/** The idle process measured before its loop starts (its pool and queue client open). */
const IDLE_BASELINE_SECONDS = Number(process.env['BENCH_UPKEEP_IDLE_BASELINE_SECONDS'] ?? 10);
const SEED = Number(process.env['BENCH_UPKEEP_SEED'] ?? 11);
const TARGET_HEALTHY_SECONDS = 120;
const TARGET_IDLE_PERCENT = 2;

/** Which fault answers a renewal, by the first hex digit of the subscription id (see the top). */
const FAULT_PLAN: { digits: string; status: number; retryAfter?: number }[] = [
  { digits: '01', status: 429, retryAfter: 2 },
  { digits: '23', status: 429, retryAfter: 3 },
  { digits: '45', status: 429, retryAfter: 5 },
  { digits: '678', status: 503 },
  { digits: '9ab', status: 500 },
  { digits: 'cdef', status: 404 },
];

/** CPU counters at a start; `end` gives the cores each party kept busy since. */
async function cpuMeter(pgPid: number | undefined) {
  const wall = performance.now();
  const machine = await machineBusySeconds();
  const self = process.cpuUsage();
  const pg = pgPid ? await treeCpu(pgPid) : undefined;
  return async () => {
    const seconds = (performance.now() - wall) / 1000;
    const own = process.cpuUsage(self);
    const processCpu = (own.user + own.system) / 1e6;
    const pgCpu = pg && pgPid ? treeCpuDelta(pg, await treeCpu(pgPid)) : 0;
    const all = (await machineBusySeconds()) - machine;
    const per = (v: number) => Math.round((100 * v) / seconds) / 100;
    return {
      seconds,
      processCpu,
      pgCpu,
      process: per(processCpu),
      pg: per(pgCpu),
      other: per(Math.max(0, all - processCpu - pgCpu)),
    };
  };
}

/**
 * Tenants, mailboxes with sealed credentials, health rows and the simulator's subscriptions to
 * match. Returns the tenant ids.
 */
async function load(input: {
  pool: Pool;
  owner: Pool;
  sim: GraphSimulator;
  secretKey: Buffer;
  publicUrl: string;
}): Promise<string[]> {
  const { pool, owner, sim, secretKey, publicUrl } = input;
  const tenantIds: string[] = [];
  for (let t = 0; t < TENANTS; t++)
    tenantIds.push((await createTenant(pool, { name: `upkeep-bench-${t}` })).tenant.id);
  const settings = JSON.stringify({ graph: { apiBaseUrl: sim.apiBaseUrl, tokenUrl: sim.tokenUrl } });
  const credentials = JSON.stringify(sim.credentials);
  const now = Date.now();
  const CHUNK = 2_000;
  for (let from = 0; from < MAILBOXES; from += CHUNK) {
    const rows = Array.from({ length: Math.min(CHUNK, MAILBOXES - from) }, (_, k) => {
      const i = from + k;
      const tenant = i % TENANTS;
      const id = uuidv7();
      const address = `desk${i}@t${tenant}.upkeep.test`;
      // Spread over ten minutes, all within the look-ahead (24 h) and alive when renewed.
      const expiresAt = new Date(now + 3_600_000 + (i % 600) * 1000).toISOString();
      const clientState = randomBytes(32).toString('base64url');
      const subscriptionId = sim.seedSubscription({
        resource: `users/${address}/mailFolders('Inbox')/messages`,
        notificationUrl: `${publicUrl}/hooks/graph/${id}`,
        lifecycleNotificationUrl: `${publicUrl}/hooks/graph/${id}`,
        clientState,
        expirationDateTime: expiresAt,
      });
      return {
        tenantId: tenantIds[tenant]!,
        id,
        address,
        sealed: seal(secretKey, credentials).toString('hex'),
        subscriptionId,
        clientState,
        expiresAt,
      };
    });
    const col = <K extends keyof (typeof rows)[number]>(k: K) => rows.map((r) => r[k]);
    await owner.query(
      `INSERT INTO mailboxes (tenant_id, id, kind, address, address_normalized, settings, credentials)
       SELECT x.t, x.id, 'graph', x.a, x.n, $5::jsonb, decode(x.c, 'hex')
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $6::text[]) AS x(t, id, a, n, c)`,
      [
        col('tenantId'),
        col('id'),
        col('address'),
        rows.map((r) => normalizeEmail(r.address)),
        settings,
        col('sealed'),
      ],
    );
    // Renewed six days ago, reconciled just now (a running install's rows), healthy.
    await owner.query(
      `INSERT INTO mailbox_health (tenant_id, mailbox_id, status, subscription_id, client_state, expires_at,
                                   last_renewal_at, last_renewal_result, last_reconcile_at)
       SELECT x.t, x.id, 'healthy', x.s, x.cs, x.e, now() - interval '6 days', 'renewed', now()
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[]) AS x(t, id, s, cs, e)`,
      [col('tenantId'), col('id'), col('subscriptionId'), col('clientState'), col('expiresAt')],
    );
  }
  await owner.query('ANALYZE mailboxes; ANALYZE mailbox_health');
  return tenantIds;
}

export async function benchUpkeep(): Promise<Record<string, unknown>> {
  const perTenant = Math.ceil(MAILBOXES / TENANTS);
  heading(
    `upkeep: ${fmt(MAILBOXES)} Graph mailboxes (${fmt(TENANTS)} tenant${TENANTS === 1 ? '' : 's'} × ${fmt(perTenant)}) due at once, ` +
      `${fmt(FAULT_RATE * 100)} % of renewals faulted, a whole Relaydesk against the Graph simulator`,
  );
  const dataDir = await tempDir('upkeep');
  const logLevel = (process.env['BENCH_LOG_LEVEL'] ?? 'error') as LogLevel;
  const logger = createLogger(logLevel);
  line(
    `starting the database (${usingExternalDatabase() ? 'DATABASE_URL' : `embedded PostgreSQL in ${dataDir}`}) ...`,
  );
  // The database is opened here, not by Relaydesk: Relaydesk is stopped before the idle measurement
  // and the database must outlive it.
  const db = await openDatabase(benchConfig(dataDir), logger, {
    purpose: 'test',
    exclusive: true,
    poolSize: 4,
  });
  defer('close the database', () => db.close());
  await migrateAll(db);
  const owner = ownerPool(db);
  const pgPid = usingExternalDatabase() ? undefined : await postmasterPid(dataDir);

  const sim = await startGraphSimulator({ seed: SEED });
  defer('stop the Graph simulator', () => sim.close());
  const secretKey = randomBytes(32);
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;

  const loadStarted = performance.now();
  await load({ pool: db.pool, owner, sim, secretKey, publicUrl });
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  line(
    `loaded ${fmt(TENANTS)} tenants, ${fmt(MAILBOXES)} mailboxes with sealed credentials and health rows, ` +
      `and ${fmt(sim.subscriptions().length)} simulator subscriptions in ${fmt(loadSeconds, 1)} s`,
  );
  for (const plan of FAULT_PLAN)
    for (const digit of plan.digits)
      sim.fault({
        pathPrefix: `/v1.0/subscriptions/${digit}`,
        method: 'PATCH',
        status: plan.status,
        ...(plan.retryAfter ? { retryAfter: plan.retryAfter } : {}),
        times: Infinity,
        probability: FAULT_RATE,
      });

  const base = benchConfig(dataDir, { port, logLevel });
  const config: Config = {
    ...base,
    databaseUrl: db.url,
    databaseMigrationUrl: db.ownerUrl,
    secretKey,
    publicUrl,
    providerOrigins: ['http://127.0.0.1:*'],
  };
  const lookAhead = config.upkeep.lookAheadSeconds;

  // ---- renewal: Relaydesk's scheduler runs its first pass as it starts, and finds every mailbox due.
  await waitForQuietMachine(pgPid, 10);
  const meter = await cpuMeter(pgPid);
  const startedAt = Date.now();
  const started = performance.now();
  const running = await startRelaydesk({ config, logger });
  defer('stop relaydesk', () => running.stop());
  const startupSeconds = (performance.now() - started) / 1000;

  const progress = async () =>
    (
      await owner.query<{ renewed: number; unhealthy: number }>(
        `SELECT count(*) FILTER (WHERE status = 'healthy' AND expires_at > now() + make_interval(secs => $1))::int AS renewed,
                count(*) FILTER (WHERE status <> 'healthy')::int AS unhealthy
           FROM mailbox_health`,
        [lookAhead],
      )
    ).rows[0]!;
  const marks = [0.5, 0.9, 0.95, 0.99, 1];
  const reachedAt = new Map<number, number>();
  let maxUnhealthy = 0;
  let lastPrinted = 0;
  let current: { renewed: number; unhealthy: number };
  const samples: { elapsed: number; renewed: number }[] = [];
  // CPU over the wave of first attempts (to 99 %), apart from the long wait for the last retries.
  let wave: Awaited<ReturnType<typeof meter>> | undefined;
  for (;;) {
    current = await progress();
    const elapsed = (performance.now() - started) / 1000;
    samples.push({ elapsed, renewed: current.renewed });
    maxUnhealthy = Math.max(maxUnhealthy, current.unhealthy);
    for (const m of marks)
      if (!reachedAt.has(m) && current.renewed >= Math.ceil(m * MAILBOXES)) reachedAt.set(m, elapsed);
    if (!wave && reachedAt.has(0.99)) wave = await meter();
    if (current.renewed >= MAILBOXES || elapsed > WAIT_SECONDS) break;
    if (elapsed - lastPrinted >= 10) {
      lastPrinted = elapsed;
      line(
        `  ${fmt(elapsed)} s: ${fmt(current.renewed)} renewed, ${fmt(current.unhealthy)} not healthy (renewing, degraded or error)`,
      );
    }
    await sleep(250);
  }
  const cores = wave ?? (await meter());
  const finishedAll = current.renewed >= MAILBOXES;

  // When the first pass enqueued its jobs: the moment the mailboxes were claimed.
  const { rows: jobRows } = await owner.query<{ state: string; n: number; first: string | null }>(
    `SELECT state, count(*)::int AS n, min(created_on) AS first FROM pgboss.job WHERE name = 'mailbox.renew' GROUP BY state`,
  );
  const firstClaim = Math.min(...jobRows.map((r) => (r.first ? Date.parse(r.first) : Infinity)));
  const firstPassSeconds = (firstClaim - startedAt) / 1000;
  const jobs = Object.fromEntries(jobRows.map((r) => [r.state, r.n]));
  // How long a renewal job ran (fetched → completed), and how long the first pass's jobs waited.
  const { rows: durationRows } = await owner.query<{ p50: number; p99: number; max: number; wait99: number }>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY d) AS p99,
            max(d) AS max, percentile_cont(0.99) WITHIN GROUP (ORDER BY w) AS wait99
       FROM (SELECT extract(epoch FROM completed_on - started_on)::float8 * 1000 AS d,
                    extract(epoch FROM started_on - start_after)::float8 AS w
               FROM pgboss.job WHERE name = 'mailbox.renew' AND state = 'completed') j`,
  );
  const durations = durationRows[0]!;
  const since = (m: number) =>
    reachedAt.has(m) ? Math.max(0, reachedAt.get(m)! - firstPassSeconds) : undefined;
  const allSeconds = since(1);
  // Undefined when the wait ended before the target (a shortened run).
  const withinTarget =
    finishedAll || samples.at(-1)!.elapsed - firstPassSeconds >= TARGET_HEALTHY_SECONDS
      ? (samples.filter((x) => x.elapsed - firstPassSeconds <= TARGET_HEALTHY_SECONDS).at(-1)?.renewed ?? 0)
      : undefined;

  // The simulator's view: every PATCH, by answer.
  const patches = sim.log.filter((l) => l.method === 'PATCH' && l.path.startsWith('/v1.0/subscriptions/'));
  const byStatus: Record<string, number> = {};
  for (const p of patches) byStatus[p.status] = (byStatus[p.status] ?? 0) + 1;
  const okPatches = byStatus['200'] ?? 0;
  const retriedFaults = (byStatus['429'] ?? 0) + (byStatus['500'] ?? 0) + (byStatus['503'] ?? 0);
  const notFound = byStatus['404'] ?? 0;
  const counts = sim.counts();
  const perSubscription = [...sim.renewalsBySubscription().values()];
  const maxPerSubscription = perSubscription.length ? Math.max(...perSubscription) : 0;
  const { rows: results } = await owner.query<{ result: string | null; n: number }>(
    'SELECT last_renewal_result AS result, count(*)::int AS n FROM mailbox_health GROUP BY 1',
  );
  const result = Object.fromEntries(results.map((r) => [r.result ?? 'none', r.n]));
  // "renewed" also counts mailboxes not renewed yet (the loaded rows say renewed six days ago).
  const { rows: renewedRows } = await owner.query<{ renewed: number; recreated: number }>(
    `SELECT count(*) FILTER (WHERE last_renewal_result = 'renewed' AND expires_at > now() + make_interval(secs => $1))::int AS renewed,
            count(*) FILTER (WHERE last_renewal_result = 'recreated')::int AS recreated
       FROM mailbox_health`,
    [lookAhead],
  );
  const renewed = renewedRows[0]!.renewed;
  const recreated = renewedRows[0]!.recreated;
  const violations = sim.retryAfterViolations();
  const accounted = patches.length === renewed + retriedFaults + notFound;
  const onceEach = maxPerSubscription <= 1 && counts.renewed === renewed && okPatches === renewed;
  const recreationsMatch = counts.created === recreated && notFound === recreated;
  // One job per claimed mailbox and one per retried fault; none failed; only retries still waiting.
  const jobsAccounted =
    (jobs['completed'] ?? 0) + (jobs['created'] ?? 0) === MAILBOXES + retriedFaults &&
    Object.keys(jobs).every((state) => state === 'completed' || state === 'created');
  const rate95 = reachedAt.has(0.95) && since(0.95)! > 0 ? (0.95 * MAILBOXES) / since(0.95)! : undefined;
  const rateAll = allSeconds ? MAILBOXES / allSeconds : undefined;
  const waiting = finishedAll
    ? []
    : (
        await owner.query<{
          status: string;
          failures: number;
          not_before: string | null;
          subscription_id: string | null;
        }>(
          `SELECT status, consecutive_failures AS failures, not_before, subscription_id FROM mailbox_health
            WHERE NOT (status = 'healthy' AND expires_at > now() + make_interval(secs => $1))`,
          [lookAhead],
        )
      ).rows;

  // ---- the whole all-roles process, idle (context: pg-boss workers poll every second).
  await sleep(3_000);
  const allRolesIdle = await cpuMeter(pgPid);
  await sleep(10_000);
  const allRolesIdleCores = await allRolesIdle();
  await running.stop();

  // ---- the scheduler's pass loop alone, nothing due, in a process of its own.
  await waitForQuietMachine(pgPid, 10);
  const idlePg = await cpuMeter(pgPid);
  const idle = (await runJsonChild('upkeep-idle.ts', {
    url: db.url,
    publicUrl,
    seconds: IDLE_SECONDS,
    baselineSeconds: IDLE_BASELINE_SECONDS,
    intervalSeconds: IDLE_INTERVAL_SECONDS,
  } satisfies IdleSpec)) as IdleResult;
  const idleOther = await idlePg();
  const idlePercent = idle.loopPercent;
  // PostgreSQL's share over the child's whole life (start-up, baseline, loop): an upper bound for the loop's.
  const idlePgPercent = (100 * idleOther.pgCpu) / idleOther.seconds;

  // ---- report
  const s = (v: number | undefined, digits = 1) => (v === undefined ? 'not reached' : `${fmt(v, digits)} s`);
  line();
  line(
    `Relaydesk started in ${fmt(startupSeconds, 1)} s; its first scheduler pass claimed the mailboxes ${fmt(firstPassSeconds, 1)} s after the start; times below count from that pass`,
  );
  if (!finishedAll) {
    const statuses: Record<string, number> = {};
    for (const w of waiting) statuses[w.status] = (statuses[w.status] ?? 0) + 1;
    const next = waiting
      .map((w) => (w.not_before ? (Date.parse(w.not_before) - firstClaim) / 1000 : NaN))
      .filter((v) => !Number.isNaN(v));
    line(
      `  ${fmt(waiting.length)} mailboxes were not renewed ${fmt(WAIT_SECONDS)} s after the start: ${JSON.stringify(statuses)}, ` +
        `failures ${JSON.stringify(waiting.map((w) => w.failures))}, next tries at ${next.map((v) => `${fmt(v)} s`).join(', ')}`,
    );
    // What the simulator answered each of their PATCHes, in order.
    const answers = waiting.map((w) =>
      patches.filter((p) => p.path === `/v1.0/subscriptions/${w.subscription_id}`).map((p) => p.status),
    );
    line(`  their PATCHes were answered ${answers.map((a) => a.join(' → ')).join('; ')}`);
  }
  table([
    ['measure', 'result', 'target', ''],
    [
      `every mailbox healthy again (${fmt(MAILBOXES)})`,
      s(allSeconds),
      `≤ ${TARGET_HEALTHY_SECONDS} s`,
      verdict(allSeconds !== undefined && allSeconds <= TARGET_HEALTHY_SECONDS),
    ],
    [
      `  renewed within ${TARGET_HEALTHY_SECONDS} s`,
      withinTarget === undefined ? 'not waited for' : fmt(withinTarget),
      '',
      '',
    ],
    [
      '  50 / 90 / 95 / 99 % renewed',
      [0.5, 0.9, 0.95, 0.99].map((m) => (since(m) === undefined ? '–' : fmt(since(m)!, 1))).join(' / ') +
        ' s',
      '',
      '',
    ],
    ['renewals per second, first 95 %', rate95 === undefined ? '–' : `${fmt(rate95, 1)}/s`, '', ''],
    ['renewals per second, all', rateAll === undefined ? '–' : `${fmt(rateAll, 1)}/s`, '', ''],
    [
      'renew PATCH calls (simulator)',
      `${fmt(patches.length)} = ${fmt(renewed)} renewed + ${fmt(retriedFaults)} retried faults + ${fmt(notFound)} 404`,
      'equal',
      verdict(accounted),
    ],
    ['  answers', JSON.stringify(byStatus), '', ''],
    ['successful PATCHes per subscription, max', String(maxPerSubscription), '≤ 1', verdict(onceEach)],
    ['Retry-After violations', String(violations), '0', verdict(violations === 0)],
    [
      'recreations (404 → new subscription)',
      `${fmt(recreated)} (simulator: ${fmt(counts.created)} created, ${fmt(counts.deleted)} deleted)`,
      `= ${fmt(notFound)} 404`,
      verdict(recreationsMatch),
    ],
    ['most mailboxes not healthy at once', fmt(maxUnhealthy), '', ''],
    [
      'renewal job, fetched → completed, p50 / p99 / max',
      `${fmt(durations.p50 ?? 0)} / ${fmt(durations.p99 ?? 0)} / ${fmt(durations.max ?? 0)} ms`,
      '',
      '',
    ],
    [
      'renewal jobs by state (created: a retry not due yet)',
      JSON.stringify(jobs),
      `${fmt(MAILBOXES + retriedFaults)} in all`,
      verdict(jobsAccounted),
    ],
    [
      `scheduler pass loop idle, every ${fmt(IDLE_INTERVAL_SECONDS)} s, ${fmt(IDLE_SECONDS)} s`,
      `${fmt(idlePercent, 2)} % of a core`,
      `< ${TARGET_IDLE_PERCENT} %`,
      verdict(idlePercent < TARGET_IDLE_PERCENT),
    ],
    [
      '  passes; PostgreSQL meanwhile (at most)',
      `${fmt(idle.passes)}; ${fmt(idlePgPercent, 2)} % of a core`,
      '',
      '',
    ],
    [
      `  the same process before the loop starts, ${fmt(IDLE_BASELINE_SECONDS)} s`,
      `${fmt(idle.baselinePercent, 2)} % of a core`,
      '',
      '',
    ],
    [
      'all-roles process idle, 10 s (context)',
      `${fmt(allRolesIdleCores.process * 100, 1)} % of a core`,
      '',
      '',
    ],
  ]);
  line(
    `cores busy ${wave ? 'until 99 % were renewed' : 'over the whole wait'} (${fmt(cores.seconds, 1)} s): this process (Relaydesk, simulator, polling) ${fmt(cores.process, 2)}, ` +
      `PG ${fmt(cores.pg, 2)}, other ${fmt(cores.other, 2)}; idle loop: other ${fmt(idleOther.other, 2)}`,
  );
  line(
    `renewal results: ${JSON.stringify(result)}; the idle process's first pass claimed ${JSON.stringify(idle.warm)}`,
  );

  return {
    benchmark: 'upkeep',
    loadAverage: os.loadavg(),
    mailboxes: MAILBOXES,
    tenants: TENANTS,
    faultRate: FAULT_RATE,
    seed: SEED,
    loadSeconds: Number(loadSeconds.toFixed(1)),
    startupSeconds: Number(startupSeconds.toFixed(2)),
    firstPassSeconds: Number(firstPassSeconds.toFixed(2)),
    healthySeconds: allSeconds === undefined ? null : Number(allSeconds.toFixed(1)),
    renewedSeconds: Object.fromEntries(
      marks.map((m) => [`p${m * 100}`, since(m) === undefined ? null : Number(since(m)!.toFixed(1))]),
    ),
    renewedWithinTarget: withinTarget ?? null,
    healthyMet: allSeconds !== undefined && allSeconds <= TARGET_HEALTHY_SECONDS,
    notRenewedAtEnd: waiting.length,
    renewalsPerSecond95: rate95 === undefined ? null : Number(rate95.toFixed(1)),
    renewalsPerSecondAll: rateAll === undefined ? null : Number(rateAll.toFixed(1)),
    patchCalls: patches.length,
    patchAnswers: byStatus,
    renewed,
    retriedFaults,
    recreated,
    patchesAccounted: accounted,
    maxSuccessfulPatchesPerSubscription: maxPerSubscription,
    retryAfterViolations: violations,
    simulator: counts,
    renewalResults: result,
    renewJobs: jobs,
    renewJobsAccounted: jobsAccounted,
    maxUnhealthyAtOnce: maxUnhealthy,
    busyCores: {
      seconds: Number(cores.seconds.toFixed(1)),
      process: cores.process,
      pg: cores.pg,
      other: cores.other,
    },
    renewJobMs: {
      p50: Math.round(durations.p50 ?? 0),
      p99: Math.round(durations.p99 ?? 0),
      max: Math.round(durations.max ?? 0),
    },
    idle: {
      seconds: IDLE_SECONDS,
      intervalSeconds: IDLE_INTERVAL_SECONDS,
      passes: idle.passes,
      schedulerPercentOfCore: Number(idlePercent.toFixed(2)),
      postgresPercentOfCore: Number(idlePgPercent.toFixed(2)),
      beforeLoopPercentOfCore: idle.baselinePercent,
      other: idleOther.other,
      met: idlePercent < TARGET_IDLE_PERCENT,
    },
    allRolesIdlePercentOfCore: Number((allRolesIdleCores.process * 100).toFixed(1)),
  };
}
