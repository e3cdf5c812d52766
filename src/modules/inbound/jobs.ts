// The inbound job: one per pointer, payload {tenantId, inboundId} (ids only, never message bodies).
import {
  gmailHistoryJob,
  type GmailHistoryPayload,
  mailboxLifecycleJob,
  type MailboxLifecyclePayload,
  mailboxReconcileJob,
  mailboxRenewJob,
  type MailboxRenewPayload,
  processInboundJob,
  type ProcessInboundPayload,
} from './job-refs.ts';
import {
  type BatchItem,
  type BatchResult,
  defineJob,
  type JobDefinition,
  type JobFailure,
  PermanentJobError,
} from '../../platform/queue/registry.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { AuthExpired, RateLimited } from '../../platform/provider-errors.ts';
import { type InboundDeps, processInboundBatch } from './process.ts';
import { syncGmailHistory } from './gmail-sync.ts';
import { failRecords } from './records.ts';
import { DEFAULT_UPKEEP, type UpkeepConfig } from '../../platform/config.ts';
import { onLifecycle, reconcileMailbox, renewMailbox, RENEW_LEASE_SECONDS } from './upkeep.ts';

/** Ends the records of inbound jobs that failed for good as failed, per tenant (records.ts failRecords). */
async function failInboundRecords(
  deps: InboundDeps,
  failures: JobFailure<ProcessInboundPayload>[],
): Promise<void> {
  const byTenant = new Map<string, JobFailure<ProcessInboundPayload>[]>();
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  // A dead letter is whatever reached that queue: one that names no record is nobody's to end.
  const named = failures.filter(
    (f) => uuid.test(String(f.payload?.tenantId)) && uuid.test(String(f.payload?.inboundId)),
  );
  for (const f of named) byTenant.set(f.payload.tenantId, [...(byTenant.get(f.payload.tenantId) ?? []), f]);
  for (const [tenantId, list] of byTenant)
    await withTenant(deps.pool, tenantId, (tx) =>
      failRecords(
        tx,
        list.map((f) => ({
          inboundId: f.payload.inboundId,
          reason: `failed after ${f.attempts} attempt${f.attempts === 1 ? '' : 's'}: ${f.message}`,
          attempts: f.attempts,
          deadLetteredAt: f.deadLetteredAt,
        })),
      ),
    );
}

const RETRY = { limit: 5, delaySeconds: 5, backoff: true, maxDelaySeconds: 300 };
/**
 * A message we accepted must become a ticket or a comment. The queue counts a lease that ran out
 * (a worker killed, or too slow under a backlog) as a failed attempt, so a few minutes of trouble
 * could use up a short budget and leave the record `failed` without anything wrong with the mail.
 * Twenty attempts, five minutes apart at most, ride out about an hour and a half of it; a message
 * that really cannot be processed still ends failed (and can be reprocessed) after that.
 */
const INBOUND_RETRY = { limit: 20, delaySeconds: 5, backoff: true, maxDelaySeconds: 300 };

/** Runs inbound jobs as one batch; a provider's Retry-After reschedules that job (which completes). */
async function processInboundBatchJobs(
  deps: InboundDeps,
  items: BatchItem<ProcessInboundPayload>[],
): Promise<BatchResult[]> {
  const results = await processInboundBatch(
    { ...deps, send: items[0]?.ctx.send },
    items.map(({ payload, ctx }) => ({ ...payload, lastAttempt: ctx.lastAttempt })),
  );
  return Promise.all(
    results.map(async (result, i): Promise<BatchResult> => {
      if (result.ok) return { ok: true, output: result.outcome };
      const err = result.error;
      // A provider asked us to wait: come back exactly when it said, as a new job (this one completes).
      if (err instanceof RateLimited) {
        const { payload, ctx } = items[i]!;
        try {
          await ctx.send(processInboundJob, payload, {
            delaySeconds: err.retryAfterSeconds,
          });
        } catch (sendError) {
          return { ok: false, error: sendError };
        }
        return { ok: true, output: { rescheduledInSeconds: err.retryAfterSeconds } };
      }
      return { ok: false, error: err };
    }),
  );
}

export function inboundJobs(
  deps: InboundDeps & {
    publicUrl?: string | undefined;
    upkeep?: UpkeepConfig;
  },
): JobDefinition<any>[] {
  const upkeep = { ...deps, publicUrl: deps.publicUrl, upkeep: deps.upkeep ?? DEFAULT_UPKEEP };
  return [
    defineJob<GmailHistoryPayload>({
      name: gmailHistoryJob.name,
      leaseSeconds: 120,
      retry: RETRY,
      handler: async (payload, ctx) => {
        try {
          return await syncGmailHistory(deps, payload, ctx.send);
        } catch (err) {
          if (err instanceof RateLimited) {
            await ctx.send(gmailHistoryJob, payload, {
              delaySeconds: err.retryAfterSeconds,
            });
            return { rescheduledInSeconds: err.retryAfterSeconds };
          }
          if (err instanceof AuthExpired) throw new PermanentJobError(err.message, { cause: err });
          throw err;
        }
      },
    }),
    defineJob<MailboxLifecyclePayload>({
      name: mailboxLifecycleJob.name,
      leaseSeconds: 60,
      retry: { limit: 5, delaySeconds: 10, backoff: true },
      // reauthorizationRequired and subscriptionRemoved: renew or recreate at once; missed: reconcile.
      handler: async (payload, ctx) => ({ done: await onLifecycle(upkeep, payload, ctx.send) }),
    }),
    defineJob<MailboxRenewPayload>({
      name: mailboxRenewJob.name,
      leaseSeconds: RENEW_LEASE_SECONDS,
      // Renewals wait on the provider, not on this process: several at a time per worker.
      concurrency: 4,
      // The renewal records its failures and comes back itself (Retry-After, backoff); a retry by
      // the queue is for a worker that died mid-renewal.
      retry: { limit: 3, delaySeconds: 5, backoff: true },
      handler: (payload, ctx) => renewMailbox(upkeep, payload, ctx.send),
    }),
    defineJob<{ tenantId: string; mailboxId: string }>({
      name: mailboxReconcileJob.name,
      leaseSeconds: 600,
      retry: { limit: 3, delaySeconds: 60, backoff: true },
      handler: async (payload, ctx) => {
        try {
          return await reconcileMailbox(upkeep, payload, ctx.send);
        } catch (err) {
          if (err instanceof AuthExpired) throw new PermanentJobError(err.message, { cause: err });
          throw err;
        }
      },
    }),
    defineJob<ProcessInboundPayload>({
      name: processInboundJob.name,
      leaseSeconds: 120,
      retry: INBOUND_RETRY,
      // A fetched batch is processed together (process.ts): one transaction marks its records,
      // one applies its messages. Larger batches cost fewer statements per message.
      batchSize: 25,
      concurrency: 2,
      handler: async (payload, ctx) => {
        const [result] = await processInboundBatchJobs(deps, [{ payload, ctx }]);
        if (!result!.ok) throw result!.error;
        return result!.output;
      },
      handleBatch: (items) => processInboundBatchJobs(deps, items),
      // The record follows its job to the end: a job that failed for good (whatever failed, also
      // an attempt that outlived its lease or a worker killed on the last attempt) leaves it failed.
      onFailedForGood: (failures) => failInboundRecords(deps, failures),
    }),
  ];
}
