// The job queue: pg-boss 12 on our PostgreSQL, configured as DESIGN §6 says.
// - enqueue inside the caller's transaction (the `db` option over our own connection), so a rolled
//   back change leaves no job and a committed one always has its jobs;
// - short supervision intervals, so a crashed worker's lease comes back in seconds;
// - batched workers that keep fetching while batches come back full;
// - a dead-letter queue per job type, listed and re-driven through the API and CLI;
// - a job type that wants to know when its jobs fail for good (onFailedForGood) is told, both when a
//   handler fails a job's last attempt and when a job reaches the dead-letter queue without any
//   handler seeing it fail (settleDeadLetters).
import { type JobResult, type JobWithMetadata, PgBoss } from 'pg-boss';
import type { Queryable } from '../db/pool.ts';
import type { Logger } from '../logging.ts';
import {
  type BatchItem,
  type BatchResult,
  deadLetterName,
  type JobDefinition,
  type JobFailure,
  type JobRef,
  type JobRegistry,
  PermanentJobError,
} from './registry.ts';

export const QUEUE_SCHEMA = 'pgboss';

export interface EnqueueOptions {
  /** Run the insert in this transaction (it commits or rolls back with the caller's writes). */
  tx?: Queryable;
  /** Do not run before this time. */
  startAfter?: Date;
  /**
   * Do not run for this many seconds, counted by the database that runs the queue (a delay from a
   * provider's Retry-After or a backoff, independent of the clock the caller's logic runs on).
   */
  delaySeconds?: number;
  /** At most one queued job with this key (pg-boss singletonKey). */
  singletonKey?: string;
}

export interface QueueStats {
  queue: string;
  /** Jobs waiting to run now (created or retry, start time reached). */
  ready: number;
  /** Jobs waiting for a later start time (deferred or retry back-off). */
  deferred: number;
  active: number;
  /** Seconds since the oldest waiting job was created; 0 when none waits. */
  oldestAgeSeconds: number;
  /** Jobs in this queue's dead-letter queue. */
  deadLettered: number;
}

export interface DeadLetterEntry {
  id: string;
  queue: string;
  sourceId: string | null;
  payload: unknown;
  error: unknown;
  createdAt: string;
}

export interface QueueOptions {
  connectionString: string;
  logger: Logger;
  registry: JobRegistry;
  /** Run supervision (lease expiry, retention) in this process. */
  supervise: boolean;
  /** Run cron schedules in this process. */
  schedule: boolean;
  /** Seconds between supervision passes (how soon an expired lease is noticed). */
  superviseIntervalSeconds?: number;
  poolSize?: number;
  instanceName?: string;
  /**
   * Wake workers by LISTEN/NOTIFY (default). Off behind a transaction pooler, which cannot keep a
   * listening session: workers then find new jobs by polling, every second.
   */
  listen?: boolean;
}

const adapter = (db: Queryable) => ({
  executeSql: (text: string, values?: unknown[]) => db.query(text, values),
});

export class JobQueue {
  readonly boss: PgBoss;
  readonly registry: JobRegistry;
  private readonly logger: Logger;
  private readonly workerIds: string[] = [];
  private readonly supervises: boolean;
  private started = false;

  constructor(options: QueueOptions) {
    this.registry = options.registry;
    this.supervises = options.supervise;
    this.logger = options.logger.child({ component: 'queue' });
    const interval = options.superviseIntervalSeconds ?? 2;
    this.boss = new PgBoss({
      connectionString: options.connectionString,
      schema: QUEUE_SCHEMA,
      max: options.poolSize ?? 10,
      application_name: 'relaydesk-queue',
      useListenNotify: options.listen ?? true,
      supervise: options.supervise,
      schedule: options.schedule,
      migrate: false,
      createSchema: false,
      superviseIntervalSeconds: interval,
      monitorIntervalSeconds: interval,
      queueCacheIntervalSeconds: interval,
      instanceName: options.instanceName ?? 'relaydesk',
    });
    this.boss.on('error', (err: Error) => this.logger.error({ err }, 'queue error'));
    this.boss.on('warning', (warning: unknown) => this.logger.warn({ warning }, 'queue warning'));
  }

  async start(): Promise<void> {
    await this.boss.start();
    this.started = true;
    if (this.supervises) this.watchDeadLetters();
  }

