// Reading tickets: one, a filtered page, a status history.
import { PLANNED_EACH_TIME, type TenantTx } from '../../platform/db/tx.ts';
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

/**
 * The list's orders: newest first (default), or soonest SLA due time first. `list` orders the
 * tickets themselves, `walked` the same tickets as a search's walk selects them (searchWalk).
 */
const ORDERS = {
  created: { list: 't.created_at DESC, t.id DESC', walked: 'c.created_at DESC, c.id DESC' },
  due: {
    list: 's.next_due_at ASC NULLS LAST, t.created_at, t.id',
    walked: 'c.due ASC NULLS LAST, c.created_at, c.id',
  },
} as const;
type Order = (typeof ORDERS)[keyof typeof ORDERS];

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
  /** How many tickets a search tests one by one before it asks the text indexes (SEARCH_WALK). */
  searchWalk?: number;
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
  const byDue = input.sort === 'due';
  if (cursor && !byDue)
    add('(t.created_at, t.id) < ($1::timestamptz, $2::uuid)', cursor.createdAt, cursor.id);
  const slaJoin = `${input.sla !== undefined || view === 'at_risk' || view === 'breached' ? 'JOIN' : 'LEFT JOIN'} ${SLA_JOIN}`;
  const order = ORDERS[byDue ? 'due' : 'created'];
  const search = input.search?.trim().slice(0, MAX_SEARCH_LENGTH) ?? '';
  if (search !== '') {
    const found = await searchWalk(tx, {
      search,
      where: where.join(' AND '),
      values,
      slaJoin,
      order,
      limit,
      walk: input.searchWalk ?? SEARCH_WALK,
    });
    // The walk settled the page: these are the first matches, in order. Otherwise the matching
    // tickets come from the two text indexes (ticket_search_hits in migration 0029, which says why
    // it is a function of its own), then are ordered and paged like any list. As an array of ids:
    // the tickets are then fetched by their key, whereas `IN (subquery)` lets the planner walk every
    // ticket of the tenant by date, probing the matches, when it guesses them many.
    if (found) add('t.id = ANY ($1::uuid[])', found);
    else add('t.id = ANY (ARRAY(SELECT h.ticket_id FROM ticket_search_hits($1) h))', search);
  }
  values.push(limit + 1);
  const { rows } = await tx.query<TicketViewRow>(
    `SELECT ${VIEW_COLUMNS} FROM tickets t ${VIEW_JOINS} ${slaJoin}
      WHERE ${where.join(' AND ')}
      ORDER BY ${order.list} LIMIT $${values.length}`,
    values,
  );
  const page = toPage(rows, limit, toTicketView);
  // A due-time order has no created_at cursor: it is a first page, by urgency.
  return byDue ? { items: page.items, nextCursor: null } : page;
}

/**
 * How many of the tickets a list would show first a search tests one by one, newest (or most urgent)
 * first, before it asks the text indexes instead. The indexes find a rare word at once, but a word in
 * most of the mail costs them every match: tens of thousands of messages read, for the 50 newest
 * tickets among them. Testing the list's first tickets finds such a word's page in a few dozen. The
 * worst case is a word just too rare for the walk, which pays both: the walk (about 12 µs a ticket
 * of four messages here) and the index (about 1.2 µs a matching message). 500 keeps that under
 * 20 ms on a tenant of 100,000 messages (docs/benchmarks.md).
 */
export const SEARCH_WALK = 500;

/**
 * The ids of the first `limit + 1` tickets of the list that match the search, found by testing the
 * list's first `walk` tickets in its order: their subject, then their messages' stored words (by the
 * ticket's index; migration 0032). Null when that does not settle the page: fewer matches, and the
 * list goes on beyond the walk. The test repeats the conditions of ticket_search_hits, so both ways
 * find the same tickets. Row-level security applies here as to any statement of the tenant.
 */
async function searchWalk(
  tx: TenantTx,
  input: {
    search: string;
    where: string;
    values: unknown[];
    slaJoin: string;
    order: Order;
    limit: number;
    walk: number;
  },
): Promise<string[] | null> {
  if (input.walk <= 0) return null;
  const values = [...input.values, input.walk, input.search, input.limit + 1];
  const [walk, q, wanted] = [values.length - 2, values.length - 1, values.length];
  const candidates = `SELECT t.id, t.subject, t.created_at, s.next_due_at AS due FROM tickets t ${input.slaJoin}
     WHERE ${input.where}
     ORDER BY ${input.order.list} LIMIT $${walk}`;
  // The outer order is the inner one, so the planner streams the candidates through the test and
  // stops at the page's end instead of testing them all and sorting (a window over the candidates,
  // to count them in the same statement, would cost that order). The messages are probed per ticket
  // by a scalar subquery, not EXISTS: PostgreSQL may turn an EXISTS into one hashed pass over every
  // message of the tenant matching the words, which row-level security keeps from the text index.
  // Planned with its values: the best plan depends on the tenant's size and the words (tx.ts).
  const { rows } = await tx.query<{ id: string }>(
    `${PLANNED_EACH_TIME}WITH query AS (SELECT public.ticket_search_query($${q}) AS q)
     SELECT c.id FROM (${candidates}) c, query
      WHERE to_tsvector('simple'::regconfig, c.subject) @@ query.q
         OR (SELECT true FROM ticket_messages m
              WHERE m.tenant_id = $1 AND m.ticket_id = c.id AND m.search_vector @@ query.q LIMIT 1)
      ORDER BY ${input.order.walked} LIMIT $${wanted}`,
    values,
  );
  const ids = rows.map((r) => r.id);
  if (ids.length > input.limit) return ids;
  // Fewer matches than a page: settled only when the walk saw every ticket the list has.
  const { rows: seen } = await tx.query<{ n: number }>(
    `${PLANNED_EACH_TIME}SELECT count(*)::int AS n FROM (${candidates}) c`,
    values.slice(0, walk),
  );
  return seen[0]!.n < input.walk ? ids : null;
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
