// Reading tickets: one, a filtered page, a status history.
import type { TenantTx } from '../../platform/db/tx.ts';
import { notFound } from '../../platform/errors.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import { escapeLike } from '../people/service.ts';
import {
  type StatusChange,
  type Ticket,
  TICKET_COLUMNS,
  type TicketPriority,
  type TicketRow,
  type TicketStatus,
  toTicket,
} from './model.ts';

export async function getTicket(tx: TenantTx, id: string): Promise<Ticket> {
  const { rows } = await tx.query<TicketRow>(
    `SELECT ${TICKET_COLUMNS} FROM tickets WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('ticket');
  return toTicket(rows[0]);
}

export interface ListTicketsInput {
  status?: TicketStatus;
  priority?: TicketPriority;
  assigneeId?: string;
  requesterId?: string;
  /** Case-insensitive substring of the subject. */
  q?: string;
  /** Only tickets whose SLA is in this state (as of the SLA scheduler's last look, within seconds). */
  sla?: 'breached' | 'at_risk' | 'paused';
  /** created (default: newest first, with a cursor) or due (soonest SLA due time first; first page only). */
  sort?: 'created' | 'due';
  limit?: number;
  cursor?: string;
}

export async function listTickets(tx: TenantTx, input: ListTicketsInput): Promise<Page<Ticket>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const values: unknown[] = [tx.tenantId];
  const where = ['t.tenant_id = $1', 't.deleted_at IS NULL'];
  const add = (sql: string, ...v: unknown[]) => {
    values.push(...v);
    where.push(sql.replace(/\$(\d)/g, (_, i) => `$${values.length - v.length + Number(i)}`));
  };
  if (input.status) add('t.status = $1', input.status);
  if (input.priority) add('t.priority = $1', input.priority);
  if (input.assigneeId) add('t.assignee_id = $1', input.assigneeId);
  if (input.requesterId) add('t.requester_id = $1', input.requesterId);
  if (input.q) add('t.subject ILIKE $1', `%${escapeLike(input.q)}%`);
  if (input.sla) add('s.state = $1', input.sla);
  const byDue = input.sort === 'due';
  if (cursor && !byDue)
    add('(t.created_at, t.id) < ($1::timestamptz, $2::uuid)', cursor.createdAt, cursor.id);
  values.push(limit + 1);
  const join =
    input.sla || byDue
      ? `${input.sla ? 'JOIN' : 'LEFT JOIN'} sla_ticket_state s ON s.tenant_id = t.tenant_id AND s.ticket_id = t.id`
      : '';
  const order = byDue ? 's.next_due_at ASC NULLS LAST, t.created_at, t.id' : 't.created_at DESC, t.id DESC';
  const { rows } = await tx.query<TicketRow>(
    `SELECT ${TICKET_COLUMNS.split(', ')
      .map((c) => `t.${c}`)
      .join(', ')} FROM tickets t ${join}
      WHERE ${where.join(' AND ')}
      ORDER BY ${order} LIMIT $${values.length}`,
    values,
  );
  const page = toPage(rows, limit, toTicket);
  // A due-time order has no created_at cursor: it is a first page, by urgency.
  return byDue ? { items: page.items, nextCursor: null } : page;
}

export async function statusHistory(tx: TenantTx, ticketId: string): Promise<StatusChange[]> {
  const { rows } = await tx.query<{
    from_status: TicketStatus | null;
    to_status: TicketStatus;
    changed_at: string;
    changed_by: string | null;
  }>(
    `SELECT from_status, to_status, changed_at, changed_by FROM ticket_status_history
      WHERE tenant_id = $1 AND ticket_id = $2 ORDER BY seq`,
    [tx.tenantId, ticketId],
  );
  return rows.map((r) => ({
    fromStatus: r.from_status,
    toStatus: r.to_status,
    changedAt: r.changed_at,
    changedBy: r.changed_by,
  }));
}
