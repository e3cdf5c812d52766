// `npm run bench -- queue`: job throughput, lease recovery after a killed worker, and enqueueing
// inside a caller's transaction, through JobQueue (pg-boss) on our PostgreSQL.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { migrateAll, openDatabase } from '../src/platform/db/database.ts';
import type { Pool } from '../src/platform/db/pool.ts';
import { withTenant } from '../src/platform/db/tx.ts';
import { uuidv7 } from '../src/platform/ids.ts';
import { createLogger, type Logger } from '../src/platform/logging.ts';
import { JobQueue, QUEUE_SCHEMA } from '../src/platform/queue/queue.ts';
import { defineJob, JobRegistry } from '../src/platform/queue/registry.ts';
import {
  benchConfig,
  defer,
  fmt,
  heading,
  line,
  machineBusySeconds,
  NODE,
  postmasterPid,
  ROOT,
  sleep,
  table,
  tempDir,
  treeCpu,
  treeCpuDelta,
  usingExternalDatabase,
  verdict,
  waitForQuietMachine,
} from './lib.ts';

const JOBS = Number(process.env['BENCH_JOBS'] ?? 50_000);
const BATCH_SIZE = Number(process.env['BENCH_BATCH_SIZE'] ?? 100);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 2);
const CHUNK = 1000;
const TARGET_JOBS_PER_SECOND = 10_000;
const TARGET_RECOVERY_SECONDS = 15;

async function jobCounts(
  pool: Pool,
  name: string,
): Promise<{ total: number; completed: number; waiting: number; active: number }> {
  const { rows } = await pool.query<{ total: number; completed: number; waiting: number; active: number }>(
    `SELECT count(*)::int AS total,
            count(*) FILTER (WHERE state = 'completed')::int AS completed,
            count(*) FILTER (WHERE state IN ('created', 'retry'))::int AS waiting,
            count(*) FILTER (WHERE state = 'active')::int AS active
       FROM ${QUEUE_SCHEMA}.job WHERE name = $1`,
    [name],
  );
  return rows[0]!;
}