  /** Creates the queues (and their dead-letter queues) of every registered job type. Idempotent. */
  async ensureQueues(): Promise<void> {
    const existing = new Set((await this.boss.getQueues()).map((q) => q.name));
    for (const def of this.registry.all()) {
      const options = {
        expireInSeconds: def.leaseSeconds,
        retryLimit: def.retry.limit,
        retryDelay: def.retry.delaySeconds,
        retryBackoff: def.retry.backoff,
        ...(def.retry.maxDelaySeconds === undefined ? {} : { retryDelayMax: def.retry.maxDelaySeconds }),
        notify: true,
      };
      if (def.deadLetter) {
        const dlq = deadLetterName(def.name);
        if (!existing.has(dlq)) await this.boss.createQueue(dlq, { retentionSeconds: 30 * 24 * 3600 });
      }
      const withDlq = def.deadLetter ? { ...options, deadLetter: deadLetterName(def.name) } : options;
      if (existing.has(def.name)) await this.boss.updateQueue(def.name, withDlq);
      else await this.boss.createQueue(def.name, withDlq);
    }
  }

  /** Sends `job` (with an empty payload) on a cron schedule, in UTC; idempotent per job name. */
  async schedule(job: string, cron: string): Promise<void> {
    await this.boss.schedule(job, cron, {}, { tz: 'UTC' });
  }

  /** Enqueues one job; pass `tx` to make it part of the caller's transaction. Returns the job id. */
  async send<P extends object>(
    def: JobRef<P>,
    payload: P,
    options: EnqueueOptions = {},
  ): Promise<string | null> {
    return this.boss.send(def.name, payload, {
      ...(options.tx ? { db: adapter(options.tx) } : {}),
      ...(options.startAfter ? { startAfter: options.startAfter } : {}),
      ...(options.delaySeconds !== undefined
        ? { startAfter: Math.max(0, Math.ceil(options.delaySeconds)) }
        : {}),
      ...(options.singletonKey ? { singletonKey: options.singletonKey } : {}),
    });
  }

  /** Enqueues many jobs of one type in one statement. */
  async sendMany<P extends object>(
    def: JobRef<P>,
    payloads: P[],
    options: { tx?: Queryable } = {},
  ): Promise<void> {
    await this.sendEach(
      def,
      payloads.map((payload) => ({ payload })),
      options,
    );
  }

  /** sendMany with a start time of each job's own (none: at once). */
  async sendEach<P extends object>(
    def: JobRef<P>,
    jobs: { payload: P; startAfter?: Date | undefined }[],
    options: { tx?: Queryable } = {},
  ): Promise<void> {
    if (jobs.length === 0) return;
    await this.boss.insert(
      def.name,
      jobs.map((j) => ({ data: j.payload, ...(j.startAfter ? { startAfter: j.startAfter } : {}) })),
      options.tx ? { db: adapter(options.tx) } : {},
    );
  }

  /** Starts fetch loops for every registered job type (or the given names). */
  async startWorkers(names?: string[]): Promise<void> {
    for (const def of this.registry.all()) {
      if (names && !names.includes(def.name)) continue;
      const id = await this.boss.work(
        def.name,
        {
          batchSize: def.batchSize,
          localConcurrency: def.concurrency,
          // With the job's own retryLimit, so a handler knows its last attempt (JobContext.lastAttempt).
          includeMetadata: true,
          perJobResults: true,
          burstWhenBatchFull: true,
          pollingIntervalSeconds: 1,
          // An expired lease turns its job back to retry without a NOTIFY: this poll is what finds it.
          notifyPollingIntervalSeconds: 2,
        },
        (jobs: JobWithMetadata<object>[]) => this.runBatch(def, jobs),
      );
      this.workerIds.push(id);
    }
    this.keepStatisticsFresh();
  }

  private statsTimer: NodeJS.Timeout | undefined;

