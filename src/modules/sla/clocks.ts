// SLA clocks, computed: a pure function of a ticket's timeline (status history and messages), its
// policy and calendar, and "now". Recomputing from the timeline (instead of patching stored
// counters) is what makes priority, policy or calendar changes, pauses and restarts exact: the
// stored clock rows are a cache of this, plus which thresholds have fired.
// Pauses add business time, not wall time. A breach never changes when the response really came.
import type { Calendar } from './calendar.ts';

export type MetricName = 'first_response' | 'next_response' | 'resolution';

export interface TimelineEntry {
  /** Seconds since the epoch. */
  at: number;
  kind: 'status' | 'agent_public' | 'requester_public';
  /** For status entries. */
  status?: string;
}

export interface ClockPolicy {
  /** Business seconds per metric; a metric without a target has no clock. */
  targets: Partial<Record<MetricName, number>>;
  pauseStatuses: Partial<Record<MetricName, string[]>>;
  thresholds: number[];
  escalations: number[];
  reopen: 'continue' | 'restart';
}

export interface ThresholdState {
  percent: number;
  /** When the used business time reaches this percentage; null while paused before reaching it. */
  dueAt: number | null;
}

/**
 * A change in a clock's life, at the instant it happened: started, paused (a pausing status),
 * resumed, fulfilled. A resolution that continues after a reopen is `fulfilled` when solved and
 * `resumed` when reopened. `status` is the ticket status that caused a pause or resume.
 */
export interface ClockTransition {
  type: 'started' | 'paused' | 'resumed' | 'fulfilled';
  at: number;
  status?: string;
}

export interface ClockState {
  metric: MetricName;
  cycle: number;
  status: 'active' | 'paused' | 'fulfilled' | 'breached';
  startedAt: number;
  targetSeconds: number;
  elapsedSeconds: number;
  /** When the target is (or was) reached, if known. */
  dueAt: number | null;
  breachedAt: number | null;
  fulfilledAt: number | null;
  /** Since when it has not been running (a pausing status), while not fulfilled; else null. */
  pausedSince: number | null;
  thresholds: ThresholdState[];
  /** Everything that happened to the clock up to now, in order. */
  transitions: ClockTransition[];
}

interface Cycle {
  metric: MetricName;
  cycle: number;
  start: number;
  /** When it was fulfilled; null while it runs or is paused. */
  end: number | null;
}

const CLOSED = new Set(['solved', 'closed']);

/** The spans of [from, to) during which the status was not one of `paused`. */
function runningSpans(
  statusAt: (t: number) => string,
  changes: number[],
  from: number,
  to: number,
  paused: Set<string>,
): [number, number][] {
  const cuts = [from, ...changes.filter((c) => c > from && c < to), to];
  const spans: [number, number][] = [];
  for (let i = 0; i < cuts.length - 1; i++) {
    const [a, b] = [cuts[i]!, cuts[i + 1]!];
    if (b > a && !paused.has(statusAt(a))) {
      const last = spans[spans.length - 1];
      if (last && last[1] === a) last[1] = b;
      else spans.push([a, b]);
    }
  }
  return spans;
}

