// Firing SLA thresholds: once each, on time, across restarts. A ticket change schedules a wake-up
// in the transaction that made it; the scheduler claims due wake-ups, recomputes the ticket's clocks
// and records every threshold whose due time has passed (the primary key of sla_threshold_fires
// keeps each to one firing, also one that came due while no process ran: it is recorded with its due
// time and the time it fired), enqueues the domain job for it, and sets the next wake-up.
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withSystemTx, withTenant } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import { defineJob, type JobDefinition, jobRef } from '../../platform/queue/registry.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { type EscalationAction, getPolicy } from './config.ts';
import { type TicketSla, ticketSla } from './ticket-sla.ts';

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

/** Asks the scheduler to look at this ticket now (call in the transaction that changed it). */
export async function scheduleSlaWake(tx: TenantTx, ticketId: string): Promise<void> {
  await tx.query(
    `INSERT INTO sla_wakeups (tenant_id, ticket_id, next_wake_at) VALUES ($1, $2, now())
     ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET next_wake_at = least(sla_wakeups.next_wake_at, now())`,
    [tx.tenantId, ticketId],
  );
}

/**
 * The ticket's SLA in one word, worst first: breached (an unfulfilled metric past 100 %), at_risk
 * (past the second-highest threshold below 100 %: 75 % with the default 50/75/90/100), active,
 * paused, or fulfilled when nothing runs.
 */
export function summaryState(
  sla: TicketSla,
  now: number,
): 'breached' | 'at_risk' | 'paused' | 'active' | 'fulfilled' {
  const open = sla.metrics.filter((m) => m.status !== 'fulfilled');
  if (open.some((m) => m.status === 'breached')) return 'breached';
  const atRisk = open.some((m) => {
    const below = m.thresholds
      .map((th) => th.percent)
      .filter((p) => p < 100)
      .sort((a, b) => b - a);
    const mark = below[1] ?? below[0];
    const th = m.thresholds.find((x) => x.percent === mark);
    return th?.dueAt != null && Date.parse(th.dueAt) / 1000 <= now;
  });
  if (atRisk) return 'at_risk';
  if (open.some((m) => m.status === 'active')) return 'active';
  if (open.some((m) => m.status === 'paused')) return 'paused';
  return 'fulfilled';
}

/** The earliest due time of a metric still running (for sort=due). */
function nextDue(sla: TicketSla): string | null {
  const dues = sla.metrics
    .filter((m) => m.status === 'active' || m.status === 'breached')
    .map((m) => m.dueAt)
    .filter((d): d is string => d !== null)
    .sort();
  return dues[0] ?? null;
}

/**
 * Records a firing as an SLA event and, for an escalation level, carries out its actions in the same
 * transaction: reassign, set the priority (which recomputes the clocks at the next pass) or ask for
 * a notification (kept as a pending notification for the notification capability).
 */
async function recordFiring(
  tx: TenantTx,
  ticketId: string,
  metric: string,
  cycle: number,
  percent: number,
  dueAt: string,
  now: number,
  escalations: { percent: number; actions: EscalationAction[] }[],
): Promise<{ changedPriority: boolean }> {
  const level = escalations.find((e) => e.percent === percent);
  const type = level ? 'escalation' : percent === 100 ? 'breached' : 'threshold';
  await tx.query(
    `INSERT INTO sla_events (tenant_id, id, ticket_id, metric, cycle, type, at, data) VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), $8)`,
    [
      tx.tenantId,
      uuidv7(),
      ticketId,
      metric,
      cycle,
      type,
      now,
      JSON.stringify({ percent, dueAt, ...(level ? { actions: level.actions } : {}) }),
    ],
  );
  let changedPriority = false;
  for (const action of level?.actions ?? []) {
    if (action.type === 'reassign') {
      await tx.query(
        'UPDATE tickets SET assignee_id = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2',
        [tx.tenantId, ticketId, action.personId],
      );
    } else if (action.type === 'set_priority') {
      changedPriority = true;
      await tx.query(
        'UPDATE tickets SET priority = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2',
        [tx.tenantId, ticketId, action.priority],
      );
    } else {
      await tx.query(
        'INSERT INTO pending_notifications (tenant_id, id, ticket_id, recipient, reason) VALUES ($1, $2, $3, $4, $5)',
        [
          tx.tenantId,
          uuidv7(),
          ticketId,
          JSON.stringify(action.personId ? { personId: action.personId } : { role: action.role }),
          `sla ${metric} at ${percent}%`,
        ],
      );
    }
  }
  return { changedPriority };
}

