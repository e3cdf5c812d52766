// Tickets, their messages and their status history.
import sanitizeHtml from 'sanitize-html';
import { nextTicketNumber, type TenantTx } from '../../platform/db/tx.ts';
import { scheduleSlaWake } from '../sla/scheduler.ts';
import { notFound, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import {
  assertEmail,
  assertPersonExists,
  escapeLike,
  findOrCreateContact,
  normalizeEmail,
} from '../people/service.ts';

export const TICKET_STATUSES = ['new', 'open', 'pending', 'on_hold', 'solved', 'closed'] as const;
export type TicketStatus = (typeof TICKET_STATUSES)[number];
export const TICKET_PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;
export type TicketPriority = (typeof TICKET_PRIORITIES)[number];
export type Visibility = 'public' | 'internal';

export interface Ticket {
  id: string;
  /** Shown to people as T-<n>; unique and increasing per tenant (a failed creation leaves a gap). */
  number: string;
  subject: string;
  status: TicketStatus;
  priority: TicketPriority;
  requesterId: string;
  assigneeId: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface TicketMessage {
  id: string;
  ticketId: string;
  authorId: string;
  visibility: Visibility;
  direction: 'inbound' | 'outbound';
  text: string;
  html: string | null;
  messageId: string | null;
  /** For messages that came by mail: its envelope, the new part of a reply, attachments, classification. */
  mail: MailDetails | null;
  createdAt: string;
}

export interface MailDetails {
  from: string | null;
  to: { address: string; name: string }[];
  cc: { address: string; name: string }[];
  subject: string | null;
  replyText: string | null;
  classification: Record<string, unknown> | null;
  attachments: {
    id: string;
    filename: string;
    contentType: string;
    size: number;
    inline: boolean;
    contentId: string | null;
  }[];
}

interface TicketRow {
  id: string;
  number: number;
  subject: string;
  status: TicketStatus;
  priority: TicketPriority;
  requester_id: string;
  assignee_id: string | null;
  created_at: string;
  updated_at: string;
}

interface MessageRow {
  id: string;
  ticket_id: string;
  author_id: string;
  visibility: Visibility;
  direction: 'inbound' | 'outbound';
  body_text: string;
  body_html: string | null;
  rfc_message_id: string | null;
  created_at: string;
  inbound_id?: string | null;
  mail_from?: string | null;
  mail_to?: { address: string; name: string }[] | null;
  mail_cc?: { address: string; name: string }[] | null;
  mail_subject?: string | null;
  reply_text?: string | null;
  classification?: Record<string, unknown> | null;
  attachments?: MailDetails['attachments'] | null;
}

const TICKET_COLUMNS =
  'id, number, subject, status, priority, requester_id, assignee_id, created_at, updated_at';
const MESSAGE_COLUMNS =
  'id, ticket_id, author_id, visibility, direction, body_text, body_html, rfc_message_id, created_at';
const MESSAGE_READ_COLUMNS = `m.id, m.ticket_id, m.author_id, m.visibility, m.direction, m.body_text, m.body_html,
  m.rfc_message_id, m.created_at, m.inbound_id, m.mail_from, m.mail_to, m.mail_cc, m.mail_subject, m.reply_text,
  m.classification,
  (SELECT json_agg(json_build_object('id', a.id, 'filename', a.filename, 'contentType', a.content_type,
                   'size', a.size, 'inline', a.inline, 'contentId', a.content_id) ORDER BY a.created_at, a.id)
     FROM attachments a WHERE a.tenant_id = m.tenant_id AND a.message_id = m.id) AS attachments`;

const toTicket = (r: TicketRow): Ticket => ({
  id: r.id,
  number: `T-${r.number}`,
  subject: r.subject,
  status: r.status,
  priority: r.priority,
  requesterId: r.requester_id,
  assigneeId: r.assignee_id,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toMessage = (r: MessageRow): TicketMessage => ({
  id: r.id,
  ticketId: r.ticket_id,
  authorId: r.author_id,
  visibility: r.visibility,
  direction: r.direction,
  text: r.body_text,
  html: r.body_html,
  messageId: r.rfc_message_id,
  mail:
    r.mail_from || r.inbound_id
      ? {
          from: r.mail_from ?? null,
          to: r.mail_to ?? [],
          cc: r.mail_cc ?? [],
          subject: r.mail_subject ?? null,
          replyText: r.reply_text ?? null,
          classification: r.classification ?? null,
          attachments: r.attachments ?? [],
        }
      : null,
  createdAt: r.created_at,
});

/** HTML bodies are stored sanitised: no scripts, no event handlers, no remote loads. */
export function sanitizeBodyHtml(html: string): string {
  return sanitizeHtml(html, {
    allowedTags: sanitizeHtml.defaults.allowedTags.concat(['img']),
    allowedAttributes: { ...sanitizeHtml.defaults.allowedAttributes, img: ['src', 'alt', 'width', 'height'] },
    allowedSchemes: ['http', 'https', 'mailto', 'cid'],
    allowedSchemesByTag: { img: ['cid', 'data'] },
  });
}

function checkSubject(subject: string): string {
  const trimmed = subject.trim();
  if (trimmed === '')
    throw validation('subject must not be empty', [{ path: '/subject', message: 'must not be empty' }]);
  return trimmed;
}

function checkText(text: string, path: string): string {
  if (text.trim() === '')
    throw validation('message text must not be empty', [{ path, message: 'must not be empty' }]);
  return text;
}

export interface CreateTicketInput {
  subject: string;
  /** An existing person, or an address (a contact is created for an unknown one). */
  requester: { personId: string } | { email: string; name?: string };
  priority?: TicketPriority;
  assigneeId?: string | null;
  /** The requester's first message. */
  message?: { text: string; html?: string };
  /** The person acting (the token's person); recorded in the status history. */
  actorId: string;
}

/**
 * Creates a ticket in the caller's transaction; a contact is created for an unknown requester
 * address. `number` reuses a number already taken for this ticket (by tryCreateTicket).
 */
export async function createTicket(
  tx: TenantTx,
  input: CreateTicketInput,
  options: { number?: number } = {},
): Promise<Ticket> {
  const attempt = await tryCreateTicket(tx, input, options);
  if (attempt.ticket) return attempt.ticket;
  // An unknown requester address: create the contact, then the ticket with the same number.
  const requester = input.requester as { email: string; name?: string };
  const personId = await findOrCreateContact(tx, requester.email, {
    name: requester.name,
    actor: `person:${input.actorId}`,
  });
  const { rows } = await insertTicket(tx, input, { personId }, attempt.number);
  if (!rows[0]) throw new Error('the requester just created is missing');
  return toTicket(rows[0]);
}

/**
 * Creates the ticket with one statement when its requester exists; with an unknown requester
 * address it writes nothing and answers `{number}` for createTicket to finish in a transaction.
 * One statement is atomic on its own, so this also runs outside a transaction block
 * (withTenantAutocommit): the API's common case then costs one round trip besides the number.
 */
export async function tryCreateTicket(
  tx: TenantTx,
  input: CreateTicketInput,
  options: { number?: number } = {},
): Promise<{ ticket?: Ticket; number: number }> {
  checkSubject(input.subject);
  if (input.message) checkText(input.message.text, '/message/text');
  if ('email' in input.requester) assertEmail(input.requester.email, '/requester/email');
  if (input.assigneeId) await assertPersonExists(tx, input.assigneeId, '/assigneeId', 'agent');
  // The number comes from its own short transaction (nextTicketNumber: no lock held across this one).
  const number =
    options.number ??
    (tx.pool
      ? await nextTicketNumber(tx.pool, tx.tenantId)
      : (
          await tx.query<{ last_number: number }>(
            'UPDATE ticket_counters SET last_number = last_number + 1 WHERE tenant_id = $1 RETURNING last_number',
            [tx.tenantId],
          )
        ).rows[0]?.last_number);
  if (number === undefined) throw new Error(`tenant ${tx.tenantId} has no ticket counter`);
  const { rows } = await insertTicket(
    tx,
    input,
    'personId' in input.requester
      ? { personId: input.requester.personId }
      : { address: input.requester.email },
    number,
  );
  if (rows[0]) return { ticket: toTicket(rows[0]), number };
  if ('personId' in input.requester) {
    throw validation('requester/personId: no such person', [
      { path: '/requester/personId', message: 'no such person' },
    ]);
  }
  return { number };
}

/**
 * One statement: finds the requester (by id, or by address) and writes the ticket, its first
 * status, its first message and its SLA wake-up (as scheduleSlaWake does; a new ticket has none
 * yet). It writes nothing when the requester is unknown.
 */
function insertTicket(
  tx: TenantTx,
  input: CreateTicketInput,
  requester: { personId: string } | { address: string },
  number: number,
) {
  const html = input.message?.html === undefined ? null : sanitizeBodyHtml(input.message.html);
  return tx.query<TicketRow>(
    `WITH r AS (
       ${
         'personId' in requester
           ? 'SELECT id FROM people WHERE tenant_id = $1 AND id = $5::uuid'
           : 'SELECT person_id AS id FROM person_emails WHERE tenant_id = $1 AND address_normalized = $5'
       }
     ), t AS (
       INSERT INTO tickets (tenant_id, id, number, subject, priority, requester_id, assignee_id)
       SELECT $1, $2, $11, $3, $4, r.id, $6 FROM r
       RETURNING ${TICKET_COLUMNS}, tenant_id
     ), h AS (
       INSERT INTO ticket_status_history (tenant_id, ticket_id, from_status, to_status, changed_at, changed_by)
       SELECT tenant_id, id, NULL, status, created_at, $7 FROM t
     ), m AS (
       INSERT INTO ticket_messages (tenant_id, id, ticket_id, author_id, visibility, direction, body_text, body_html)
       SELECT tenant_id, $8, id, requester_id, 'public', 'inbound', $9, $10 FROM t WHERE $9::text IS NOT NULL
     ), w AS (
       INSERT INTO sla_wakeups (tenant_id, ticket_id, next_wake_at) SELECT tenant_id, id, now() FROM t
     )
     SELECT ${TICKET_COLUMNS} FROM t`,
    [
      tx.tenantId,
      uuidv7(),
      checkSubject(input.subject),
      input.priority ?? 'normal',
      'personId' in requester ? requester.personId : normalizeEmail(requester.address),
      input.assigneeId ?? null,
      input.actorId,
      uuidv7(),
      input.message ? checkText(input.message.text, '/message/text') : null,
      html,
      number,
    ],
  );
}

export async function getTicket(tx: TenantTx, id: string): Promise<Ticket> {
  const { rows } = await tx.query<TicketRow>(
    `SELECT ${TICKET_COLUMNS} FROM tickets WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('ticket');
  return toTicket(rows[0]);
}

/**
 * Deletes a ticket: it is marked, not removed. From then on the API answers 404 for it and leaves it
 * out of lists; the SLA scheduler, woken in this transaction, cancels its clocks (`cancelled`
 * events, which stay); mail that replies to it opens a new ticket. Deleting it again is a 404.
 */
export async function deleteTicket(tx: TenantTx, id: string, actorId: string): Promise<void> {
  const { rowCount } = await tx.query(
    `UPDATE tickets SET deleted_at = now(), deleted_by = $3, updated_at = now()
      WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`,
    [tx.tenantId, id, actorId],
  );
  if (rowCount === 0) throw notFound('ticket');
  await scheduleSlaWake(tx, id);
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

export interface UpdateTicketInput {
  status?: TicketStatus;
  priority?: TicketPriority;
  /** null unassigns. */
  assigneeId?: string | null;
  subject?: string;
  actorId: string;
}

export async function updateTicket(tx: TenantTx, id: string, input: UpdateTicketInput): Promise<Ticket> {
  const { rows: current } = await tx.query<TicketRow>(
    `SELECT ${TICKET_COLUMNS} FROM tickets WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE`,
    [tx.tenantId, id],
  );
  const before = current[0];
  if (!before) throw notFound('ticket');
  const subject = input.subject === undefined ? undefined : checkSubject(input.subject);
  if (input.assigneeId) await assertPersonExists(tx, input.assigneeId, '/assigneeId', 'agent');
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
      id,
      input.status ?? null,
      input.priority ?? null,
      input.assigneeId !== undefined,
      input.assigneeId ?? null,
      subject ?? null,
    ],
  );
  const after = rows[0]!;
  if (after.status !== before.status)
    await recordStatusChange(tx, id, before.status, after.status, input.actorId);
  if (after.status !== before.status || after.priority !== before.priority) await scheduleSlaWake(tx, id);
  return toTicket(after);
}

export async function recordStatusChange(
  tx: TenantTx,
  ticketId: string,
  from: TicketStatus | null,
  to: TicketStatus,
  actorId: string | null,
): Promise<void> {
  await tx.query(
    `INSERT INTO ticket_status_history (tenant_id, ticket_id, from_status, to_status, changed_at, changed_by)
     VALUES ($1, $2, $3, $4, now(), $5)`,
    [tx.tenantId, ticketId, from, to, actorId],
  );
}

export interface StatusChange {
  fromStatus: TicketStatus | null;
  toStatus: TicketStatus;
  changedAt: string;
  changedBy: string | null;
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

export interface AddMessageInput {
  ticketId: string;
  authorId: string;
  text: string;
  html?: string;
  visibility: Visibility;
  /** RFC 5322 Message-ID, for mail. */
  messageId?: string;
}

/**
 * Adds a message. The direction follows the author: the requester or another contact writes
 * inbound, an agent writes outbound. An agent's first public reply opens a `new` ticket.
 */
export async function addMessage(tx: TenantTx, input: AddMessageInput): Promise<TicketMessage> {
  const text = checkText(input.text, '/text');
  const { rows: ticketRows } = await tx.query<{ status: TicketStatus; kind: string }>(
    `SELECT t.status, p.kind FROM tickets t JOIN people p ON p.tenant_id = t.tenant_id AND p.id = $3
      WHERE t.tenant_id = $1 AND t.id = $2 AND t.deleted_at IS NULL FOR UPDATE OF t`,
    [tx.tenantId, input.ticketId, input.authorId],
  );
  const ticket = ticketRows[0];
  if (!ticket) throw notFound('ticket');
  const fromAgent = ticket.kind === 'agent';
  const { rows } = await tx.query<MessageRow>(
    `INSERT INTO ticket_messages (tenant_id, id, ticket_id, author_id, visibility, direction, body_text, body_html, rfc_message_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     RETURNING ${MESSAGE_COLUMNS}`,
    [
      tx.tenantId,
      uuidv7(),
      input.ticketId,
      input.authorId,
      input.visibility,
      fromAgent ? 'outbound' : 'inbound',
      text,
      input.html === undefined ? null : sanitizeBodyHtml(input.html),
      input.messageId ?? null,
    ],
  );
  const opens = fromAgent && input.visibility === 'public' && ticket.status === 'new';
  await tx.query(
    `UPDATE tickets SET updated_at = now(), status = CASE WHEN $3 THEN 'open' ELSE status END
      WHERE tenant_id = $1 AND id = $2`,
    [tx.tenantId, input.ticketId, opens],
  );
  if (opens) await recordStatusChange(tx, input.ticketId, 'new', 'open', input.authorId);
  if (input.visibility === 'public') await scheduleSlaWake(tx, input.ticketId);
  return toMessage(rows[0]!);
}

export async function listMessages(
  tx: TenantTx,
  input: { ticketId: string; limit?: number; cursor?: string; visibility?: Visibility },
): Promise<Page<TicketMessage>> {
  await getTicket(tx, input.ticketId);
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const values: unknown[] = [tx.tenantId, input.ticketId];
  const where = ['m.tenant_id = $1', 'm.ticket_id = $2'];
  if (input.visibility) {
    values.push(input.visibility);
    where.push(`m.visibility = $${values.length}`);
  }
  if (cursor) {
    values.push(cursor.createdAt, cursor.id);
    where.push(`(m.created_at, m.id) < ($${values.length - 1}::timestamptz, $${values.length}::uuid)`);
  }
  values.push(limit + 1);
  const { rows } = await tx.query<MessageRow>(
    `SELECT ${MESSAGE_READ_COLUMNS} FROM ticket_messages m WHERE ${where.join(' AND ')}
      ORDER BY m.created_at DESC, m.id DESC LIMIT $${values.length}`,
    values,
  );
  return toPage(rows, limit, toMessage);
}
