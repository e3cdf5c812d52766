// A ticket's history as the console shows it: its status changes, assignments, SLA events and audit
// events, oldest first. Each part is read through the operation of the module that owns it (this
// module owns nothing and sits above them all, so none of them depends on another for it).
import type { TenantTx } from '../../platform/db/tx.ts';
import { auditEventsOfTarget } from '../audit/audit.ts';
import { ticketEvents } from '../events/events.ts';
import { displayNames } from '../people/service.ts';
import { ticketSlaEvents } from '../sla/ticket-events.ts';
import { getTicket, statusHistory } from '../tickets/queries.ts';

/** Most entries of each kind: the newest ones (a ticket with more is rare; `truncated` says so). */
export const HISTORY_LIMIT = 500;

interface Common {
  at: string;
  /** Who did it; null for the system (the SLA engine, inbound mail without a person). */
  actor: { id: string; displayName: string } | null;
}

export type HistoryEntry = Common &
  (
    | { kind: 'status'; from: string | null; to: string }
    | { kind: 'assignment'; from: string | null; to: string | null }
    | { kind: 'sla'; metric: string; cycle: number; type: string; data: Record<string, unknown> }
    | { kind: 'audit'; action: string; outcome: string; errorCode: string | null; via: string }
  );

export async function ticketHistory(
  tx: TenantTx,
  ticketId: string,
): Promise<{ items: HistoryEntry[]; truncated: boolean }> {
  await getTicket(tx, ticketId);
  const limit = HISTORY_LIMIT;
  const [statuses, assignments, sla, audit] = await Promise.all([
    statusHistory(tx, ticketId),
    ticketEvents(tx, { ticketId, types: ['ticket.assigned'], limit }),
    ticketSlaEvents(tx, { ticketId, limit }),
    auditEventsOfTarget(tx, { targetId: ticketId, limit }),
  ]);
  const recent = statuses.slice(-limit);
  const names = await displayNames(tx, [
    ...recent.flatMap((s) => (s.changedBy ? [s.changedBy] : [])),
    ...assignments.flatMap((e) => (e.actorId ? [e.actorId] : [])),
    ...audit.flatMap((e) => (e.actorId ? [e.actorId] : [])),
  ]);
  const actor = (id: string | null) => (id === null ? null : { id, displayName: names.get(id) ?? '' });
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  const items: HistoryEntry[] = [
    ...recent.map((s): HistoryEntry => ({
      kind: 'status',
      at: s.changedAt,
      actor: actor(s.changedBy),
      from: s.fromStatus,
      to: s.toStatus,
    })),
    ...assignments.map((e): HistoryEntry => ({
      kind: 'assignment',
      at: e.occurredAt.toISOString(),
      actor: actor(e.actorId),
      from: str(e.data['from']),
      to: str(e.data['to']),
    })),
    ...sla.map((e): HistoryEntry => ({
      kind: 'sla',
      at: e.at,
      actor: null,
      metric: e.metric,
      cycle: e.cycle,
      type: e.type,
      data: e.data,
    })),
    ...audit.map((e): HistoryEntry => ({
      kind: 'audit',
      at: e.at,
      actor: actor(e.actorId),
      action: e.action,
      outcome: e.outcome,
      errorCode: e.errorCode,
      via: e.actorVia,
    })),
  ];
  // Stable: entries at the same instant keep the order of their kinds above.
  items.sort((x, y) => Date.parse(x.at) - Date.parse(y.at));
  const truncated =
    statuses.length > limit || [assignments, sla, audit].some((part) => part.length === limit);
  return { items, truncated };
}