  /**
   * A burst of jobs arrives faster than autovacuum notices it (it looks every autovacuum_naptime),
   * and with statistics from a nearly empty table every fetch sorts the whole backlog: about 20 ms
   * instead of 4 ms per batch, half the throughput exactly when it matters. Workers therefore
   * ANALYZE the job table themselves when it has changed a lot since the last analysis.
   */
  private keepStatisticsFresh(): void {
    if (this.statsTimer) return;
    let running = false;
    this.statsTimer = setInterval(async () => {
      if (running) return;
      running = true;
      try {
        const db = this.boss.getDb();
        const { rows } = await db.executeSql(
          `SELECT s.relid::regclass::text AS rel, s.n_mod_since_analyze::float8 AS changed, greatest(c.reltuples, 0)::float8 AS tuples
             FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
            WHERE s.schemaname = '${QUEUE_SCHEMA}' AND s.relname LIKE 'job%'`,
        );
        for (const r of rows as { rel: string; changed: number; tuples: number }[]) {
          if (r.changed > Math.max(2_000, r.tuples)) await db.executeSql(`ANALYZE ${r.rel}`);
        }
      } catch {
        // best effort: autovacuum still runs
      } finally {
        running = false;
      }
    }, 1_000);
    this.statsTimer.unref();
  }

  /**
   * Runs a fetched batch: through the definition's batch handler when it has one, otherwise with its
   * jobs side by side. Either way each job settles on its own (perJobResults).
   */
  private async runBatch(def: JobDefinition<any>, jobs: JobWithMetadata<object>[]): Promise<JobResult[]> {
    const items: BatchItem<object>[] = jobs.map((job) => ({
      payload: job.data,
      ctx: {
        jobId: job.id,
        attempt: job.retryCount,
        lastAttempt: job.retryCount >= job.retryLimit,
        logger: this.logger.child({ job: def.name, jobId: job.id, attempt: job.retryCount }),
        signal: job.signal,
        send: (ref, payload, options) => this.send(ref, payload, options ?? {}),
        sendEach: (ref, jobs, options) => this.sendEach(ref, jobs, options),
      },
    }));
    const failedForGood: JobFailure<object>[] = [];
    const settle = (item: BatchItem<object>, result: BatchResult): JobResult => {
      if (result.ok) return { id: item.ctx.jobId, status: 'completed', output: toOutput(result.output) };
      const err = result.error;
      const permanent = err instanceof PermanentJobError;
      item.ctx.logger.warn({ err, permanent }, 'job failed');
      const message = (err as Error)?.message ?? String(err);
      if (permanent || item.ctx.lastAttempt)
        failedForGood.push({ payload: item.payload, message, attempts: item.ctx.attempt + 1 });
      return {
        id: item.ctx.jobId,
        status: permanent ? 'deadletter' : 'failed',
        output: { message, name: (err as Error)?.name },
      };
    };
    let settled: JobResult[];
    if (def.handleBatch) {
      let results: BatchResult[];
      try {
        results = await def.handleBatch(items);
        if (results.length !== items.length)
          throw new Error('the batch handler returned a result count that does not match');
      } catch (error) {
        results = items.map(() => ({ ok: false, error }));
      }
      settled = items.map((item, i) => settle(item, results[i]!));
    } else {
      settled = await Promise.all(
        items.map(async (item) =>
          settle(
            item,
            await def.handler(item.payload, item.ctx).then(
              (output): BatchResult => ({ ok: true, output }),
              (error): BatchResult => ({ ok: false, error }),
            ),
          ),
        ),
      );
    }
    await this.reportFailedForGood(def, failedForGood);
    return settled;
  }

  private async reportFailedForGood(def: JobDefinition<any>, failures: JobFailure<object>[]): Promise<void> {
    if (failures.length === 0 || !def.onFailedForGood) return;
    try {
      await def.onFailedForGood(failures);
    } catch (err) {
      this.logger.warn(
        { err, job: def.name, jobs: failures.length },
        'reporting jobs that failed for good failed',
      );
    }
  }

  /** Per job type: the last dead letter already reported (pages resume after it). */
  private readonly deadLetterSeen = new Map<string, string>();

