// The SLA engine's domain job: one per threshold, breach and escalation level that fires, enqueued
// in the transaction that records the firing. The notification capability will consume them.
import { defineJob, type JobDefinition, jobRef } from '../../platform/queue/registry.ts';

export interface SlaThresholdPayload {
  tenantId: string;
  ticketId: string;
  metric: string;
  cycle: number;
  percent: number;
  dueAt: string;
}

/** Emitted for every threshold, breach and escalation level that fires; notifications consume it. */
export const slaThresholdJob = jobRef<SlaThresholdPayload>('sla.threshold');

export function slaJobs(): JobDefinition<any>[] {
  return [
    defineJob<SlaThresholdPayload>({
      name: slaThresholdJob.name,
      leaseSeconds: 60,
      retry: { limit: 5, delaySeconds: 10, backoff: true },
      // The notification capability will act on these; until then they are durable records.
      handler: async (payload) => ({ recorded: `${payload.metric}#${payload.cycle} ${payload.percent}%` }),
    }),
  ];
}
