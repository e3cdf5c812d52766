// Changing a ticket: status, assignee, priority, subject, deletion. Each operation locks the ticket,
// writes the change, its status history and its wake-up in the caller's transaction.
import type { TenantTx } from '../../platform/db/tx.ts';
import { notFound, validation } from '../../platform/errors.ts';
import { type NewEvent, recordEvents } from '../events/events.ts';
import {
  checkSubject,
  type Ticket,
  TICKET_COLUMNS,
  type TicketPriority,
  type TicketRow,
  type TicketStatus,
  toTicket,
} from './model.ts';
import { wakeTickets } from './wakeups.ts';

export interface TicketChange {
  ticketId: string;
  status?: TicketStatus | undefined;
  priority?: TicketPriority | undefined;
  /** null unassigns. */
  assigneeId?: string | null | undefined;
  subject?: string | undefined;
  /** The person acting, recorded in the status history; null for the system (SLA escalations). */
  actorId: string | null;
}

/** Changes any of status, priority, assignee and subject at once (PATCH /tickets/:id). */
export async function updateTicket(tx: TenantTx, change: TicketChange): Promise<Ticket> {
  const subject = change.subject === undefined ? undefined : checkSubject(change.subject);
  const { rows: current } = await tx.query<TicketRow & { assignee_kind: string | null }>(
    `SELECT ${TICKET_COLUMNS}, (SELECT kind FROM people p WHERE p.tenant_id = t.tenant_id AND p.id = $3::uuid) AS assignee_kind
       FROM tickets t WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE`,
    [tx.tenantId, change.ticketId, change.assigneeId ?? null],
  );
  const before = current[0];
  if (!before) throw notFound('ticket');
  if (change.assigneeId && before.assignee_kind !== 'agent') {
    const message = before.assignee_kind === null ? 'no such person' : 'must be an agent';
    throw validation(`assigneeId: ${message}`, [{ path: '/assigneeId', message }]);
  }
  const { rows } = await tx.query<TicketRow>(
    `UPDATE tickets SET
        status = coalesce($3, status),
        priority = coalesce($4, priority),
        assignee_id = CASE WHEN $5 THEN $6::uuid ELSE assignee_id END,
        subject = coalesce($7, subject),
        updated_at = now()
      WHERE tenant_id = $1 AND id = $2
      RETURNING ${TICKET_COLUMNS}`,
    [
      tx.tenantId,
      change.ticketId,
      change.status ?? null,
      change.priority ?? null,
      change.assigneeId !== undefined,
      change.assigneeId ?? null,
      subject ?? null,
    ],
  );
  const after = rows[0]!;
  if (after.status !== before.status)
    await recordStatusChanges(tx, [
      { ticketId: change.ticketId, from: before.status, to: after.status, by: change.actorId },
    ]);
  const events: NewEvent[] = [];
  if (after.assignee_id !== before.assignee_id && after.assignee_id !== null)
    events.push({
      type: 'ticket.assigned',
      ticketId: change.ticketId,
      actorId: change.actorId,
      data: { from: before.assignee_id, to: after.assignee_id },
    });
  if (after.status !== before.status)
    events.push({
      type: 'ticket.status_changed',
      ticketId: change.ticketId,
      actorId: change.actorId,
      data: { from: before.status, to: after.status },
    });
  await recordEvents(tx, events);
  if (after.status !== before.status || after.priority !== before.priority)
    await wakeTickets(tx, [change.ticketId]);
  return toTicket(after);
}

/** Moves the ticket to `status` (history and wake-up written with it). */
export const changeStatus = (
  tx: TenantTx,
  input: { ticketId: string; status: TicketStatus; actorId: string | null },
): Promise<Ticket> => updateTicket(tx, input);

/** Assigns the ticket to an agent, or unassigns it with null. */
export const assignTicket = (
  tx: TenantTx,
  input: { ticketId: string; assigneeId: string | null; actorId: string | null },
): Promise<Ticket> => updateTicket(tx, input);

/** Sets the ticket's priority (its SLA clocks are recomputed). */
export const setPriority = (
  tx: TenantTx,
  input: { ticketId: string; priority: TicketPriority; actorId: string | null },
): Promise<Ticket> => updateTicket(tx, input);

export interface StatusTransition {
  ticketId: string;
  from: TicketStatus | null;
  to: TicketStatus;
  by: string | null;
}

/** Appends status transitions, in the given order (they are the SLA clocks' timeline). */
export async function recordStatusChanges(tx: TenantTx, transitions: StatusTransition[]): Promise<void> {
  if (transitions.length === 0) return;
  await tx.query(
    `INSERT INTO ticket_status_history (tenant_id, ticket_id, from_status, to_status, changed_at, changed_by)
     SELECT $1, x.ticket_id, x.from_status, x.to_status, clock_timestamp(), x.changed_by
       FROM unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[]) WITH ORDINALITY AS x(ticket_id, from_status, to_status, changed_by, ord)
      ORDER BY x.ord`,
    [
      tx.tenantId,
      transitions.map((h) => h.ticketId),
      transitions.map((h) => h.from),
      transitions.map((h) => h.to),
      transitions.map((h) => h.by),
    ],
  );
}

/**
 * Deletes a ticket: it is marked, not removed. From then on the API answers 404 for it and leaves it
 * out of lists; the SLA scheduler, woken in this transaction, cancels its clocks (`cancelled`
 * events, which stay); mail that replies to it opens a new ticket. Deleting it again is a 404.
 */
export async function deleteTicket(
  tx: TenantTx,
  input: { ticketId: string; actorId: string },
): Promise<void> {
  const { rowCount } = await tx.query(
    `UPDATE tickets SET deleted_at = now(), deleted_by = $3, updated_at = now()
      WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`,
    [tx.tenantId, input.ticketId, input.actorId],
  );
  if (rowCount === 0) throw notFound('ticket');
  await wakeTickets(tx, [input.ticketId]);
}
