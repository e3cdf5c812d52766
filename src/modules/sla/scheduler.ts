// The SLA scheduler: thresholds fire once each, on time, across restarts. A ticket change schedules
// a wake-up in the transaction that made it (wake.ts); the scheduler claims due wake-ups across
// tenants, evaluates the claimed tickets in batches per tenant (evaluate.ts) — recording every
// threshold whose due time has passed once, also one that came due while no process ran (with its
// due time and the time it fired) — and sets each ticket's next wake-up.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withSystemTx, withTenant } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import { dropWakeupsAcrossTenants, lockDueWakeups, postponeWakeups } from '../tickets/wakeups.ts';
import { evaluateTickets } from './evaluate.ts';

export { scheduleSlaRecompute } from './wake.ts';

export interface PassDeps {
  pool: Pool;
  queue?: JobQueue | undefined;
  logger?: Logger | undefined;
}

export interface SchedulerDeps extends PassDeps {
  /** The time thresholds are due against (passes start just after each of its seconds). */
  clock: Clock;
}

/** How long a claim keeps other schedulers off a ticket; a crashed scheduler's claims come back after it. */
export const CLAIM_SECONDS = 30;
/** Tickets of one tenant evaluated in one transaction. */
const CHUNK = 250;
/** Chunks evaluated at the same time (each on its own connection). */
const PARALLEL = 3;

/**
 * One scheduler pass: claims up to `batch` due wake-ups across tenants (SKIP LOCKED, with a short
 * lease so a crashed scheduler's claims come back) and evaluates them, per tenant in chunks of one
 * transaction each. `now` is seconds since the epoch, or a function giving it (then each chunk
 * reads it as it starts, so the recorded firing times are the real ones). A chunk that fails is
 * retried ticket by ticket, so one bad ticket cannot hold back the others; a ticket that still fails
 * is logged and comes back when its claim lapses. Returns how many thresholds fired.
 */
export async function runSlaPass(
  deps: PassDeps,
  now: number | (() => number),
  batch = 1000,
): Promise<number> {
  return (await slaPass(deps, now, batch)).fired;
}

