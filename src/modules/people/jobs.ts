// Scheduled upkeep of identity data.
import type { Pool } from '../../platform/db/pool.ts';
import { defineJob, type JobDefinition } from '../../platform/queue/registry.ts';
import { expireUnmapped } from './unmapped.ts';

export function peopleJobs(pool: Pool): JobDefinition<any>[] {
  return [
    defineJob<{ tenantId?: string }>({
      name: 'people.expire-unmapped',
      leaseSeconds: 300,
      retry: { limit: 3, delaySeconds: 60, backoff: true },
      handler: async (_payload, ctx) => {
        const removed = await expireUnmapped(pool);
        ctx.logger.info({ removed }, 'expired unmapped identities');
        return { removed };
      },
    }),
  ];
}

/** Cron schedules (UTC) the scheduler role keeps registered. */
export const PEOPLE_SCHEDULES = [{ job: 'people.expire-unmapped', cron: '17 3 * * *' }];
