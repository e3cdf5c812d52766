// A ticket's SLA, computed from its timeline: the policy that matches it, the calendar, the status
// history and the public messages (agent replies and requester messages). The scheduler loads these
// for a batch of tickets at once (a handful of statements per batch, not per ticket); the read side
// loads them for one.
import type { TenantTx } from '../../platform/db/tx.ts';
import { notFound } from '../../platform/errors.ts';
import type { TicketPriority } from '../tickets/model.ts';
import { Calendar, formatInstant } from './calendar.ts';
import {
  type ClockPolicy,
  type ClockState,
  computeClocks,
  type MetricName,
  type TimelineEntry,
} from './clocks.ts';
import { listPolicies, matchPolicy, type Policy } from './config.ts';

const ALWAYS = Calendar.load({ timeZone: 'UTC', alwaysOpen: true });
const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);

export interface TicketSla {
  policyId: string | null;
  metrics: {
    metric: MetricName;
    cycle: number;
    status: ClockState['status'];
    startedAt: string;
    dueAt: string | null;
    targetSeconds: number;
    elapsedSeconds: number;
    remainingSeconds: number;
    percent: number;
    breachedAt: string | null;
    fulfilledAt: string | null;
    thresholds: { percent: number; dueAt: string | null; firedAt: string | null }[];
  }[];
}

export function clockPolicyOf(policy: Policy, priority: TicketPriority): ClockPolicy {
  const t = policy.targets[priority] ?? {};
  const pause = policy.pauseStatuses;
  return {
    targets: {
      ...(t.firstResponse ? { first_response: t.firstResponse } : {}),
      ...(t.nextResponse ? { next_response: t.nextResponse } : {}),
      ...(t.resolution ? { resolution: t.resolution } : {}),
    },
    pauseStatuses: {
      first_response: pause.firstResponse ?? [],
      next_response: pause.nextResponse ?? [],
      resolution: pause.resolution ?? [],
    },
    thresholds: policy.thresholds,
    escalations: policy.escalations.map((e) => e.percent),
    reopen: policy.reopen,
  };
}

// ---------------------------------------------------------------------------------------------
// Configuration: a tenant's policies and the calendars they use.

export interface SlaConfig {
  policies: Policy[];
  /** Compiled calendars by id, with the version they were compiled from. */
  calendars: Map<string, { calendar: Calendar; updatedAt: string }>;
  /** Whether any policy has conditions on the requester's domain or the mailbox (else not loaded). */
  needsEmail: boolean;
  needsMailbox: boolean;
}

// Compiling a calendar is the costly part of loading one (its years are compiled on first use and
// cached inside the Calendar), so compiled calendars are kept per (tenant, id, updated_at): an edit
// changes updated_at, which is the invalidation. Bounded; the oldest entries go first.
const compiled = new Map<string, Calendar>();
const COMPILED_MAX = 1_000;

function compiledCalendar(tenantId: string, id: string, updatedAt: string, spec: unknown): Calendar {
  const key = `${tenantId}|${id}|${updatedAt}`;
  let calendar = compiled.get(key);
  if (!calendar) {
    calendar = Calendar.load(spec);
    if (compiled.size >= COMPILED_MAX) compiled.delete(compiled.keys().next().value!);
    compiled.set(key, calendar);
  }
  return calendar;
}

