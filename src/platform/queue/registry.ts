// The typed job registry (STYLE §8): each job type is declared once with its payload type, handler,
// retry policy and lease. Producers enqueue with the definition, so payload and name cannot drift apart.
import type { Queryable } from '../db/pool.ts';
import type { Logger } from '../logging.ts';

export interface RetryPolicy {
  /** Retries after the first attempt. */
  limit: number;
  /** Seconds before the first retry. */
  delaySeconds: number;
  /** Double the delay each retry (with jitter), up to maxDelaySeconds. */
  backoff: boolean;
  maxDelaySeconds?: number;
}

export interface JobContext {
  jobId: string;
  /** 0 on the first attempt. */
  attempt: number;
  /** True on the job's last attempt: failing now fails it for good (its own retry limit, as pg-boss keeps it). */
  lastAttempt: boolean;
  logger: Logger;
  /** Aborted when the lease expires or the worker stops. */
  signal: AbortSignal;
  /** Enqueues another job (e.g. this one again later, to honour a provider's Retry-After). */
  send<Q extends object>(
    job: JobRef<Q>,
    payload: Q,
    options?: { startAfter?: Date; delaySeconds?: number; tx?: Queryable },
  ): Promise<string | null>;
  /** Enqueues many jobs of one type in one statement, each with its own start time (none: at once). */
  sendEach<Q extends object>(
    job: JobRef<Q>,
    jobs: { payload: Q; startAfter?: Date | undefined }[],
    options: { tx: Queryable },
  ): Promise<void>;
}

/** A job type as producers see it: its name, typed by its payload. */
export interface JobRef<P extends object = object> {
  name: string;
  /** Type-level only: the payload type. */
  readonly payloadType?: P;
}

/** Names a job type for producers; its handler is bound where the registry is built. */
export const jobRef = <P extends object>(name: string): JobRef<P> => ({ name });

export interface JobDefinition<P extends object = object> extends JobRef<P> {
  /** How long one attempt may hold the job before another worker may take it (pg-boss expireInSeconds). */
  leaseSeconds: number;
  retry: RetryPolicy;
  /** Failed jobs (after the last retry) move to `<name>__dlq`, from which they can be re-driven. */
  deadLetter: boolean;
  /** Jobs fetched per round trip by one worker. */
  batchSize: number;
  /** Parallel fetch loops per process. */
  concurrency: number;
  handler: (payload: P, ctx: JobContext) => Promise<unknown>;
  /**
   * Optional: runs a whole fetched batch at once (e.g. to share transactions and statements between
   * its jobs). One result per item, in order; each job still completes, retries or dead-letters on
   * its own. Without it the worker runs `handler` for each job of the batch side by side.
   */
  handleBatch?: (items: BatchItem<P>[]) => Promise<BatchResult[]>;
  /**
   * Optional: told of jobs that failed for good, so that what they stand for can say so (an inbound
   * record ends as failed instead of staying queued). Called after an attempt that failed on the
   * job's last attempt or asked for the dead-letter queue, whatever the handler threw or returned,
   * and for jobs found in the dead-letter queue that no handler saw fail (an attempt that outlived
   * its lease, a worker killed on the last attempt). It may hear of a job more than once, so it
   * must be idempotent; what it throws is logged and changes nothing about the job.
   */
  onFailedForGood?: (failures: JobFailure<P>[]) => Promise<void>;
}

/** A job that failed for good, as onFailedForGood hears of it. */
export interface JobFailure<P extends object = object> {
  payload: P;
  /** What the job failed with (for a dead letter: the output pg-boss recorded). */
  message: string;
  /** Attempts made. */
  attempts: number;
  /** When it reached the dead-letter queue, when it was learnt of there (ISO-8601); undefined otherwise. */
  deadLetteredAt?: string | undefined;
}

export interface BatchItem<P extends object = object> {
  payload: P;
  ctx: JobContext;
}

/** A job's result in a batch: its output, or the error it failed with (PermanentJobError: dead-letter). */
export type BatchResult = { ok: true; output: unknown } | { ok: false; error: unknown };

/** Declares a job type; the payload type travels with the definition. */
export function defineJob<P extends object>(
  definition: Omit<JobDefinition<P>, 'batchSize' | 'concurrency' | 'deadLetter'> &
    Partial<Pick<JobDefinition<P>, 'batchSize' | 'concurrency' | 'deadLetter'>>,
): JobDefinition<P> {
  return { batchSize: 20, concurrency: 1, deadLetter: true, ...definition };
}

/** A handler throws this to skip the remaining retries and dead-letter the job at once. */
export class PermanentJobError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentJobError';
  }
}

export const deadLetterName = (queue: string): string => `${queue}__dlq`;

export class JobRegistry {
  private readonly byName = new Map<string, JobDefinition<any>>();

  register(...definitions: JobDefinition<any>[]): this {
    for (const def of definitions) {
      if (this.byName.has(def.name)) throw new Error(`job ${def.name} is registered twice`);
      this.byName.set(def.name, def);
    }
    return this;
  }

  get(name: string): JobDefinition<any> | undefined {
    return this.byName.get(name);
  }

  all(): JobDefinition<any>[] {
    return [...this.byName.values()];
  }
}
