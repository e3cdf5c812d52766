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

export const SLA_SUMMARY_STATES = ['active', 'at_risk', 'breached', 'paused', 'fulfilled'] as const;
export type SlaSummaryState = (typeof SLA_SUMMARY_STATES)[number];

/** A ticket as lists and GET show it: with its requester, assignee and SLA summary. */
export interface TicketView extends Ticket {
  requester: { id: string; displayName: string; email: string | null };
  assignee: { id: string; displayName: string } | null;
  /** As the SLA scheduler last evaluated it (seconds ago at most); null without SLA clocks. */
  sla: { state: SlaSummaryState; dueAt: string | null } | null;
}

interface TicketViewRow extends TicketRow {
  requester_name: string;
  requester_email: string | null;
  assignee_name: string | null;
  sla_state: SlaSummaryState | null;
  sla_due_at: string | null;
}

// The people and the SLA summary come with the ticket in the same statement (a page is one query).
const VIEW_COLUMNS = `${TICKET_COLUMNS.split(', ')
  .map((c) => `t.${c}`)
  .join(', ')},
  r.display_name AS requester_name,
  (SELECT e.address FROM person_emails e WHERE e.tenant_id = t.tenant_id AND e.person_id = t.requester_id
    ORDER BY e.is_primary DESC, e.created_at, e.address_normalized LIMIT 1) AS requester_email,
  a.display_name AS assignee_name, s.state AS sla_state, s.next_due_at AS sla_due_at`;
const VIEW_JOINS = `JOIN people r ON r.tenant_id = t.tenant_id AND r.id = t.requester_id
  LEFT JOIN people a ON a.tenant_id = t.tenant_id AND a.id = t.assignee_id`;
const SLA_JOIN = 'sla_ticket_state s ON s.tenant_id = t.tenant_id AND s.ticket_id = t.id';

const toTicketView = (r: TicketViewRow): TicketView => ({
  ...toTicket(r),
  requester: { id: r.requester_id, displayName: r.requester_name, email: r.requester_email },
  assignee: r.assignee_id ? { id: r.assignee_id, displayName: r.assignee_name ?? '' } : null,
  sla: r.sla_state ? { state: r.sla_state, dueAt: r.sla_due_at } : null,
});

export async function getTicket(tx: TenantTx, id: string): Promise<Ticket> {
  const { rows } = await tx.query<TicketRow>(
    `SELECT ${TICKET_COLUMNS} FROM tickets WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('ticket');
  return toTicket(rows[0]);
}

/** One ticket with its requester, assignee and SLA summary (GET /tickets/:id). */
export async function getTicketView(tx: TenantTx, id: string): Promise<TicketView> {
  const { rows } = await tx.query<TicketViewRow>(
    `SELECT ${VIEW_COLUMNS} FROM tickets t ${VIEW_JOINS} LEFT JOIN ${SLA_JOIN}
      WHERE t.tenant_id = $1 AND t.id = $2 AND t.deleted_at IS NULL`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('ticket');
  return toTicketView(rows[0]);
}

export const TICKET_VIEWS = ['mine', 'unassigned', 'open', 'at_risk', 'breached'] as const;
export type TicketViewName = (typeof TICKET_VIEWS)[number];
/** Statuses that count as open (the views' "not solved or closed"). */
const OPEN_STATUSES = ['new', 'open', 'pending', 'on_hold'];

export interface ListTicketsInput {
  status?: TicketStatus;
  priority?: TicketPriority;
  assigneeId?: string;
  requesterId?: string;
  /** Case-insensitive substring of the subject. */
  q?: string;
  /** Only tickets whose SLA is in this state (as of the SLA scheduler's last look, within seconds). */
  sla?: 'breached' | 'at_risk' | 'paused';
  /**
   * A view of the inbox, open tickets only: `mine` (assigned to `personId`), `unassigned`, `open`,
   * `at_risk` and `breached` (their SLA state).
   */
  view?: TicketViewName;
  /** The person asking (what `mine` means). */
  personId?: string;
  /** Tickets with mail that came in through this mailbox. */
  mailboxId?: string;
  /** Full-text search over the subject and the text of every message (ticket_search_query in 0029). */
  search?: string;
  /** created (default: newest first, with a cursor) or due (soonest SLA due time first; first page only). */
  sort?: 'created' | 'due';
  limit?: number;
  cursor?: string;
}

/** Longest search string taken (the route says the same); words beyond it are not searched. */
export const MAX_SEARCH_LENGTH = 200;

export async function listTickets(tx: TenantTx, input: ListTicketsInput): Promise<Page<TicketView>> {
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
  const view = input.view;
  if (view) add('t.status = ANY($1::text[])', OPEN_STATUSES);
  if (view === 'mine') add('t.assignee_id = $1', input.personId ?? null);
  if (view === 'unassigned') where.push('t.assignee_id IS NULL');
  if (view === 'at_risk' || view === 'breached') add('s.state = $1', view);
  if (input.mailboxId)
    add(
      `EXISTS (SELECT 1 FROM inbound_messages i
                WHERE i.tenant_id = t.tenant_id AND i.ticket_id = t.id AND i.mailbox_id = $1)`,
      input.mailboxId,
    );
  // The matching tickets come from the two text indexes first (ticket_search_hits in migration 0029,
  // which says why it is a function of its own), then are ordered and paged like any list.
  const search = input.search?.trim().slice(0, MAX_SEARCH_LENGTH) ?? '';
  // As an array of ids: the tickets are then fetched by their key, whereas `IN (subquery)` lets the
  // planner walk every ticket of the tenant by date, probing the matches, when it guesses them many.
  if (search !== '') add('t.id = ANY (ARRAY(SELECT h.ticket_id FROM ticket_search_hits($1) h))', search);
  const byDue = input.sort === 'due';
  if (cursor && !byDue)
    add('(t.created_at, t.id) < ($1::timestamptz, $2::uuid)', cursor.createdAt, cursor.id);
  values.push(limit + 1);
  const slaFiltered = input.sla !== undefined || view === 'at_risk' || view === 'breached';
  const order = byDue ? 's.next_due_at ASC NULLS LAST, t.created_at, t.id' : 't.created_at DESC, t.id DESC';
  const { rows } = await tx.query<TicketViewRow>(
    `SELECT ${VIEW_COLUMNS} FROM tickets t ${VIEW_JOINS} ${slaFiltered ? 'JOIN' : 'LEFT JOIN'} ${SLA_JOIN}
      WHERE ${where.join(' AND ')}
      ORDER BY ${order} LIMIT $${values.length}`,
    values,
  );
  const page = toPage(rows, limit, toTicketView);
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
