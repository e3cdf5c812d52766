// The outbound module's jobs by name and payload (ids only). Whoever enqueues them imports these;
// jobs.ts defines what runs them.
import { jobRef } from '../../platform/queue/registry.ts';

export interface OutboundSendPayload {
  tenantId: string;
  /** The ledger row (attempt) to send. */
  deliveryId: string;
}

/** Sends one queued attempt of the delivery ledger. */
export const outboundSendJob = jobRef<OutboundSendPayload>('outbound.send');

/** Keeps the ledger's monthly partitions (made ahead, dropped after retention). */
export const deliveryPartitionsJob = jobRef<Record<string, never>>('outbound.partitions');
