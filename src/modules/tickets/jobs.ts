// Scheduled upkeep of ticket data.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { defineJob, type JobDefinition } from '../../platform/queue/registry.ts';
import { expirePresence } from './presence.ts';

const EXPIRE_PRESENCE = 'tickets.expire-presence';

export function ticketsJobs(deps: { pool: Pool; clock: Clock }): JobDefinition<any>[] {
  return [
    defineJob<Record<string, never>>({
      name: EXPIRE_PRESENCE,
      leaseSeconds: 300,
      retry: { limit: 3, delaySeconds: 60, backoff: true },
      handler: async (_payload, ctx) => {
        const removed = await expirePresence(deps.pool, deps.clock.now());
        ctx.logger.info({ removed }, 'expired ticket presence');
        return { removed };
      },
    }),
  ];
}

/** Cron schedules (UTC) the scheduler role keeps registered. */
export const TICKETS_SCHEDULES = [{ job: EXPIRE_PRESENCE, cron: '41 * * * *' }];