  /**
   * Reports the jobs waiting in dead-letter queues to their job type's onFailedForGood: also the ones
   * no handler saw fail (an attempt that outlived its lease, a worker killed on the last attempt).
   * Each process reads every dead letter once, then only new ones; a hook may hear of a job twice
   * (after a restart, or from another process), which it tolerates. Returns how many were reported.
   */
  async settleDeadLetters(): Promise<number> {
    let reported = 0;
    for (const def of this.registry.all()) {
      if (!def.onFailedForGood || !def.deadLetter) continue;
      const dlq = deadLetterName(def.name);
      for (;;) {
        let page: JobWithMetadata<object>[];
        const after = this.deadLetterSeen.get(def.name);
        try {
          page = await this.boss.findJobs<object>(dlq, {
            queued: true,
            limit: 500,
            ...(after === undefined ? {} : { after }),
          });
        } catch (err) {
          // The last one seen left the queue (re-driven, expired): read it all again.
          if (after === undefined) throw err;
          this.deadLetterSeen.delete(def.name);
          continue;
        }
        if (page.length === 0) break;
        await def.onFailedForGood(
          page.map((job) => ({
            payload: job.data,
            message: deadLetterMessage(job.sourceOutput),
            attempts: (job.sourceRetryCount ?? 0) + 1,
            deadLetteredAt: new Date(job.createdOn).toISOString(),
          })),
        );
        reported += page.length;
        this.deadLetterSeen.set(def.name, page[page.length - 1]!.id);
        if (page.length < 500) break;
      }
    }
    return reported;
  }

  private deadLetterTimer: NodeJS.Timeout | undefined;

  /** Runs settleDeadLetters every few seconds (processes that supervise the queue). */
  private watchDeadLetters(): void {
    if (this.deadLetterTimer || !this.registry.all().some((d) => d.onFailedForGood && d.deadLetter)) return;
    let running = false;
    this.deadLetterTimer = setInterval(async () => {
      if (running) return;
      running = true;
      try {
        await this.settleDeadLetters();
      } catch (err) {
        this.logger.warn({ err }, 'settling dead letters failed');
      } finally {
        running = false;
      }
    }, DEAD_LETTER_INTERVAL_MS);
    this.deadLetterTimer.unref();
  }

  /**
   * Names of every work queue in the database (not only this process's registry): not the
   * dead-letter queues, and not pg-boss's own (`__pgboss__…`, e.g. its cron queue), which hold no
   * tenant's jobs and have no dead-letter queue.
   */
  async queueNames(): Promise<string[]> {
    const { rows } = await this.boss
      .getDb()
      .executeSql(
        `SELECT name FROM ${QUEUE_SCHEMA}.queue WHERE name NOT LIKE '%\\_\\_dlq' AND name NOT LIKE '\\_\\_pgboss\\_\\_%' ORDER BY name`,
      );
    return rows.map((r: { name: string }) => r.name);
  }

  /** The work queues among `names` that have a dead-letter queue (only those can be re-driven). */
  private async withDeadLetterQueue(names: string[]): Promise<string[]> {
    const { rows } = await this.boss.getDb().executeSql(
      `SELECT q.name FROM ${QUEUE_SCHEMA}.queue q
          WHERE q.name = ANY($1::text[])
            AND EXISTS (SELECT 1 FROM ${QUEUE_SCHEMA}.queue d WHERE d.name = q.name || '__dlq')
          ORDER BY q.name`,
      [names],
    );
    return rows.map((r: { name: string }) => r.name);
  }

  /**
   * Depth, oldest waiting job and dead-letter count per queue. With `tenantId`, only that tenant's
   * jobs are counted (every tenant job carries its tenantId in the payload).
   */
  async stats(options: { queue?: string; tenantId?: string } = {}): Promise<QueueStats[]> {
    const names = options.queue ? [options.queue] : await this.queueNames();
    if (names.length === 0) return [];
    const { rows } = await this.boss.getDb().executeSql(
      `SELECT name,
              count(*) FILTER (WHERE state IN ('created', 'retry') AND start_after <= now())::int AS ready,
              count(*) FILTER (WHERE state IN ('created', 'retry') AND start_after > now())::int AS deferred,
              count(*) FILTER (WHERE state = 'active')::int AS active,
              coalesce(extract(epoch FROM now() - min(created_on) FILTER (WHERE state IN ('created', 'retry') AND start_after <= now())), 0)::float8 AS oldest
         FROM ${QUEUE_SCHEMA}.job
        WHERE name = ANY($1::text[]) AND state IN ('created', 'retry', 'active')
          AND ($2::text IS NULL OR data->>'tenantId' = $2)
        GROUP BY name`,
      [[...names, ...names.map(deadLetterName)], options.tenantId ?? null],
    );
    const byName = new Map<string, { ready: number; deferred: number; active: number; oldest: number }>(
      rows.map((r: any) => [r.name, r]),
    );
    return names.map((name) => {
      const row = byName.get(name);
      const dlq = byName.get(deadLetterName(name));
      return {
        queue: name,
        ready: row?.ready ?? 0,
        deferred: row?.deferred ?? 0,
        active: row?.active ?? 0,
        oldestAgeSeconds: Math.round((row?.oldest ?? 0) * 1000) / 1000,
        deadLettered: (dlq?.ready ?? 0) + (dlq?.deferred ?? 0),
      };
    });
  }