/** Recomputes one ticket at `now`: fires what is due (once), sets the next wake-up. Returns how many fired. */
export async function processTicketSla(
  tx: TenantTx,
  queue: JobQueue | undefined,
  ticketId: string,
  now: number,
): Promise<number> {
  const sla = await ticketSla(tx, ticketId, now);
  const escalations = sla.policyId ? (await getPolicy(tx, sla.policyId)).escalations : [];
  let fired = 0;
  let next: number | null = null;
  for (const m of sla.metrics) {
    for (const th of m.thresholds) {
      if (th.dueAt === null) continue;
      const due = Date.parse(th.dueAt) / 1000;
      if (due > now) {
        next = next === null ? due : Math.min(next, due);
        continue;
      }
      const { rowCount } = await tx.query(
        `INSERT INTO sla_threshold_fires (tenant_id, ticket_id, metric, cycle, percent, due_at, fired_at)
         VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7)) ON CONFLICT DO NOTHING`,
        [tx.tenantId, ticketId, m.metric, m.cycle, th.percent, th.dueAt, now],
      );
      if (rowCount === 1) {
        fired++;
        const { changedPriority } = await recordFiring(
          tx,
          ticketId,
          m.metric,
          m.cycle,
          th.percent,
          th.dueAt,
          now,
          escalations,
        );
        // New priority, new targets: look again at the next pass.
        if (changedPriority) next = now;
        await queue?.send(
          slaThresholdJob,
          {
            tenantId: tx.tenantId,
            ticketId,
            metric: m.metric,
            cycle: m.cycle,
            percent: th.percent,
            dueAt: th.dueAt,
          },
          { tx },
        );
      }
    }
  }
  if (sla.policyId === null) {
    await tx.query('DELETE FROM sla_ticket_state WHERE tenant_id = $1 AND ticket_id = $2', [
      tx.tenantId,
      ticketId,
    ]);
  } else {
    await tx.query(
      `INSERT INTO sla_ticket_state (tenant_id, ticket_id, state, next_due_at, updated_at) VALUES ($1, $2, $3, $4, now())
       ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET state = excluded.state, next_due_at = excluded.next_due_at, updated_at = now()`,
      [tx.tenantId, ticketId, summaryState(sla, now), nextDue(sla)],
    );
  }
  if (next === null)
    await tx.query('DELETE FROM sla_wakeups WHERE tenant_id = $1 AND ticket_id = $2', [
      tx.tenantId,
      ticketId,
    ]);
  else {
    await tx.query(
      `INSERT INTO sla_wakeups (tenant_id, ticket_id, next_wake_at) VALUES ($1, $2, to_timestamp($3))
       ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET next_wake_at = excluded.next_wake_at`,
      [tx.tenantId, ticketId, next],
    );
  }
  return fired;
}

/**
 * One scheduler pass: claims up to `batch` due wake-ups across tenants (SKIP LOCKED, with a short
 * lease so a crashed scheduler's claims come back), and processes each ticket in its tenant.
 */
export async function runSlaPass(
  deps: { pool: Pool; queue?: JobQueue; logger?: Logger },
  now: number,
  batch = 500,
): Promise<number> {
  const claimed = await withSystemTx(deps.pool, async (sys) => {
    const { rows } = await sys.query<{ tenant_id: string; ticket_id: string }>(
      `UPDATE sla_wakeups w SET next_wake_at = to_timestamp($1) + interval '30 seconds'
        FROM (SELECT tenant_id, ticket_id FROM sla_wakeups WHERE next_wake_at <= to_timestamp($1)
               ORDER BY next_wake_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
       WHERE w.tenant_id = due.tenant_id AND w.ticket_id = due.ticket_id
       RETURNING w.tenant_id, w.ticket_id`,
      [now, batch],
    );
    return rows;
  });
  let fired = 0;
  for (const r of claimed) {
    try {
      fired += await withTenant(deps.pool, r.tenant_id, (tx) =>
        processTicketSla(tx, deps.queue, r.ticket_id, now),
      );
    } catch (err) {
      deps.logger?.warn(
        { err, ticketId: r.ticket_id },
        'SLA recompute failed; will retry after the claim lapses',
      );
    }
  }
  return fired;
}

/** Runs passes every second until stopped (the scheduler role). */
export function startSlaScheduler(
  deps: { pool: Pool; queue?: JobQueue; logger?: Logger },
  intervalMs = 1000,
): () => Promise<void> {
  let stopped = false;
  let running: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    if (stopped || running) return;
    running = runSlaPass(deps, Math.floor(Date.now() / 1000))
      .catch((err) => deps.logger?.warn({ err }, 'SLA scheduler pass failed'))
      .finally(() => {
        running = undefined;
      });
  }, intervalMs);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
