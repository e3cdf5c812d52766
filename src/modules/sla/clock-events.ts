// What an evaluation of a ticket's clocks has to record, worked out without a database: the SLA
// events (started, paused, resumed, fulfilled, recomputed, cancelled) and the new stored clock rows,
// from the clocks just computed and the rows the previous evaluation stored.
//
// Two sources, on purpose:
// - started / paused / resumed / fulfilled come from the clock's transitions as computed from the
//   timeline, each with the instant it happened (the status change, the reply). Diffing only the
//   stored state against the new one would lose a pause and resume that both fall between two
//   evaluations (e.g. while no scheduler ran) and would not know their instants. Every evaluation
//   offers all of them; a unique key on (ticket, metric, cycle, type, at) keeps each to one row.
// - recomputed and cancelled come from the diff against the stored rows: a clock whose target or
//   due time moved because the priority, the policy or the calendar changed (the stored row says
//   which configuration it was computed under), and a clock that no longer exists (no policy
//   matches any more, the metric lost its target). The diff and the new rows are written in the
//   same transaction, which holds the ticket's wake-up row, so each is recorded once.
//
// Deleting a ticket marks it (tickets.deleted_at, migration 0012) and wakes it: the evaluation then
// sees no clocks, which cancels the stored ones here with reason `ticket_deleted`. The rows, these
// events included, stay (a hard delete would cascade them away in the same statement). Deleting a
// tenant removes everything of it, its SLA events included.
import type { TicketPriority } from '../tickets/model.ts';
import type { ClockState, MetricName } from './clocks.ts';
import type { ComputedSla } from './ticket-sla.ts';

/** A row of sla_clocks, as the evaluator reads and writes it (instants in seconds). */
export interface StoredClock {
  metric: MetricName;
  cycle: number;
  status: ClockState['status'] | 'cancelled';
  policyId: string | null;
  policyUpdatedAt: string | null;
  calendarId: string | null;
  calendarUpdatedAt: string | null;
  priority: string;
  startedAt: number;
  targetSeconds: number;
  usedSeconds: number;
  pausedSince: number | null;
  dueAt: number | null;
  nextWakeAt: number | null;
  breachedAt: number | null;
  fulfilledAt: number | null;
  cancelledAt: number | null;
}

export interface SlaEventRow {
  metric: string;
  cycle: number;
  type: 'started' | 'paused' | 'resumed' | 'fulfilled' | 'recomputed' | 'cancelled';
  /** Seconds. */
  at: number;
  data: Record<string, unknown>;
}

const key = (metric: string, cycle: number) => `${metric}#${cycle}`;
const iso = (t: number | null) =>
  t === null ? null : new Date(t * 1000).toISOString().replace('.000Z', 'Z');

/** The earliest threshold or escalation level of a clock still to come after `now`, if any. */
export function nextThresholdAt(clock: ClockState, now: number): number | null {
  let next: number | null = null;
  for (const th of clock.thresholds)
    if (th.dueAt !== null && th.dueAt > now) next = next === null ? th.dueAt : Math.min(next, th.dueAt);
  return next;
}

/**
 * The events and stored rows of one evaluation of one ticket at `now` (whole seconds).
 * `stored` are the ticket's rows from the previous evaluation (empty on the first).
 */