/** The tenant's policies (in order) and the calendars they use, read in the caller's transaction. */
export async function loadSlaConfig(tx: TenantTx): Promise<SlaConfig> {
  const policies = await listPolicies(tx);
  const ids = [...new Set(policies.map((p) => p.calendarId).filter((id): id is string => id !== null))];
  const calendars = new Map<string, { calendar: Calendar; updatedAt: string }>();
  if (ids.length > 0) {
    const { rows } = await tx.query<{ id: string; spec: unknown; updated_at: string }>(
      'SELECT id, spec, updated_at FROM calendars WHERE tenant_id = $1 AND id = ANY($2::uuid[])',
      [tx.tenantId, ids],
    );
    for (const r of rows)
      calendars.set(r.id, {
        calendar: compiledCalendar(tx.tenantId, r.id, r.updated_at, r.spec),
        updatedAt: r.updated_at,
      });
  }
  return {
    policies,
    calendars,
    needsEmail: policies.some((p) => (p.conditions.requesterDomains?.length ?? 0) > 0),
    needsMailbox: policies.some((p) => (p.conditions.mailboxIds?.length ?? 0) > 0),
  };
}

// ---------------------------------------------------------------------------------------------
// Tickets: what the clocks are computed from.

export interface TicketSlaInput {
  id: string;
  priority: TicketPriority;
  createdAt: number;
  requesterEmail: string | null;
  mailboxId: string | null;
  timeline: TimelineEntry[];
  /** Deleted tickets keep their rows; their clocks are cancelled. */
  deleted: boolean;
}

/** The SLA inputs of the given tickets (missing ones are absent from the map). */
export async function loadTicketInputs(
  tx: TenantTx,
  ticketIds: string[],
  config: Pick<SlaConfig, 'needsEmail' | 'needsMailbox'>,
): Promise<Map<string, TicketSlaInput>> {
  const { rows } = await tx.query<{
    id: string;
    priority: TicketPriority;
    created_at: string;
    email: string | null;
    mailbox_id: string | null;
    deleted: boolean;
  }>(
    `SELECT t.id, t.priority, t.created_at, t.deleted_at IS NOT NULL AS deleted,
            CASE WHEN $3 THEN (SELECT address FROM person_emails e
                                WHERE e.tenant_id = t.tenant_id AND e.person_id = t.requester_id AND e.is_primary) END AS email,
            CASE WHEN $4 THEN (SELECT i.mailbox_id FROM ticket_messages m
                                 JOIN inbound_messages i ON i.tenant_id = m.tenant_id AND i.id = m.inbound_id
                                WHERE m.tenant_id = t.tenant_id AND m.ticket_id = t.id ORDER BY m.created_at LIMIT 1) END AS mailbox_id
       FROM tickets t WHERE t.tenant_id = $1 AND t.id = ANY($2::uuid[])`,
    [tx.tenantId, ticketIds, config.needsEmail, config.needsMailbox],
  );
  const inputs = new Map<string, TicketSlaInput>();
  for (const r of rows)
    inputs.set(r.id, {
      id: r.id,
      priority: r.priority,
      createdAt: seconds(r.created_at),
      requesterEmail: r.email,
      mailboxId: r.mailbox_id,
      timeline: [],
      deleted: r.deleted,
    });
  if (inputs.size === 0) return inputs;
  const { rows: events } = await tx.query<{
    ticket_id: string;
    at: string;
    kind: TimelineEntry['kind'];
    status: string | null;
  }>(
    `SELECT * FROM (
       SELECT ticket_id, changed_at AS at, 'status' AS kind, to_status AS status FROM ticket_status_history
        WHERE tenant_id = $1 AND ticket_id = ANY($2::uuid[]) AND from_status IS NOT NULL
       UNION ALL
       SELECT m.ticket_id, m.created_at, CASE
                WHEN m.visibility <> 'public' THEN 'other'
                WHEN coalesce((m.classification->>'automatic')::boolean, false) THEN 'other'
                WHEN p.kind = 'agent' THEN 'agent_public'
                WHEN m.author_id = t.requester_id THEN 'requester_public'
                ELSE 'other' END, NULL
         FROM ticket_messages m
         JOIN tickets t ON t.tenant_id = m.tenant_id AND t.id = m.ticket_id
         JOIN people p ON p.tenant_id = m.tenant_id AND p.id = m.author_id
        WHERE m.tenant_id = $1 AND m.ticket_id = ANY($2::uuid[])
     ) e WHERE kind <> 'other'`,
    [tx.tenantId, [...inputs.keys()]],
  );
  for (const e of events)
    inputs.get(e.ticket_id)!.timeline.push({
      at: seconds(e.at),
      kind: e.kind,
      ...(e.status ? { status: e.status } : {}),
    });
  return inputs;
}