async function slaPass(
  deps: PassDeps,
  now: number | (() => number),
  batch: number,
): Promise<{ claimed: number; fired: number }> {
  const clock = typeof now === 'function' ? now : () => now;
  const claimedAt = clock();
  const { claimed, settled } = await withSystemTx(deps.pool, async (sys) => {
    const due = await lockDueWakeups(sys, { nowSeconds: claimedAt, limit: batch });
    if (due.length === 0) return { claimed: [], settled: 0 };
    // With the rows locked, a fresh snapshot (this is a new statement) sees every SLA configuration
    // committed before we locked them. A wake-up of a ticket in a tenant without SLA policies and
    // without a running clock has nothing to evaluate: what evaluation would do is drop the wake-up
    // and the ticket's summary, so that is done here for all tenants at once. (A policy created
    // meanwhile either locked the wake-up first, and then we skipped it, or waits for our commit and
    // then writes it again.) The others are leased for evaluation.
    const { rows: idleRows } = await sys.query<{ tenant_id: string; ticket_id: string }>(
      `WITH d AS (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS d (tenant_id, ticket_id)),
       idle AS (
         SELECT d.tenant_id, d.ticket_id FROM d
          WHERE NOT EXISTS (SELECT 1 FROM sla_policies p WHERE p.tenant_id = d.tenant_id)
            AND NOT EXISTS (SELECT 1 FROM sla_clocks c
                             WHERE c.tenant_id = d.tenant_id AND c.ticket_id = d.ticket_id
                               AND c.status NOT IN ('fulfilled', 'cancelled'))
       ), summaries AS (
         DELETE FROM sla_ticket_state s USING idle
          WHERE s.tenant_id = idle.tenant_id AND s.ticket_id = idle.ticket_id
       )
       SELECT tenant_id, ticket_id FROM idle`,
      [due.map((w) => w.tenantId), due.map((w) => w.ticketId)],
    );
    const idleKeys = new Set(idleRows.map((r) => `${r.tenant_id}/${r.ticket_id}`));
    const idle = due.filter((w) => idleKeys.has(`${w.tenantId}/${w.ticketId}`));
    const leased = due.filter((w) => !idleKeys.has(`${w.tenantId}/${w.ticketId}`));
    await dropWakeupsAcrossTenants(sys, idle);
    await postponeWakeups(sys, leased, claimedAt + CLAIM_SECONDS);
    return {
      claimed: leased.map((w) => ({ tenant_id: w.tenantId, ticket_id: w.ticketId })),
      settled: idle.length,
    };
  });
  const byTenant = new Map<string, string[]>();
  for (const r of claimed) {
    let ids = byTenant.get(r.tenant_id);
    if (!ids) byTenant.set(r.tenant_id, (ids = []));
    ids.push(r.ticket_id);
  }
  const chunks: { tenantId: string; ids: string[] }[] = [];
  for (const [tenantId, ids] of byTenant)
    for (let i = 0; i < ids.length; i += CHUNK) chunks.push({ tenantId, ids: ids.slice(i, i + CHUNK) });
  const evaluate = (tenantId: string, tickets: string[]) =>
    withTenant(deps.pool, tenantId, (tx) =>
      evaluateTickets(tx, tickets, {
        now: clock(),
        ...(typeof now === 'function' ? { firedAt: now } : {}),
        queue: deps.queue,
      }),
    );
  let fired = 0;
  const work = async ({ tenantId, ids }: { tenantId: string; ids: string[] }) => {
    try {
      // Read the count after the await: chunks run side by side and add to it.
      const evaluated = await evaluate(tenantId, ids);
      fired += evaluated.fired;
    } catch (err) {
      if (ids.length === 1) {
        deps.logger?.warn(
          { err, tenantId, ticketId: ids[0] },
          'SLA evaluation failed; retried when its claim lapses',
        );
        return;
      }
      for (const ticketId of ids) {
        try {
          const evaluated = await evaluate(tenantId, [ticketId]);
          fired += evaluated.fired;
        } catch (error) {
          deps.logger?.warn(
            { err: error, tenantId, ticketId },
            'SLA evaluation failed; retried when its claim lapses',
          );
        }
      }
    }
  };
  // A few chunks at once: while one waits for PostgreSQL another computes (tickets of different
  // chunks never overlap, so they do not wait for each other's locks).
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(PARALLEL, chunks.length) }, async () => {
      while (next < chunks.length) await work(chunks[next++]!);
    }),
  );
  return { claimed: claimed.length + settled, fired };
}

/**
 * Runs passes until stopped (the scheduler role). Due times are whole seconds, so a pass starts
 * just after each second boundary: a threshold fires within a few milliseconds of its due time
 * plus the time to evaluate what came due with it. While a pass claims a full batch the next one
 * starts at once. Idle, a pass is one small indexed query a second.
 */
export function startSlaScheduler(
  deps: SchedulerDeps,
  options: { batch?: number } = {},
): () => Promise<void> {
  const batch = options.batch ?? 1000;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const schedule = (delayMs: number) => {
    if (stopped) return;
    timer = setTimeout(tick, delayMs);
    timer.unref();
  };
  const untilNextSecond = () => 1000 - (deps.clock.now().getTime() % 1000) + 5;
  const tick = () => {
    running = (async () => {
      let full = false;
      try {
        const { claimed } = await slaPass(deps, () => deps.clock.now().getTime() / 1000, batch);
        full = claimed >= batch;
      } catch (err) {
        deps.logger?.warn({ err }, 'SLA scheduler pass failed');
      }
      schedule(full ? 0 : untilNextSecond());
    })();
  };
  schedule(untilNextSecond());
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}