export function diffClocks(input: {
  stored: StoredClock[];
  computed: ComputedSla;
  priority: TicketPriority;
  now: number;
}): { events: SlaEventRow[]; rows: StoredClock[] } {
  const { computed, priority, now } = input;
  const stored = new Map(input.stored.map((s) => [key(s.metric, s.cycle), s]));
  const events: SlaEventRow[] = [];
  const rows: StoredClock[] = [];
  const basis = {
    policyId: computed.policy?.id ?? null,
    policyUpdatedAt: computed.policy?.updatedAt ?? null,
    calendarId: computed.calendarId,
    calendarUpdatedAt: computed.calendarUpdatedAt,
    priority,
  };
  const seen = new Set<string>();
  for (const c of computed.clocks) {
    seen.add(key(c.metric, c.cycle));
    for (const t of c.transitions)
      events.push({
        metric: c.metric,
        cycle: c.cycle,
        type: t.type,
        at: t.at,
        data: t.status ? { status: t.status } : {},
      });
    const row: StoredClock = {
      metric: c.metric,
      cycle: c.cycle,
      status: c.status,
      ...basis,
      startedAt: c.startedAt,
      targetSeconds: c.targetSeconds,
      usedSeconds: c.elapsedSeconds,
      pausedSince: c.pausedSince,
      dueAt: c.dueAt,
      nextWakeAt: nextThresholdAt(c, now),
      breachedAt: c.breachedAt,
      fulfilledAt: c.fulfilledAt,
      cancelledAt: null,
    };
    rows.push(row);
    const before = stored.get(key(c.metric, c.cycle));
    if (!before) continue;
    const reasons = [
      ...(before.priority !== basis.priority ? ['priority'] : []),
      ...(before.policyId !== basis.policyId || before.policyUpdatedAt !== basis.policyUpdatedAt
        ? ['policy']
        : []),
      ...(before.calendarId !== basis.calendarId || before.calendarUpdatedAt !== basis.calendarUpdatedAt
        ? ['calendar']
        : []),
    ];
    const moved =
      before.status === 'cancelled' ||
      before.targetSeconds !== row.targetSeconds ||
      before.dueAt !== row.dueAt ||
      before.breachedAt !== row.breachedAt;
    // A due time also moves when the clock pauses or resumes; only a configuration change is a recompute.
    if (reasons.length > 0 && moved)
      events.push({
        metric: c.metric,
        cycle: c.cycle,
        type: 'recomputed',
        at: now,
        data: { reasons, before: summary(before), after: summary(row) },
      });
  }
  for (const [k, s] of stored) {
    if (seen.has(k) || s.status === 'fulfilled' || s.status === 'cancelled') continue;
    const reason = computed.deleted
      ? 'ticket_deleted'
      : computed.policy === null
        ? 'no_policy'
        : computed.clocks.some((c) => c.metric === s.metric)
          ? 'cycle_gone'
          : 'no_target';
    events.push({
      metric: s.metric,
      cycle: s.cycle,
      type: 'cancelled',
      at: now,
      data: { reason, before: summary(s) },
    });
    rows.push({ ...s, status: 'cancelled', nextWakeAt: null, cancelledAt: now });
  }
  return { events, rows };
}

function summary(s: StoredClock): Record<string, unknown> {
  return {
    policyId: s.policyId,
    calendarId: s.calendarId,
    priority: s.priority,
    targetSeconds: s.targetSeconds,
    dueAt: iso(s.dueAt),
    breachedAt: iso(s.breachedAt),
    status: s.status,
  };
}

/**
 * The ticket's SLA in one word, worst first: breached (an unfulfilled metric past 100 %), at_risk
 * (past the second-highest threshold below 100 %: 75 % with the default 50/75/90/100), active,
 * paused, or fulfilled when nothing runs.
 */
export function summaryState(
  clocks: ClockState[],
  now: number,
): 'breached' | 'at_risk' | 'paused' | 'active' | 'fulfilled' {
  const open = clocks.filter((m) => m.status !== 'fulfilled');
  if (open.some((m) => m.status === 'breached')) return 'breached';
  const atRisk = open.some((m) => {
    const below = m.thresholds
      .map((th) => th.percent)
      .filter((p) => p < 100)
      .sort((a, b) => b - a);
    const mark = below[1] ?? below[0];
    const th = m.thresholds.find((x) => x.percent === mark);
    return th?.dueAt != null && th.dueAt <= now;
  });
  if (atRisk) return 'at_risk';
  if (open.some((m) => m.status === 'active')) return 'active';
  if (open.some((m) => m.status === 'paused')) return 'paused';
  return 'fulfilled';
}

/** The earliest due time of a metric still running (for sort=due), in seconds. */
export function nextDue(clocks: ClockState[]): number | null {
  let next: number | null = null;
  for (const c of clocks)
    if ((c.status === 'active' || c.status === 'breached') && c.dueAt !== null)
      next = next === null ? c.dueAt : Math.min(next, c.dueAt);
  return next;
}
