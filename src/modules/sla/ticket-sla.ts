// A ticket's SLA, computed from its timeline: the policy that matches it, the calendar, the status
// history and the public messages (agent replies and requester messages).
import type { TenantTx } from '../../platform/db/tx.ts';
import { notFound } from '../../platform/errors.ts';
import type { TicketPriority } from '../tickets/service.ts';
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

/** The ticket's clocks at `now` (seconds), or no metrics when no policy matches. */
export async function ticketSla(tx: TenantTx, ticketId: string, now: number): Promise<TicketSla> {
  const { rows } = await tx.query<{
    priority: TicketPriority;
    created_at: string;
    requester_id: string;
    email: string | null;
    mailbox_id: string | null;
  }>(
    `SELECT t.priority, t.created_at, t.requester_id,
            (SELECT address FROM person_emails e WHERE e.tenant_id = t.tenant_id AND e.person_id = t.requester_id AND e.is_primary) AS email,
            (SELECT i.mailbox_id FROM ticket_messages m JOIN inbound_messages i ON i.tenant_id = m.tenant_id AND i.id = m.inbound_id
              WHERE m.tenant_id = t.tenant_id AND m.ticket_id = t.id ORDER BY m.created_at LIMIT 1) AS mailbox_id
       FROM tickets t WHERE t.tenant_id = $1 AND t.id = $2`,
    [tx.tenantId, ticketId],
  );
  const ticket = rows[0];
  if (!ticket) throw notFound('ticket');
  const policy = matchPolicy(await listPolicies(tx), {
    priority: ticket.priority,
    requesterEmail: ticket.email,
    mailboxId: ticket.mailbox_id,
  });
  if (!policy) return { policyId: null, metrics: [] };
  let calendar = ALWAYS;
  if (policy.calendarId) {
    const { rows: cal } = await tx.query<{ spec: unknown }>(
      'SELECT spec FROM calendars WHERE tenant_id = $1 AND id = $2',
      [tx.tenantId, policy.calendarId],
    );
    calendar = Calendar.load(cal[0]!.spec);
  }
  const { rows: events } = await tx.query<{
    at: string;
    kind: 'status' | 'agent_public' | 'requester_public' | 'other';
    status: string | null;
  }>(
    `SELECT changed_at AS at, 'status' AS kind, to_status AS status FROM ticket_status_history
      WHERE tenant_id = $1 AND ticket_id = $2 AND from_status IS NOT NULL
     UNION ALL
     SELECT m.created_at, CASE
              WHEN m.visibility <> 'public' THEN 'other'
              WHEN coalesce((m.classification->>'automatic')::boolean, false) THEN 'other'
              WHEN p.kind = 'agent' THEN 'agent_public'
              WHEN m.author_id = t.requester_id THEN 'requester_public'
              ELSE 'other' END, NULL
       FROM ticket_messages m
       JOIN tickets t ON t.tenant_id = m.tenant_id AND t.id = m.ticket_id
       JOIN people p ON p.tenant_id = m.tenant_id AND p.id = m.author_id
      WHERE m.tenant_id = $1 AND m.ticket_id = $2`,
    [tx.tenantId, ticketId],
  );
  const timeline: TimelineEntry[] = events
    .filter((e) => e.kind !== 'other')
    .map((e) => ({
      at: seconds(e.at),
      kind: e.kind as TimelineEntry['kind'],
      ...(e.status ? { status: e.status } : {}),
    }));
  const clocks = computeClocks({
    createdAt: seconds(ticket.created_at),
    timeline,
    policy: clockPolicyOf(policy, ticket.priority),
    calendar,
    now,
  });
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
    fired.map((f) => [
      `${f.metric}|${f.cycle}|${f.percent}`,
      formatInstant(Math.floor(Date.parse(f.fired_at) / 1000)),
    ]),
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
