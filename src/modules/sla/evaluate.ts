// Evaluating a batch of one tenant's tickets in one transaction: recompute their clocks from the
// timeline, record each threshold that has come due once (the primary key of sla_threshold_fires),
// with its SLA event, its domain job and, for an escalation level, its actions; write the clock
// lifecycle events and the recomputed/cancelled ones (clock-events.ts); store the clocks, the
// ticket's summary and its next wake-up. A fixed number of statements per batch, whatever its size:
// the scheduler keeps up with many thousands of clocks coming due per minute that way.
//
// Why the events are written here and not in the transaction that changed the ticket: that
// transaction commits the ticket's wake-up row with the change (wake.ts), so a committed change is
// always evaluated, within about a second, and its events written exactly once; an uncommitted one
// never is. Computing the clocks (and their events) in one place keeps every change path — API,
// inbound mail, escalation actions, configuration edits — from needing SLA code of its own.
import type { TenantTx } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
import { assignTicket, setPriority } from '../tickets/changes.ts';
import { lockTickets } from '../tickets/housekeeping.ts';
import { dropWakeups, lockWakeups, setNextWakeups } from '../tickets/wakeups.ts';
import { uuidv7 } from '../../platform/ids.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import { formatInstant } from './calendar.ts';
import { diffClocks, nextDue, type SlaEventRow, type StoredClock, summaryState } from './clock-events.ts';
import type { MetricName } from './clocks.ts';
import type { EscalationAction } from './config.ts';
import { type NewEvent, recordEvents } from '../events/events.ts';
import { computeTicketSla, loadSlaConfig, loadTicketInputs } from './ticket-sla.ts';

const seconds = (iso: string | null) => (iso === null ? null : Math.floor(Date.parse(iso) / 1000));

interface StoredRow {
  ticket_id: string;
  metric: MetricName;
  cycle: number;
  status: StoredClock['status'];
  policy_id: string | null;
  policy_updated_at: string | null;
  calendar_id: string | null;
  calendar_updated_at: string | null;
  priority: string;
  started_at: string;
  target_seconds: number;
  used_seconds: number;
  paused_since: string | null;
  due_at: string | null;
  next_wake_at: string | null;
  breached_at: string | null;
  fulfilled_at: string | null;
  cancelled_at: string | null;
}

async function storedClocks(tx: TenantTx, ticketIds: string[]): Promise<Map<string, StoredClock[]>> {
  const { rows } = await tx.query<StoredRow>(
    `SELECT ticket_id, metric, cycle, status, policy_id, policy_updated_at, calendar_id, calendar_updated_at,
            priority, started_at, target_seconds, used_seconds, paused_since, due_at, next_wake_at,
            breached_at, fulfilled_at, cancelled_at
       FROM sla_clocks WHERE tenant_id = $1 AND ticket_id = ANY($2::uuid[])`,
    [tx.tenantId, ticketIds],
  );
  const byTicket = new Map<string, StoredClock[]>();
  for (const r of rows) {
    let list = byTicket.get(r.ticket_id);
    if (!list) byTicket.set(r.ticket_id, (list = []));
    list.push({
      metric: r.metric,
      cycle: r.cycle,
      status: r.status,
      policyId: r.policy_id,
      policyUpdatedAt: r.policy_updated_at,
      calendarId: r.calendar_id,
      calendarUpdatedAt: r.calendar_updated_at,
      priority: r.priority,
      startedAt: seconds(r.started_at)!,
      targetSeconds: r.target_seconds,
      usedSeconds: r.used_seconds,
      pausedSince: seconds(r.paused_since),
      dueAt: seconds(r.due_at),
      nextWakeAt: seconds(r.next_wake_at),
      breachedAt: seconds(r.breached_at),
      fulfilledAt: seconds(r.fulfilled_at),
      cancelledAt: seconds(r.cancelled_at),
    });
  }
  return byTicket;
}

