// The notify module's job types: fanning an event out to ledger rows, delivering one attempt through
// a channel adapter, and dropping old events.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withTenant } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import { defineJob, type JobDefinition, jobRef } from '../../platform/queue/registry.ts';
import { dropOldEvents, redispatchEvent } from '../events/events.ts';
import { closeAbandonedAttempt } from '../outbound/ledger.ts';
import type { AdapterChannel, ChannelAdapter } from './channel.ts';
import { deliverNotification, deliverNotificationBatch } from './deliver.ts';
import { fanOutEvent } from './fanout.ts';
import { notifyDeliverJob, notifyFanoutJob } from './job-refs.ts';

export interface NotifyJobDeps {
  pool: Pool;
  clock: Clock;
  logger: Logger;
  messageIdKey: Buffer;
  adapters: Map<AdapterChannel, ChannelAdapter>;
  leaseSeconds?: number | undefined;
  killAt?: string | undefined;
}

const housekeepingJob = jobRef<Record<string, never>>('notify.housekeeping');
/** Fanned-out events are kept this long (what was sent stays in the ledger). */
const EVENT_RETENTION_DAYS = 30;

export const NOTIFY_SCHEDULES = [{ job: housekeepingJob.name, cron: '41 3 * * *' }];

export function notifyJobs(deps: NotifyJobDeps): JobDefinition<any>[] {
  // Longer than a send may take: a 15 s webhook timeout, or a Teams send waiting for its pace.
  const lease = deps.leaseSeconds ?? 120;
  return [
    defineJob<{ tenantId: string; eventId: string }>({
      name: notifyFanoutJob.name,
      leaseSeconds: 60,
      retry: { limit: 8, delaySeconds: 5, backoff: true, maxDelaySeconds: 600 },
      batchSize: 20,
      concurrency: 2,
      handler: (payload, ctx) => fanOutEvent(deps, payload, ctx),
      // Failed through all its retries (about an hour): the event goes back to the dispatcher
      // rather than being forgotten; each round is logged.
      onFailedForGood: async (failures) => {
        for (const f of failures) {
          deps.logger.error(
            { tenantId: f.payload.tenantId, eventId: f.payload.eventId, error: f.message },
            'fanning out an event failed for good; it is dispatched again',
          );
          await withTenant(deps.pool, f.payload.tenantId, (tx) => redispatchEvent(tx, f.payload.eventId));
        }
      },
    }),
    defineJob<{ tenantId: string; deliveryId: string }>({
      name: notifyDeliverJob.name,
      leaseSeconds: lease,
      retry: { limit: 5, delaySeconds: 5, backoff: true, maxDelaySeconds: 300 },
      // A fetched batch shares its statements (deliver.ts): 50 rather than 20 took the drain of
      // `npm run bench -- notify` from 1,176 to 1,397 deliveries/s. Its sends go out side by side.
      batchSize: 50,
      concurrency: 3,
      handler: (payload, ctx) => deliverNotification({ ...deps, leaseSeconds: lease }, payload, ctx),
      handleBatch: (items) => deliverNotificationBatch({ ...deps, leaseSeconds: lease }, items),
      // The job failed for good before the attempt was recorded: the attempt says so.
      onFailedForGood: async (failures) => {
        for (const f of failures)
          await withTenant(deps.pool, f.payload.tenantId, (tx) =>
            closeAbandonedAttempt(
              tx,
              f.payload.deliveryId,
              `the deliver job failed for good after ${f.attempts} attempts: ${f.message}`,
            ),
          );
      },
    }),
    defineJob<Record<string, never>>({
      name: housekeepingJob.name,
      leaseSeconds: 300,
      retry: { limit: 3, delaySeconds: 60, backoff: true },
      handler: () =>
        dropOldEvents(deps.pool, new Date(deps.clock.now().getTime() - EVENT_RETENTION_DAYS * 86_400_000)),
    }),
  ];
}