/** Computes every clock of a ticket at `now` (seconds). */
export function computeClocks(input: {
  createdAt: number;
  timeline: TimelineEntry[];
  policy: ClockPolicy;
  calendar: Calendar;
  now: number;
}): ClockState[] {
  const { createdAt, policy, calendar, now } = input;
  const timeline = [...input.timeline].filter((e) => e.at <= now).sort((a, b) => a.at - b.at);
  const statusChanges = timeline.filter((e) => e.kind === 'status');
  const statusAt = (t: number): string => {
    let s = 'new';
    for (const c of statusChanges) {
      if (c.at <= t) s = c.status!;
      else break;
    }
    return s;
  };
  const changeTimes = statusChanges.map((c) => c.at);
  const cycles: Cycle[] = [];

  // first_response: from creation to the first public agent reply.
  if (policy.targets.first_response) {
    const reply = timeline.find((e) => e.kind === 'agent_public' && e.at >= createdAt);
    cycles.push({ metric: 'first_response', cycle: 1, start: createdAt, end: reply?.at ?? null });
  }
  // next_response: each requester message after an agent reply opens a cycle; the next agent reply ends it.
  if (policy.targets.next_response) {
    let agentReplied = false;
    let open: Cycle | undefined;
    let n = 0;
    for (const e of timeline) {
      if (e.kind === 'agent_public') {
        if (open) {
          open.end = e.at;
          open = undefined;
        }
        agentReplied = true;
      } else if (e.kind === 'requester_public' && agentReplied && !open) {
        open = { metric: 'next_response', cycle: ++n, start: e.at, end: null };
        cycles.push(open);
      }
    }
  }
  // resolution: from creation until solved/closed; a reopen continues it (or restarts it).
  if (policy.targets.resolution) {
    let current: Cycle = { metric: 'resolution', cycle: 1, start: createdAt, end: null };
    const segments: Cycle[] = [current];
    let prev = 'new';
    for (const c of statusChanges) {
      const to = c.status!;
      if (!CLOSED.has(prev) && CLOSED.has(to)) current.end = c.at;
      if (CLOSED.has(prev) && !CLOSED.has(to)) {
        if (policy.reopen === 'restart') {
          current = { metric: 'resolution', cycle: current.cycle + 1, start: c.at, end: null };
          segments.push(current);
        } else {
          // continue: the same cycle runs again; the time it was solved/closed is paused below.
          current.end = null;
        }
      }
      prev = to;
    }
    cycles.push(...segments);
  }

  return cycles.map((c) => {
    const target = policy.targets[c.metric]!;
    const paused = new Set(policy.pauseStatuses[c.metric] ?? []);
    if (c.metric === 'resolution') for (const s of CLOSED) paused.add(s);
    const until = c.end ?? now;
    const transitions = clockTransitions(c, statusAt, changeTimes, until, paused);
    const spans = runningSpans(statusAt, changeTimes, c.start, until, paused);
    let used = 0;
    const reached = new Map<number, number>(); // percent → instant reached
    const percents = [...new Set([...policy.thresholds, 100, ...policy.escalations])].sort((a, b) => a - b);
    for (const [a, b] of spans) {
      const inSpan = calendar.elapsed(a, b);
      for (const p of percents) {
        const need = Math.ceil((target * p) / 100);
        if (!reached.has(p) && used + inSpan >= need && need > used)
          reached.set(p, calendar.deadline(a, need - used));
        if (!reached.has(p) && need <= used) reached.set(p, a);
      }
      used += inSpan;
    }
    const fulfilled = c.end !== null;
    // Running now: not fulfilled and not in a pausing status (a clock started this very second has no span yet).
    const runningNow = !fulfilled && c.start <= now && !paused.has(statusAt(now));
    const thresholds: ThresholdState[] = percents
      .filter((p) => policy.thresholds.includes(p) || policy.escalations.includes(p) || p === 100)
      .map((p) => {
        const at = reached.get(p);
        if (at !== undefined) return { percent: p, dueAt: at };
        if (fulfilled || !runningNow) return { percent: p, dueAt: null };
        return { percent: p, dueAt: calendar.deadline(now, Math.ceil((target * p) / 100) - used) };
      });
    const breachedAt = reached.get(100) ?? null;
    const due = thresholds.find((th) => th.percent === 100)?.dueAt ?? null;
    const status: ClockState['status'] = fulfilled
      ? 'fulfilled'
      : breachedAt !== null && breachedAt <= now
        ? 'breached'
        : runningNow
          ? 'active'
          : 'paused';
    return {
      metric: c.metric,
      cycle: c.cycle,
      status,
      startedAt: c.start,
      targetSeconds: target,
      elapsedSeconds: used,
      dueAt: due,
      breachedAt,
      fulfilledAt: c.end,
      pausedSince: fulfilled || runningNow ? null : (transitions.at(-1)?.at ?? c.start),
      thresholds,
      transitions,
    };
  });
}

/**
 * The transitions of one cycle: started at its start, then each time the status moves between
 * running, pausing and (for a resolution that continues after a reopen) solved/closed before `until`
 * — resumed, paused, fulfilled — then fulfilled at its end. Several changes within one second count
 * as their last one.
 */
function clockTransitions(
  c: Cycle,
  statusAt: (t: number) => string,
  changes: number[],
  until: number,
  paused: Set<string>,
): ClockTransition[] {
  const out: ClockTransition[] = [{ type: 'started', at: c.start }];
  const stateOf = (status: string) =>
    c.metric === 'resolution' && CLOSED.has(status) ? 'fulfilled' : paused.has(status) ? 'paused' : 'resumed';
  let state: ClockTransition['type'] = 'resumed';
  const cuts = [c.start, ...new Set(changes.filter((t) => t > c.start && t < until))];
  for (const at of cuts) {
    const status = statusAt(at);
    const next = stateOf(status);
    if (next !== state) {
      out.push({ type: next, at, status });
      state = next;
    }
  }
  if (c.end !== null) out.push({ type: 'fulfilled', at: c.end });
  return out;
}