  /** Jobs waiting in dead-letter queues (of one job type, or all), oldest first. */
  async deadLetters(
    options: { queue?: string; tenantId?: string; limit?: number } = {},
  ): Promise<DeadLetterEntry[]> {
    const names = (options.queue ? [options.queue] : await this.queueNames()).map(deadLetterName);
    const { rows } = await this.boss.getDb().executeSql(
      `SELECT id, name, source_id, data, coalesce(source_output, output) AS output,
              to_char(created_on AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_on
         FROM ${QUEUE_SCHEMA}.job
        WHERE name = ANY($1::text[]) AND state IN ('created', 'retry')
          AND ($2::text IS NULL OR data->>'tenantId' = $2)
        ORDER BY created_on, id
        LIMIT $3`,
      [names, options.tenantId ?? null, options.limit ?? 100],
    );
    return rows.map((r: any) => ({
      id: r.id,
      queue: String(r.name).slice(0, -'__dlq'.length),
      sourceId: r.source_id ?? null,
      payload: r.data,
      error: r.output ?? null,
      createdAt: r.created_on,
    }));
  }

  /**
   * Moves dead-lettered jobs back to their queue; returns how many moved. A queue without a
   * dead-letter queue has none to move.
   */
  async redrive(options: { queue?: string; tenantId?: string } = {}): Promise<number> {
    const names = await this.withDeadLetterQueue(options.queue ? [options.queue] : await this.queueNames());
    let moved = 0;
    for (const name of names) {
      for (;;) {
        const n = await this.boss.redrive(deadLetterName(name), {
          destination: name,
          limit: 1000,
          ...(options.tenantId ? { data: { tenantId: options.tenantId } } : {}),
        });
        moved += n;
        if (n < 1000) break;
      }
    }
    return moved;
  }

  async stop(options: { graceful?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (!this.started) return;
    this.started = false;
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = undefined;
    if (this.deadLetterTimer) clearInterval(this.deadLetterTimer);
    this.deadLetterTimer = undefined;
    await this.boss.stop({
      graceful: options.graceful ?? true,
      timeout: options.timeoutMs ?? 10_000,
      close: true,
    });
  }
}

/** How often a supervising process looks for new dead letters (settleDeadLetters). */
const DEAD_LETTER_INTERVAL_MS = 10_000;

/** The failure a dead letter carries: the output its job failed with. */
function deadLetterMessage(output: unknown): string {
  const message = (output as { message?: unknown } | null)?.message;
  return typeof message === 'string'
    ? message
    : output
      ? JSON.stringify(output).slice(0, 500)
      : 'dead-lettered';
}

function toOutput(value: unknown): object | undefined {
  if (value === undefined || value === null) return undefined;
  return typeof value === 'object' ? (value as object) : { value };
}

/**
 * Installs or upgrades the pg-boss schema, as the application role: the schema (created by
 * migration 0016) belongs to it, because pg-boss maintains its tables as it runs.
 */
export async function installQueueSchema(connectionString: string): Promise<void> {
  const boss = new PgBoss({
    connectionString,
    schema: QUEUE_SCHEMA,
    max: 2,
    supervise: false,
    schedule: false,
    migrate: true,
    createSchema: false,
    registerInstance: false,
  });
  boss.on('error', () => undefined);
  await boss.start();
  try {
    const db = boss.getDb();
    // The job table fills in bursts; stale statistics make every fetch sort the whole backlog.
    await db.executeSql(
      `DO $$ DECLARE t regclass; BEGIN
         FOR t IN SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = '${QUEUE_SCHEMA}' AND c.relkind = 'r' AND c.relname LIKE 'job%'
         LOOP
           EXECUTE format('ALTER TABLE %s SET (autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 500, autovacuum_vacuum_scale_factor = 0.05)', t);
         END LOOP;
       END $$`,
    );
  } finally {
    await boss.stop({ graceful: false, close: true });
  }
}