async function waitFor(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean> | boolean,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

function newQueue(
  url: string,
  logger: Logger,
  registry: JobRegistry,
  options: { supervise: boolean; superviseIntervalSeconds?: number },
) {
  const queue = new JobQueue({
    connectionString: url,
    logger,
    registry,
    supervise: options.supervise,
    schedule: false,
    ...(options.superviseIntervalSeconds
      ? { superviseIntervalSeconds: options.superviseIntervalSeconds }
      : {}),
    instanceName: `bench-queue-${process.pid}`,
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await queue.stop({ graceful: false });
  };
  defer('stop a job queue', stop);
  return { queue, stop };
}

/** Removes the benchmark's queues and their jobs from a database that outlives the benchmark. */
async function deleteQueues(url: string, logger: Logger, names: string[]): Promise<void> {
  const { queue, stop } = newQueue(url, logger, new JobRegistry(), { supervise: false });
  await queue.start();
  try {
    for (const name of names) await queue.boss.deleteQueue(name).catch(() => undefined);
  } finally {
    await stop();
  }
}

interface ThroughputResult {
  jobs: number;
  seconds: number;
  jobsPerSecond: number;
  /** From the worker start (or the first enqueue) until the first handler call. */
  firstJobAfterMs: number;
  /** Cores busy while processing: this process (worker + producer), PostgreSQL, everything else. */
  cores: { worker: number; postgres: number | null; other: number };
}

interface CpuMark {
  at: number;
  own: NodeJS.CpuUsage;
  machine: number;
  pg: Map<number, number> | undefined;
}

const coresText = (c: ThroughputResult['cores']) =>
  `cores busy: this process ${fmt(c.worker, 2)}, PostgreSQL ${c.postgres === null ? 'n/a' : fmt(c.postgres, 2)}, other ${fmt(c.other, 2)}`;

export async function benchQueue(): Promise<Record<string, unknown>> {
  heading('queue: throughput, lease recovery, transactional enqueue');
  const dataDir = await tempDir('queue');
  const config = benchConfig(dataDir);
  // pg-boss warns about the (intended) 50,000-job backlog; only errors are of interest here.
  const logger = createLogger(process.env['BENCH_LOG_LEVEL'] ? config.logLevel : 'error');
  line(
    `starting the database (${usingExternalDatabase() ? 'DATABASE_URL' : `embedded PostgreSQL in ${dataDir}`}) ...`,
  );
  const db = await openDatabase(config, logger, { purpose: 'test', exclusive: true, poolSize: 5 });
  defer('close the database', () => db.close());
  await migrateAll(db);
  const pgPid = usingExternalDatabase() ? undefined : await postmasterPid(dataDir);
  const cpuMark = async (): Promise<CpuMark> => ({
    at: performance.now(),
    own: process.cpuUsage(),
    machine: await machineBusySeconds(),
    pg: pgPid ? await treeCpu(pgPid) : undefined,
  });
  const coresSince = async (mark: CpuMark) => {
    const seconds = (performance.now() - mark.at) / 1000;
    const ownUsage = process.cpuUsage(mark.own);
    const own = (ownUsage.user + ownUsage.system) / 1e6;
    const machine = (await machineBusySeconds()) - mark.machine;
    const pg = pgPid && mark.pg ? treeCpuDelta(mark.pg, await treeCpu(pgPid)) : undefined;
    const round = (n: number) => Math.round((n / seconds) * 100) / 100;
    return {
      worker: round(own),
      postgres: pg === undefined ? null : round(pg),
      other: round(Math.max(0, machine - own - (pg ?? 0))),
    };
  };
  const suffix = `${Date.now().toString(36)}_${process.pid}`;

  // ---------------------------------------------------------------------------------------------
  // (a) throughput of a no-op job

  const noopName = `bench_noop_${suffix}`;
  const phase = { name: '', handled: 0, firstAt: 0, lastAt: 0 };
  const noop = defineJob<{ i: number; phase: string }>({
    name: noopName,
    leaseSeconds: 60,
    retry: { limit: 2, delaySeconds: 1, backoff: false },
    batchSize: BATCH_SIZE,
    concurrency: CONCURRENCY,
    handler: async (payload) => {
      if (payload.phase !== phase.name) return;
      const now = performance.now();
      if (phase.handled === 0) phase.firstAt = now;
      phase.handled++;
      phase.lastAt = now;
    },
  });
  const a = newQueue(db.url, logger, new JobRegistry().register(noop), { supervise: true });
  await a.queue.start();
  await a.queue.ensureQueues();
  if (usingExternalDatabase()) {
    defer('delete the bench queues', () => deleteQueues(db.url, logger, [noopName, `${noopName}__dlq`]));
  }

  const enqueue = async (phaseName: string): Promise<number> => {
    const started = performance.now();
    for (let offset = 0; offset < JOBS; offset += CHUNK) {
      const payloads = Array.from({ length: Math.min(CHUNK, JOBS - offset) }, (_, k) => ({
        i: offset + k,
        phase: phaseName,
      }));
      await a.queue.sendMany(noop, payloads);
    }
    return (performance.now() - started) / 1000;
  };

  const awaitCompletion = async (
    expectedCompleted: number,
    startedAt: number,
    mark: CpuMark,
  ): Promise<ThroughputResult> => {
    await waitFor(`${JOBS} handler calls (have ${phase.handled})`, 180_000, () => phase.handled >= JOBS, 5);
    // The batch's completion commits right after its last handler returns: confirm it in the database.
    let confirmedAt = 0;
    await waitFor('the completions to commit', 30_000, async () => {
      const done = (await jobCounts(db.pool, noopName)).completed >= expectedCompleted;
      if (done) confirmedAt = performance.now();
      return done;
    });
    const cores = await coresSince(mark);
    const seconds = (confirmedAt - phase.firstAt) / 1000;
    return {
      jobs: JOBS,
      seconds,
      jobsPerSecond: JOBS / seconds,
      firstJobAfterMs: phase.firstAt - startedAt,
      cores,
    };
  };

  const before = await jobCounts(db.pool, noopName);
  if (before.total !== 0) throw new Error(`queue ${noopName} is not empty (${before.total} jobs)`);

  // (a1) drain: enqueue everything with no worker running, then start the worker on the backlog.
  line(`(a1) enqueueing ${fmt(JOBS)} no-op jobs in chunks of ${CHUNK} (no worker running) ...`);
  phase.name = 'drain';
  const enqueueSeconds = await enqueue('drain');
  const enqueueRate = JOBS / enqueueSeconds;
  line(`     enqueued in ${fmt(enqueueSeconds, 2)} s = ${fmt(enqueueRate)} jobs/s`);
  await waitForQuietMachine(pgPid);
  line(`     starting the worker (batchSize ${BATCH_SIZE}, concurrency ${CONCURRENCY}) ...`);
  const drainMark = await cpuMark();
  const workerStartedAt = performance.now();
  await a.queue.startWorkers([noopName]);
  const drain = await awaitCompletion(JOBS, workerStartedAt, drainMark);
  line(
    `     processed ${fmt(JOBS)} jobs in ${fmt(drain.seconds, 2)} s = ${fmt(drain.jobsPerSecond)} jobs/s (first job ${fmt(drain.firstJobAfterMs)} ms after the worker started)`,
  );
  line(`     ${coresText(drain.cores)}`);

  // (a2) live: the worker idles on the empty queue while the jobs are enqueued.
  const idle = await jobCounts(db.pool, noopName);
  if (idle.waiting !== 0 || idle.active !== 0)
    throw new Error(`queue ${noopName} is not empty before (a2): ${JSON.stringify(idle)}`);
  await waitForQuietMachine(pgPid);
  line(`(a2) enqueueing ${fmt(JOBS)} more while the worker runs on the empty queue ...`);
  Object.assign(phase, { name: 'live', handled: 0, firstAt: 0, lastAt: 0 });
  const liveMark = await cpuMark();
  const liveStartedAt = performance.now();
  const liveEnqueueSeconds = await enqueue('live');
  const live = await awaitCompletion(2 * JOBS, liveStartedAt, liveMark);
  line(
    `     enqueued in ${fmt(liveEnqueueSeconds, 2)} s (${fmt(JOBS / liveEnqueueSeconds)} jobs/s); processed in ${fmt(live.seconds, 2)} s = ${fmt(live.jobsPerSecond)} jobs/s (first completion to last)`,
  );
  line(`     ${coresText(live.cores)}`);

  // (a3) diagnostic: (a1) again, but with the planner statistics of the job table up to date (what
  // autovacuum's analyse gives some time after a burst; right after one the planner still thinks the
  // table is nearly empty and picks a plan that sorts the whole backlog on every fetch).
  await a.queue.boss.offWork(noopName, { wait: true });
  line(`(a3) diagnostic: (a1) again after ANALYZE of the job table ...`);
  Object.assign(phase, { name: 'analyzed', handled: 0, firstAt: 0, lastAt: 0 });
  await enqueue('analyzed');
  await db.pool.query(`ANALYZE ${QUEUE_SCHEMA}.job`);
  await waitForQuietMachine(pgPid);
  const analyzedMark = await cpuMark();
  const analyzedStartedAt = performance.now();
  await a.queue.startWorkers([noopName]);
  const analyzed = await awaitCompletion(3 * JOBS, analyzedStartedAt, analyzedMark);
  line(
    `     processed ${fmt(JOBS)} jobs in ${fmt(analyzed.seconds, 2)} s = ${fmt(analyzed.jobsPerSecond)} jobs/s`,
  );
  line(`     ${coresText(analyzed.cores)}`);
  await a.stop();

  // ---------------------------------------------------------------------------------------------
  // (b) lease recovery: a worker process dies (SIGKILL) holding a job; how soon does it run again?

  const hangName = `bench_hang_${suffix}`;
  const txName = `bench_tx_${suffix}`;
  const hangDef = (handler: () => Promise<unknown>) =>
    defineJob<{ n: number }>({
      name: hangName,
      leaseSeconds: 5,
      retry: { limit: 3, delaySeconds: 0, backoff: false },
      batchSize: 1,
      concurrency: 1,
      handler,
    });
  const txDef = defineJob<{ n: number }>({
    name: txName,
    leaseSeconds: 30,
    retry: { limit: 0, delaySeconds: 0, backoff: false },
    handler: async () => undefined,
  });
  // A producer without supervision or workers: creates the queues, sends the jobs.
  const producer = newQueue(
    db.url,
    logger,
    new JobRegistry().register(
      hangDef(async () => undefined),
      txDef,
    ),
    { supervise: false },
  );
  await producer.queue.start();
  await producer.queue.ensureQueues();
  if (usingExternalDatabase()) {
    defer('delete the lease and tx queues', () =>
      deleteQueues(db.url, logger, [hangName, `${hangName}__dlq`, txName, `${txName}__dlq`]),
    );
  }
  const jobId = await producer.queue.send(
    hangDef(async () => undefined),
    { n: 1 },
  );
  line(`(b) sent job ${jobId} to ${hangName} (lease 5 s); starting a child worker that hangs on it ...`);

  const child = spawn(NODE, [path.join(ROOT, 'bench', 'lease-child.ts')], {
    env: { ...process.env, BENCH_DATABASE_URL: db.url, BENCH_QUEUE: hangName },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  defer('kill the lease child', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let childOut = '';
  child.stdout.on('data', (d) => {
    childOut += d;
  });
  await waitFor('the child to take the job', 60_000, () => {
    if (child.exitCode !== null)
      throw new Error(`the lease child exited early (${child.exitCode}): ${childOut}`);
    return childOut.includes(`ACTIVE ${jobId}`);
  });
  const { rows: activeRows } = await db.pool.query<{ state: string; retry_count: number }>(
    `SELECT state, retry_count FROM ${QUEUE_SCHEMA}.job WHERE name = $1 AND id = $2`,
    [hangName, jobId],
  );
  line(`    child ${child.pid} has the job (state ${activeRows[0]?.state}); SIGKILL`);
  child.kill('SIGKILL');
  const killedAt = performance.now();
  await exited;

  let rerunAt = 0;
  let rerunAttempt = -1;
  const recoverDef = defineJob<{ n: number }>({
    ...hangDef(async () => undefined),
    handler: async (_payload, ctx) => {
      if (rerunAt === 0) {
        rerunAt = performance.now();
        rerunAttempt = ctx.attempt;
      }
    },
  });
  const b = newQueue(db.url, logger, new JobRegistry().register(recoverDef), {
    supervise: true,
    superviseIntervalSeconds: 5,
  });
  await b.queue.start();
  await b.queue.startWorkers([hangName]);
  line(
    '    parent worker started (supervise, superviseIntervalSeconds 5); waiting for the job to run again ...',
  );
  // Meanwhile, watch the job row: when does the supervisor take the job away from the dead worker?
  let releasedAt = 0;
  await waitFor('the job to run again', 120_000, async () => {
    if (releasedAt === 0) {
      const { rows } = await db.pool.query<{ state: string }>(
        `SELECT state FROM ${QUEUE_SCHEMA}.job WHERE name = $1 AND id = $2`,
        [hangName, jobId],
      );
      if (rows[0]?.state !== 'active') releasedAt = performance.now();
    }
    return rerunAt !== 0;
  });
  const recoverySeconds = (rerunAt - killedAt) / 1000;
  const releasedSeconds = releasedAt === 0 ? recoverySeconds : (releasedAt - killedAt) / 1000;
  line(
    `    lease expired by the supervisor ${fmt(releasedSeconds, 2)} s after the kill; job ran again (attempt ${rerunAttempt}) after ${fmt(recoverySeconds, 2)} s`,
  );
  await b.stop();

  // ---------------------------------------------------------------------------------------------
  // (c) enqueue inside a caller's transaction

  line('(c) transactional enqueue ...');
  const count = async () => (await jobCounts(db.pool, txName)).total;
  const checks: { name: string; pass: boolean; detail: string }[] = [];
  {
    const client = await db.pool.connect();
    try {
      const start = await count();
      await client.query('BEGIN');
      await producer.queue.send(txDef, { n: 1 }, { tx: client });
      const during = await count();
      await client.query('ROLLBACK');
      const afterRollback = await count();
      checks.push({
        name: 'send in tx + ROLLBACK leaves no job',
        pass: afterRollback === start && during === start,
        detail: `before ${start}, seen from outside while open ${during}, after ROLLBACK ${afterRollback}`,
      });
      await client.query('BEGIN');
      await producer.queue.send(txDef, { n: 2 }, { tx: client });
      const duringCommit = await count();
      await client.query('COMMIT');
      const afterCommit = await count();
      checks.push({
        name: 'send in tx + COMMIT leaves one job',
        pass: afterCommit === start + 1 && duringCommit === start,
        detail: `before ${start}, seen from outside while open ${duringCommit}, after COMMIT ${afterCommit}`,
      });
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
  {
    // The way request code enqueues: in withTenant, as the non-superuser application role.
    const tenantId = uuidv7();
    const start = await count();
    const rollback = new Error('rollback on purpose');
    const caught = await withTenant(db.pool, tenantId, async (tx) => {
      await producer.queue.send(txDef, { n: 3 }, { tx });
      throw rollback;
    }).catch((err: unknown) => err);
    const afterRollback = await count();
    checks.push({
      name: 'withTenant (app role): failed tx leaves no job',
      pass: caught === rollback && afterRollback === start,
      detail:
        caught === rollback
          ? `before ${start}, after ${afterRollback}`
          : `send failed: ${(caught as Error).message}`,
    });
    const committed = await withTenant(db.pool, tenantId, (tx) =>
      producer.queue.send(txDef, { n: 4 }, { tx }),
    ).catch((err: unknown) => err as Error);
    const afterCommit = await count();
    checks.push({
      name: 'withTenant (app role): committed tx has the job',
      pass: !(committed instanceof Error) && afterCommit === start + 1,
      detail:
        committed instanceof Error
          ? `send failed: ${committed.message}`
          : `before ${start}, after ${afterCommit}`,
    });
  }
  for (const c of checks) line(`    ${c.pass ? 'PASS' : 'FAIL'}  ${c.name} (${c.detail})`);
  await producer.stop();

  // ---------------------------------------------------------------------------------------------

  const drainMet = drain.jobsPerSecond >= TARGET_JOBS_PER_SECOND;
  const liveMet = live.jobsPerSecond >= TARGET_JOBS_PER_SECOND;
  const recoveryMet = recoverySeconds < TARGET_RECOVERY_SECONDS;
  const txPass = checks.every((c) => c.pass);
  line();
  table([
    ['measurement', 'result', 'target', 'verdict'],
    ['enqueue (sendMany, 1000/chunk)', `${fmt(enqueueRate)} jobs/s`, '-', '-'],
    [
      'processing, backlog drain',
      `${fmt(drain.jobsPerSecond)} jobs/s`,
      `>= ${fmt(TARGET_JOBS_PER_SECOND)} jobs/s`,
      verdict(drainMet),
    ],
    [
      'processing, enqueued while running',
      `${fmt(live.jobsPerSecond)} jobs/s`,
      `>= ${fmt(TARGET_JOBS_PER_SECOND)} jobs/s`,
      verdict(liveMet),
    ],
    ['processing, drain after ANALYZE (diagnostic)', `${fmt(analyzed.jobsPerSecond)} jobs/s`, '-', '-'],
    [
      'lease recovery after SIGKILL',
      `${fmt(recoverySeconds, 2)} s`,
      `< ${TARGET_RECOVERY_SECONDS} s`,
      verdict(recoveryMet),
    ],
    ['transactional enqueue', txPass ? 'PASS' : 'FAIL', 'PASS', txPass ? 'MET' : 'MISSED'],
  ]);

  const r = (n: number, d = 0) => Math.round(n * 10 ** d) / 10 ** d;
  return {
    benchmark: 'queue',
    database: usingExternalDatabase() ? 'external' : 'embedded',
    jobs: JOBS,
    chunk: CHUNK,
    worker: { batchSize: BATCH_SIZE, concurrency: CONCURRENCY },
    enqueue: { seconds: r(enqueueSeconds, 3), jobsPerSecond: r(enqueueRate) },
    drain: {
      seconds: r(drain.seconds, 3),
      jobsPerSecond: r(drain.jobsPerSecond),
      firstJobAfterMs: r(drain.firstJobAfterMs),
    },
    live: {
      enqueueSeconds: r(liveEnqueueSeconds, 3),
      seconds: r(live.seconds, 3),
      jobsPerSecond: r(live.jobsPerSecond),
      firstJobAfterMs: r(live.firstJobAfterMs),
      cores: live.cores,
    },
    drainAfterAnalyze: {
      seconds: r(analyzed.seconds, 3),
      jobsPerSecond: r(analyzed.jobsPerSecond),
      cores: analyzed.cores,
    },
    leaseRecovery: {
      seconds: r(recoverySeconds, 3),
      releasedAfterSeconds: r(releasedSeconds, 3),
      attempt: rerunAttempt,
      leaseSeconds: 5,
      superviseIntervalSeconds: 5,
    },
    transactional: { pass: txPass, checks },
    targets: {
      jobsPerSecond: { target: TARGET_JOBS_PER_SECOND, drainMet, liveMet },
      leaseRecoverySeconds: { target: TARGET_RECOVERY_SECONDS, met: recoveryMet },
      transactional: { met: txPass },
    },
  };
}