// ---------------------------------------------------------------------------------------------
// Computing.

export interface ComputedSla {
  policy: Policy | null;
  calendarId: string | null;
  calendarUpdatedAt: string | null;
  clocks: ClockState[];
  /** The ticket was deleted: every clock it had is cancelled. */
  deleted?: boolean;
}

/** The ticket's clocks at `now` (seconds) under the first matching policy; none when none matches. */
export function computeTicketSla(input: TicketSlaInput, config: SlaConfig, now: number): ComputedSla {
  if (input.deleted)
    return { policy: null, calendarId: null, calendarUpdatedAt: null, clocks: [], deleted: true };
  const policy = matchPolicy(config.policies, {
    priority: input.priority,
    requesterEmail: input.requesterEmail,
    mailboxId: input.mailboxId,
  });
  if (!policy) return { policy: null, calendarId: null, calendarUpdatedAt: null, clocks: [] };
  const cal = policy.calendarId ? config.calendars.get(policy.calendarId) : undefined;
  // The calendar's foreign key keeps it while a policy uses it; a policy read without it is a bug.
  if (policy.calendarId && !cal)
    throw new Error(`SLA policy ${policy.id}: calendar ${policy.calendarId} missing`);
  const clocks = computeClocks({
    createdAt: input.createdAt,
    timeline: input.timeline,
    policy: clockPolicyOf(policy, input.priority),
    calendar: cal?.calendar ?? ALWAYS,
    now,
  });
  return { policy, calendarId: policy.calendarId, calendarUpdatedAt: cal?.updatedAt ?? null, clocks };
}

/** The ticket's clocks at `now` (seconds) for the read side, with when each threshold fired. */
export async function ticketSla(tx: TenantTx, ticketId: string, now: number): Promise<TicketSla> {
  const config = await loadSlaConfig(tx);
  const input = (await loadTicketInputs(tx, [ticketId], config)).get(ticketId);
  if (!input || input.deleted) throw notFound('ticket');
  const { policy, clocks } = computeTicketSla(input, config, now);
  if (!policy) return { policyId: null, metrics: [] };
  const iso = (t: number | null) => (t === null ? null : formatInstant(t));
  const { rows: fired } = await tx.query<{
    metric: string;
    cycle: number;
    percent: number;
    fired_at: string;
  }>(
    'SELECT metric, cycle, percent, fired_at FROM sla_threshold_fires WHERE tenant_id = $1 AND ticket_id = $2',
    [tx.tenantId, ticketId],
  );
  const fires = new Map(
    fired.map((f) => [`${f.metric}|${f.cycle}|${f.percent}`, formatInstant(seconds(f.fired_at))]),
  );
  return {
    policyId: policy.id,
    metrics: clocks.map((c) => ({
      metric: c.metric,
      cycle: c.cycle,
      status: c.status,
      startedAt: formatInstant(c.startedAt),
      dueAt: iso(c.dueAt),
      targetSeconds: c.targetSeconds,
      elapsedSeconds: c.elapsedSeconds,
      remainingSeconds: c.targetSeconds - c.elapsedSeconds,
      percent: Math.round((c.elapsedSeconds / c.targetSeconds) * 1000) / 10,
      breachedAt: iso(c.breachedAt),
      fulfilledAt: iso(c.fulfilledAt),
      thresholds: c.thresholds.map((th) => ({
        percent: th.percent,
        dueAt: iso(th.dueAt),
        firedAt: fires.get(`${c.metric}|${c.cycle}|${th.percent}`) ?? null,
      })),
    })),
  };
}
