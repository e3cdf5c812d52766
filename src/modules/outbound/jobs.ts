// The outbound module's job types: sending an attempt of the ledger, acknowledging new tickets,
// matching delivery-status reports, and keeping the ledger's partitions.
import type { Clock } from '../../platform/clock.ts';
import type { Config } from '../../platform/config.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withSystemTx, withTenant } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import { defineJob, type JobDefinition } from '../../platform/queue/registry.ts';
import {
  type DeliveryReportPayload,
  deliveryReportJob,
  type TicketOpenedByMailPayload,
  ticketOpenedByMailJob,
} from '../inbound/job-refs.ts';
import { acknowledgeTicket } from './acknowledge.ts';
import { recordDeliveryReport } from './delivery-reports.ts';
import { deliveryPartitionsJob, type OutboundSendPayload, outboundSendJob } from './job-refs.ts';
import { closeAbandonedAttempt, maintainPartitions } from './ledger.ts';
import { sendDelivery, sendDeliveryBatch } from './send.ts';
import type { Transports } from './transports.ts';

export interface OutboundJobDeps {
  pool: Pool;
  clock: Clock;
  logger: Logger;
  transports: Transports;
  messageIdKey: Buffer;
  oauth?: Config['oauth'] | undefined;
  /** Days the ledger keeps attempts (whole months are dropped once all their days are older). */
  retentionDays?: number | undefined;
  killAt?: string | undefined;
  /** The install's job lease override (RELAYDESK_JOB_LEASE_SECONDS), else the send job's own. */
  leaseSeconds?: number | undefined;
}

/** The ledger's partitions are looked after daily by the scheduler role. */
export const OUTBOUND_SCHEDULES = [{ job: deliveryPartitionsJob.name, cron: '23 3 * * *' }];

export function outboundJobs(deps: OutboundJobDeps): JobDefinition<any>[] {
  // Longer than a send may take (SMTP timeouts: 30 s to connect, 60 s idle).
  const lease = deps.leaseSeconds ?? 180;
  const sendDeps = { ...deps, leaseSeconds: lease };
  return [
    defineJob<OutboundSendPayload>({
      name: outboundSendJob.name,
      leaseSeconds: lease,
      retry: { limit: 5, delaySeconds: 5, backoff: true, maxDelaySeconds: 300 },
      // A batch shares its transactions (send.ts sendDeliveryBatch); its sends wait for the pooled
      // connections, so a batch stays small enough to finish well within the lease.
      batchSize: 25,
      concurrency: 2,
      handler: (payload, ctx) => sendDelivery(sendDeps, payload, ctx),
      handleBatch: (items) => sendDeliveryBatch(sendDeps, items),
      // The job failed for good before the attempt was recorded (the database was away through all
      // its retries, the process died on its last one): the attempt says so instead of staying queued.
      onFailedForGood: async (failures) => {
        for (const f of failures)
          await withTenant(deps.pool, f.payload.tenantId, (tx) =>
            closeAbandonedAttempt(
              tx,
              f.payload.deliveryId,
              `the send job failed for good after ${f.attempts} attempts: ${f.message}`,
            ),
          );
      },
    }),
    defineJob<TicketOpenedByMailPayload>({
      name: ticketOpenedByMailJob.name,
      leaseSeconds: 60,
      retry: { limit: 5, delaySeconds: 5, backoff: true, maxDelaySeconds: 300 },
      handler: (payload, ctx) => acknowledgeTicket(deps, payload, ctx),
    }),
    defineJob<DeliveryReportPayload>({
      name: deliveryReportJob.name,
      leaseSeconds: 60,
      retry: { limit: 5, delaySeconds: 5, backoff: true, maxDelaySeconds: 300 },
      handler: (payload) => recordDeliveryReport(deps, payload),
    }),
    defineJob<Record<string, never>>({
      name: deliveryPartitionsJob.name,
      leaseSeconds: 300,
      retry: { limit: 3, delaySeconds: 60, backoff: true },
      handler: () =>
        withSystemTx(deps.pool, (sys) =>
          maintainPartitions(sys, {
            now: deps.clock.now(),
            monthsAhead: 3,
            retentionDays: deps.retentionDays ?? 180,
          }),
        ),
    }),
  ];
}
