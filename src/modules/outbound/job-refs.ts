// The outbound module's jobs by name and payload (ids only). Whoever enqueues them imports these;
// jobs.ts defines what runs them.
import { jobRef } from '../../platform/queue/registry.ts';

export interface OutboundSendPayload {
  tenantId: string;
  /** The ledger row (attempt) to send. */
  deliveryId: string;
}

/** Sends one queued attempt of the delivery ledger on the email channel. */
export const outboundSendJob = jobRef<OutboundSendPayload>('outbound.send');

/**
 * Sends one queued attempt on a notification channel (teams, slack, webhook). The notify module runs
 * it (its jobs.ts); it is named here, beside the ledger, so that whatever queues a new attempt of any
 * delivery (a retry) queues the job of its channel.
 */
export const notifyDeliverJob = jobRef<OutboundSendPayload>('notify.deliver');

/** The job that sends a queued attempt on this channel. */
export const sendJobOf = (channel: string) => (channel === 'email' ? outboundSendJob : notifyDeliverJob);

/** Keeps the ledger's monthly partitions (made ahead, dropped after retention). */
export const deliveryPartitionsJob = jobRef<Record<string, never>>('outbound.partitions');
