// The inbound job: one per pointer, payload {tenantId, inboundId} (ids only, never message bodies).
import { defineJob, type JobDefinition, jobRef } from '../../platform/queue/registry.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { RateLimited } from '../../platform/provider-errors.ts';
import { type InboundDeps, processInbound } from './process.ts';

export interface ProcessInboundPayload {
  tenantId: string;
  inboundId: string;
}

export const processInboundJob = jobRef<ProcessInboundPayload>('inbound.process');

export interface MailboxLifecyclePayload {
  tenantId: string;
  mailboxId: string;
  /** reauthorizationRequired, subscriptionRemoved or missed. */
  event: string;
  subscriptionId: string | null;
}

/** A provider said something about a subscription; subscription upkeep acts on it. */
export const mailboxLifecycleJob = jobRef<MailboxLifecyclePayload>('mailbox.lifecycle');

const RETRY = { limit: 5, delaySeconds: 5, backoff: true, maxDelaySeconds: 300 };

export function inboundJobs(deps: InboundDeps): JobDefinition<any>[] {
  return [
    defineJob<MailboxLifecyclePayload>({
      name: mailboxLifecycleJob.name,
      leaseSeconds: 60,
      retry: { limit: 5, delaySeconds: 10, backoff: true },
      // Recorded on the mailbox for its health view; renewing and recreating subscriptions is the
      // upkeep capability's (it reads these fields).
      handler: async (payload) =>
        withTenant(deps.pool, payload.tenantId, (tx) =>
          tx.query(
            `UPDATE mailboxes SET state = state || jsonb_build_object('graph', coalesce(state->'graph', '{}')
                      || jsonb_build_object('lastLifecycleEvent', $3::text, 'lastLifecycleEventAt', now()))
              WHERE tenant_id = $1 AND id = $2`,
            [payload.tenantId, payload.mailboxId, payload.event],
          ),
        ).then(() => ({ recorded: payload.event })),
    }),
    defineJob<ProcessInboundPayload>({
      name: processInboundJob.name,
      leaseSeconds: 120,
      retry: RETRY,
      batchSize: 10,
      concurrency: 2,
      handler: async (payload, ctx) => {
        try {
          return await processInbound(deps, { ...payload, lastAttempt: ctx.attempt >= RETRY.limit });
        } catch (err) {
          // A provider asked us to wait: come back exactly when it said, as a new job (this one completes).
          if (err instanceof RateLimited) {
            await ctx.send(processInboundJob, payload, {
              startAfter: new Date(Date.now() + err.retryAfterSeconds * 1000),
            });
            return { rescheduledInSeconds: err.retryAfterSeconds };
          }
          throw err;
        }
      },
    }),
  ];
}