interface Candidate {
  ticket_id: string;
  metric: string;
  cycle: number;
  percent: number;
  due: number;
}

/**
 * Evaluates the given tickets of the transaction's tenant at `now` (seconds since the epoch; a
 * fraction is kept for the recorded firing time, the clocks use the whole second). Only tickets that
 * still have a wake-up row are evaluated: their rows are locked for the transaction, which keeps two
 * schedulers off one ticket and makes a concurrent change's wake-up wait for our commit instead of
 * being overwritten by it. Returns how many tickets were evaluated and how many thresholds fired.
 */
export async function evaluateTickets(
  tx: TenantTx,
  ticketIds: string[],
  options: {
    now: number;
    /** The time to record as fired_at, read when the firings are written (default: `now`). */
    firedAt?: () => number;
    queue?: JobQueue | undefined;
  },
): Promise<{ evaluated: number; fired: number }> {
  const now = Math.floor(options.now);
  // Ticket rows first, then wake-up rows, both in id order: the order every ticket change takes
  // them in (it locks the ticket, then upserts its wake-up), so an escalation action updating a
  // ticket below cannot deadlock with a change of that ticket.
  const locked = await lockTickets(tx, ticketIds);
  if (locked.length < ticketIds.length) {
    // A wake-up has no key to its ticket (migration 0013): one whose ticket is gone is dropped.
    const found = new Set(locked);
    await dropWakeups(
      tx,
      ticketIds.filter((id) => !found.has(id)),
    );
  }
  if (locked.length === 0) return { evaluated: 0, fired: 0 };
  const ids = await lockWakeups(tx, locked);
  if (ids.length === 0) return { evaluated: 0, fired: 0 };

  const config = await loadSlaConfig(tx);
  const stored = await storedClocks(tx, ids);
  const inputs = await loadTicketInputs(tx, ids, config);

  const events: (SlaEventRow & { ticket_id: string })[] = [];
  const clockRows: (StoredClock & { ticket_id: string })[] = [];
  const candidates: Candidate[] = [];
  const states: { ticket_id: string; state: string; next_due_at: string | null }[] = [];
  const stateless: string[] = [];
  const next = new Map<string, number>();
  const escalationsOf = new Map<string, { percent: number; actions: EscalationAction[] }[]>();

  for (const [id, input] of inputs) {
    const computed = computeTicketSla(input, config, now);
    const diff = diffClocks({ stored: stored.get(id) ?? [], computed, priority: input.priority, now });
    for (const e of diff.events) events.push({ ...e, ticket_id: id });
    for (const r of diff.rows) clockRows.push({ ...r, ticket_id: id });
    escalationsOf.set(id, computed.policy?.escalations ?? []);
    let wake: number | null = null;
    for (const c of computed.clocks) {
      for (const th of c.thresholds) {
        if (th.dueAt === null) continue;
        if (th.dueAt > now) wake = wake === null ? th.dueAt : Math.min(wake, th.dueAt);
        else
          candidates.push({
            ticket_id: id,
            metric: c.metric,
            cycle: c.cycle,
            percent: th.percent,
            due: th.dueAt,
          });
      }
    }
    if (wake !== null) next.set(id, wake);
    if (computed.policy === null) stateless.push(id);
    else {
      const due = nextDue(computed.clocks);
      states.push({
        ticket_id: id,
        state: summaryState(computed.clocks, now),
        next_due_at: due === null ? null : formatInstant(due),
      });
    }
  }

  // Thresholds that came due: the primary key lets each through once, whatever ran before.
  let fired = 0;
  const notices: NewEvent[] = [];
  if (candidates.length > 0) {
    const firedAt = options.firedAt?.() ?? options.now;
    const { rows: fires } = await tx.query<{
      ticket_id: string;
      metric: string;
      cycle: number;
      percent: number;
    }>(
      `INSERT INTO sla_threshold_fires (tenant_id, ticket_id, metric, cycle, percent, due_at, fired_at)
       SELECT $1, r.ticket_id, r.metric, r.cycle, r.percent, to_timestamp(r.due), to_timestamp($3)
         FROM jsonb_to_recordset($2::jsonb) AS r(ticket_id uuid, metric text, cycle integer, percent integer, due bigint)
       ON CONFLICT DO NOTHING
       RETURNING ticket_id, metric, cycle, percent`,
      [tx.tenantId, JSON.stringify(candidates), firedAt],
    );
    const dueOf = new Map(
      candidates.map((c) => [`${c.ticket_id}|${c.metric}|${c.cycle}|${c.percent}`, c.due]),
    );
    for (const f of fires) {
      fired++;
      const due = dueOf.get(`${f.ticket_id}|${f.metric}|${f.cycle}|${f.percent}`)!;
      const level = escalationsOf.get(f.ticket_id)?.find((e) => e.percent === f.percent);
      const dueAt = formatInstant(due);
      events.push({
        ticket_id: f.ticket_id,
        metric: f.metric,
        cycle: f.cycle,
        // A threshold's event is at the instant it was reached; when it fired is in the data.
        type: (level ? 'escalation' : f.percent === 100 ? 'breached' : 'threshold') as SlaEventRow['type'],
        at: due,
        data: {
          percent: f.percent,
          dueAt,
          firedAt: new Date(firedAt * 1000).toISOString(),
          ...(level ? { actions: level.actions } : {}),
        },
      });
      // What notifications hear of: a breach (urgent: it passes quiet hours) or a threshold, and an
      // escalation level's `notify` actions with whom they name.
      // Levels past 100 % (escalations after the breach) are not new breaches.
      if (!level || f.percent <= 100)
        notices.push({
          type: f.percent === 100 ? 'sla.breached' : 'sla.threshold',
          ticketId: f.ticket_id,
          urgent: f.percent === 100,
          data: { metric: f.metric, cycle: f.cycle, percent: f.percent, dueAt },
        });
      const notify = level?.actions.filter((a) => a.type === 'notify') ?? [];
      if (level)
        notices.push({
          type: 'sla.escalated',
          ticketId: f.ticket_id,
          urgent: f.percent >= 100,
          data: {
            metric: f.metric,
            cycle: f.cycle,
            percent: f.percent,
            dueAt,
            notify: notify.map((a) => (a.personId ? { personId: a.personId } : { role: a.role })),
          },
        });
      if (level && (await carryOut(tx, f.ticket_id, level.actions))) next.set(f.ticket_id, now); // new priority, new targets: evaluate again at the next pass
    }
  }

  if (events.length > 0)
    await tx.query(
      `INSERT INTO sla_events (tenant_id, id, ticket_id, metric, cycle, type, at, data)
       SELECT $1, r.id, r.ticket_id, r.metric, r.cycle, r.type, to_timestamp(r.at), r.data
         FROM jsonb_to_recordset($2::jsonb) AS r(id uuid, ticket_id uuid, metric text, cycle integer, type text, at bigint, data jsonb)
       ON CONFLICT DO NOTHING`,
      [tx.tenantId, JSON.stringify(events.map((e) => ({ ...e, id: uuidv7() })))],
    );
  if (clockRows.length > 0) await writeClocks(tx, clockRows, now);
  if (states.length > 0)
    await tx.query(
      `INSERT INTO sla_ticket_state (tenant_id, ticket_id, state, next_due_at, updated_at)
       SELECT $1, r.ticket_id, r.state, r.next_due_at, now()
         FROM jsonb_to_recordset($2::jsonb) AS r(ticket_id uuid, state text, next_due_at timestamptz)
       ON CONFLICT (tenant_id, ticket_id) DO UPDATE
         SET state = excluded.state, next_due_at = excluded.next_due_at, updated_at = now()`,
      [tx.tenantId, JSON.stringify(states)],
    );
  if (stateless.length > 0)
    await tx.query('DELETE FROM sla_ticket_state WHERE tenant_id = $1 AND ticket_id = ANY($2::uuid[])', [
      tx.tenantId,
      stateless,
    ]);
  const idle = [...inputs.keys()].filter((id) => !next.has(id));
  await setNextWakeups(tx, next);
  await dropWakeups(tx, idle);
  await recordEvents(tx, notices);
  return { evaluated: inputs.size, fired };
}

