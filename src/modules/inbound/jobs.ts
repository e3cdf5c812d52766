// The inbound job: one per pointer, payload {tenantId, inboundId} (ids only, never message bodies).
import { defineJob, type JobDefinition, jobRef } from '../../platform/queue/registry.ts';
import { type InboundDeps, processInbound } from './process.ts';

export interface ProcessInboundPayload {
  tenantId: string;
  inboundId: string;
}

export const processInboundJob = jobRef<ProcessInboundPayload>('inbound.process');

const RETRY = { limit: 5, delaySeconds: 5, backoff: true, maxDelaySeconds: 300 };

export function inboundJobs(deps: InboundDeps): JobDefinition<any>[] {
  return [
    defineJob<ProcessInboundPayload>({
      name: processInboundJob.name,
      leaseSeconds: 120,
      retry: RETRY,
      batchSize: 10,
      concurrency: 2,
      handler: async (payload, ctx) =>
        processInbound(deps, { ...payload, lastAttempt: ctx.attempt >= RETRY.limit }),
    }),
  ];
}