async function writeClocks(tx: TenantTx, rows: (StoredClock & { ticket_id: string })[], now: number) {
  await tx.query(
    `INSERT INTO sla_clocks (tenant_id, ticket_id, metric, cycle, status, policy_id, policy_updated_at, calendar_id,
                             calendar_updated_at, priority, started_at, target_seconds, used_seconds, paused_since,
                             due_at, next_wake_at, breached_at, fulfilled_at, cancelled_at, computed_at)
     SELECT $1, r.ticket_id, r."metric", r."cycle", r."status", r."policyId", r."policyUpdatedAt", r."calendarId",
            r."calendarUpdatedAt", r."priority", to_timestamp(r."startedAt"), r."targetSeconds", r."usedSeconds",
            to_timestamp(r."pausedSince"), to_timestamp(r."dueAt"), to_timestamp(r."nextWakeAt"),
            to_timestamp(r."breachedAt"), to_timestamp(r."fulfilledAt"), to_timestamp(r."cancelledAt"), to_timestamp($3)
       FROM jsonb_to_recordset($2::jsonb) AS r(ticket_id uuid, "metric" text, "cycle" integer, "status" text,
            "policyId" uuid, "policyUpdatedAt" timestamptz, "calendarId" uuid, "calendarUpdatedAt" timestamptz,
            "priority" text, "startedAt" bigint, "targetSeconds" integer, "usedSeconds" integer, "pausedSince" bigint,
            "dueAt" bigint, "nextWakeAt" bigint, "breachedAt" bigint, "fulfilledAt" bigint, "cancelledAt" bigint)
     ON CONFLICT (tenant_id, ticket_id, metric, cycle) DO UPDATE SET
       status = excluded.status, policy_id = excluded.policy_id, policy_updated_at = excluded.policy_updated_at,
       calendar_id = excluded.calendar_id, calendar_updated_at = excluded.calendar_updated_at,
       priority = excluded.priority, started_at = excluded.started_at, target_seconds = excluded.target_seconds,
       used_seconds = excluded.used_seconds, paused_since = excluded.paused_since, due_at = excluded.due_at,
       next_wake_at = excluded.next_wake_at, breached_at = excluded.breached_at,
       fulfilled_at = excluded.fulfilled_at, cancelled_at = excluded.cancelled_at, computed_at = excluded.computed_at`,
    [tx.tenantId, JSON.stringify(rows), now],
  );
}

/**
 * Carries out an escalation level's actions in the evaluating transaction: reassign or set the
 * priority (its `notify` actions are told by the `sla.escalated` event recorded with it). Returns
 * whether the priority changed.
 */
async function carryOut(tx: TenantTx, ticketId: string, actions: EscalationAction[]): Promise<boolean> {
  let changedPriority = false;
  for (const action of actions) {
    if (action.type === 'reassign') {
      // Through the tickets module, like any change (history, wake-up). An assignee that is no
      // longer an agent is skipped: the escalation's other actions still happen.
      await assignTicket(tx, { ticketId, assigneeId: action.personId, actorId: null }).catch((err) => {
        if (!(err instanceof AppError && err.code === 'validation_failed')) throw err;
      });
    } else if (action.type === 'set_priority') {
      changedPriority = true;
      await setPriority(tx, { ticketId, priority: action.priority, actorId: null });
    }
  }
  return changedPriority;
}
