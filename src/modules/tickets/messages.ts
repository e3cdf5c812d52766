// Messages of a ticket: adding one (with what it changes on the ticket) and reading them.
import type { SystemTx, TenantTx } from '../../platform/db/tx.ts';
import { AppError, notFound, validation } from '../../platform/errors.ts';
import { type NewEvent, recordEvents } from '../events/events.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import { readBlobs, storeBlobs } from '../blobs/service.ts';
import { recordStatusChanges } from './changes.ts';
import {
  type Address,
  checkText,
  MESSAGE_READ_COLUMNS,
  type MessageRow,
  type SafeHtml,
  type TicketMessage,
  type TicketStatus,
  toMessage,
  type Visibility,
} from './model.ts';
import { type AuthorKind, directionOf, statusAfterMessage } from './rules.ts';
import { wakeTickets } from './wakeups.ts';

/** Mail details of a message that came by mail. */
export interface MailFields {
  /** The inbound record it came from; absent on mail we send. */
  inboundId?: string | null | undefined;
  from: string;
  to: Address[];
  cc: Address[];
  subject: string;
  /** The new part of a reply, without quotes and signature. */
  replyText: string | null;
  classification: Record<string, unknown>;
}

export interface NewAttachment {
  id: string;
  filename: string;
  contentType: string;
  content: Buffer;
  /** SHA-256 of the content, when the caller has it already. */
  sha256?: Buffer | undefined;
  contentId: string | null;
  inline: boolean;
}

/** A message to add to a ticket, as both the single operation and inbound's batch form take it. */
export interface NewMessage {
  /** Generated when absent. */
  id?: string | undefined;
  authorId: string;
  visibility: Visibility;
  text: string;
  html?: SafeHtml | null | undefined;
  /** RFC 5322 Message-ID, for mail. */
  rfcMessageId?: string | null | undefined;
  /** Automatic mail (auto-replies, bounces): never changes the ticket's status. */
  automatic?: boolean | undefined;
  mail?: MailFields | null | undefined;
  attachments?: NewAttachment[] | undefined;
  /** Normalised addresses to add to the ticket's participants (who may use its subject tag). */
  participants?: string[] | undefined;
}

export interface AppendMessageInput extends NewMessage {
  ticketId: string;
  /**
   * The newest message the author had seen (collision detection): when someone else added a message
   * since, nothing is written and the answer is ticket_changed.
   */
  seenMessageId?: string | undefined;
}

/**
 * Adds a message to a ticket in the caller's transaction. The direction follows the author (an
 * agent writes outbound, anyone else inbound); the status follows rules.ts (a customer's reply opens
 * a pending, solved or closed ticket; an agent's first public reply opens a new one); a public
 * message wakes the SLA clocks.
 */
export async function appendMessage(tx: TenantTx, input: AppendMessageInput): Promise<TicketMessage> {
  const text = checkText(input.text, '/text');
  const { rows } = await tx.query<{ status: TicketStatus; kind: AuthorKind }>(
    `SELECT t.status, p.kind FROM tickets t JOIN people p ON p.tenant_id = t.tenant_id AND p.id = $3
      WHERE t.tenant_id = $1 AND t.id = $2 AND t.deleted_at IS NULL FOR UPDATE OF t`,
    [tx.tenantId, input.ticketId, input.authorId],
  );
  const ticket = rows[0];
  if (!ticket) throw notFound('ticket');
  // Checked under the ticket's lock: two agents answering at once cannot both pass it.
  if (input.seenMessageId) await assertNothingNewer(tx, input.ticketId, input.seenMessageId, input.authorId);
  const next = statusAfterMessage(ticket.status, {
    authorKind: ticket.kind,
    visibility: input.visibility,
    automatic: input.automatic ?? false,
  });
  const row = {
    ...input,
    id: input.id ?? uuidv7(),
    text,
    direction: directionOf(ticket.kind),
  };
  await insertMessages(tx, [row]);
  await tx.query(
    `UPDATE tickets SET updated_at = clock_timestamp(), status = coalesce($3, status)
      WHERE tenant_id = $1 AND id = $2`,
    [tx.tenantId, input.ticketId, next ?? null],
  );
  if (next)
    await recordStatusChanges(tx, [
      { ticketId: input.ticketId, from: ticket.status, to: next, by: input.authorId },
    ]);
  if (input.visibility === 'public') await wakeTickets(tx, [input.ticketId]);
  const events: NewEvent[] = [];
  if (isCustomerReply(ticket.kind, input))
    events.push({
      type: 'ticket.customer_replied',
      ticketId: input.ticketId,
      actorId: input.authorId,
      data: { messageId: row.id },
    });
  if (next)
    events.push({
      type: 'ticket.status_changed',
      ticketId: input.ticketId,
      actorId: input.authorId,
      data: { from: ticket.status, to: next, messageId: row.id },
    });
  await recordEvents(tx, events);
  return getMessage(tx, row.id);
}

/**
 * Refuses (ticket_changed) when the ticket has a message by someone other than `authorId` that is
 * newer than `seenMessageId`; the author's own messages (another tab) are no surprise. A
 * `seenMessageId` that is not a message of the ticket is a validation error.
 */
async function assertNothingNewer(
  tx: TenantTx,
  ticketId: string,
  seenMessageId: string,
  authorId: string,
): Promise<void> {
  const { rows } = await tx.query<{ seen: boolean; newer: number; latest: string | null }>(
    `SELECT s.id IS NOT NULL AS seen,
            (SELECT count(*) FROM ticket_messages m
              WHERE m.tenant_id = $1 AND m.ticket_id = $2 AND m.author_id <> $4
                AND (m.created_at, m.id) > (s.created_at, s.id))::int AS newer,
            (SELECT m.id FROM ticket_messages m WHERE m.tenant_id = $1 AND m.ticket_id = $2
              ORDER BY m.created_at DESC, m.id DESC LIMIT 1) AS latest
       FROM (SELECT 1) one
       LEFT JOIN ticket_messages s ON s.tenant_id = $1 AND s.ticket_id = $2 AND s.id = $3`,
    [tx.tenantId, ticketId, seenMessageId, authorId],
  );
  const r = rows[0]!;
  if (!r.seen)
    throw validation('seenMessageId is not a message of this ticket', [
      { path: '/seenMessageId', message: 'not a message of this ticket' },
    ]);
  if (r.newer > 0)
    throw new AppError(
      'ticket_changed',
      `${r.newer} new message${r.newer === 1 ? '' : 's'} on the ticket since the one you saw; read them, then send again`,
      { details: { newMessages: r.newer, latestMessageId: r.latest } },
    );
}

/** What notifications call a customer's reply: a public message by a non-agent, not automatic mail. */
export const isCustomerReply = (
  authorKind: AuthorKind,
  m: { visibility: string; automatic?: boolean | undefined },
): boolean => authorKind !== 'agent' && m.visibility === 'public' && !(m.automatic ?? false);

export interface MessageToInsert extends NewMessage {
  id: string;
  ticketId: string;
  direction: 'inbound' | 'outbound';
}

/**
 * Writes messages with their attachments (contents as blobs) and participants, in the given order
 * (their created_at follows it). Shared by appendMessage and the batch form; ticket rows are the
 * caller's.
 */
export function insertMessages(tx: TenantTx, messages: MessageToInsert[]): Promise<void> {
  if (messages.length === 0) return Promise.resolve();
  // The statements go out one behind the other without waiting for each answer (pipelining): the
  // blobs before the attachments that reference them, the messages before their attachments.
  const sent: Promise<unknown>[] = [];
  const attachments = messages.flatMap((m) => (m.attachments ?? []).map((a) => ({ message: m, a })));
  const blobs = storeBlobs(
    tx,
    attachments.map((x) => ({ content: x.a.content, hash: x.a.sha256 })),
  );
  sent.push(blobs.stored);
  const hashes = blobs.hashes;
  const htmlOf = (m: MessageToInsert) => {
    if (!m.html) return null;
    let html: string = m.html;
    // Inline images point at their attachment instead of a cid: reference.
    const byContentId = new Map(
      (m.attachments ?? []).filter((a) => a.contentId).map((a) => [a.contentId!.toLowerCase(), a.id]),
    );
    if (byContentId.size > 0)
      html = html.replace(/(["'])cid:<?([^"'>\s]+?)>?\1/gi, (whole, quote: string, cid: string) => {
        const id = byContentId.get(cid.toLowerCase());
        return id ? `${quote}/api/v1/attachments/${id}${quote}` : whole;
      });
    return html;
  };
  const column = <T>(f: (m: MessageToInsert) => T) => messages.map(f);
  sent.push(
    tx.query(
      `INSERT INTO ticket_messages (tenant_id, id, ticket_id, author_id, visibility, direction, body_text, body_html,
                                  rfc_message_id, inbound_id, mail_from, mail_to, mail_cc, mail_subject, reply_text,
                                  classification, created_at)
     SELECT $1, x.id, x.ticket_id, x.author_id, x.visibility, x.direction, x.body_text, x.body_html, x.rfc_message_id,
            x.inbound_id, x.mail_from, x.mail_to, x.mail_cc, x.mail_subject, x.reply_text, x.classification, clock_timestamp()
       FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                   $10::uuid[], $11::text[], $12::jsonb[], $13::jsonb[], $14::text[], $15::text[], $16::jsonb[])
            WITH ORDINALITY AS x(id, ticket_id, author_id, visibility, direction, body_text, body_html, rfc_message_id,
                                 inbound_id, mail_from, mail_to, mail_cc, mail_subject, reply_text, classification, ord)
      ORDER BY x.ord`,
      [
        tx.tenantId,
        column((m) => m.id),
        column((m) => m.ticketId),
        column((m) => m.authorId),
        column((m) => m.visibility),
        column((m) => m.direction),
        column((m) => m.text),
        column(htmlOf),
        column((m) => m.rfcMessageId ?? null),
        column((m) => m.mail?.inboundId ?? null),
        column((m) => m.mail?.from ?? null),
        column((m) => (m.mail ? JSON.stringify(m.mail.to) : null)),
        column((m) => (m.mail ? JSON.stringify(m.mail.cc) : null)),
        column((m) => m.mail?.subject ?? null),
        column((m) => m.mail?.replyText ?? null),
        column((m) => (m.mail ? JSON.stringify(m.mail.classification) : null)),
      ],
    ),
  );
  if (attachments.length > 0) {
    sent.push(
      tx.query(
        `INSERT INTO attachments (tenant_id, id, ticket_id, message_id, filename, content_type, size, sha256, content_id, inline, created_at)
       SELECT $1, x.id, x.ticket_id, x.message_id, x.filename, x.content_type, x.size, decode(x.sha256, 'hex'), x.content_id,
              x.inline, clock_timestamp()
         FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[], $10::boolean[])
              WITH ORDINALITY AS x(id, ticket_id, message_id, filename, content_type, size, sha256, content_id, inline, ord)
        ORDER BY x.ord`,
        [
          tx.tenantId,
          attachments.map((x) => x.a.id),
          attachments.map((x) => x.message.ticketId),
          attachments.map((x) => x.message.id),
          attachments.map((x) => x.a.filename.slice(0, 255)),
          attachments.map((x) => x.a.contentType.slice(0, 255)),
          attachments.map((x) => x.a.content.length),
          hashes.map((h) => h.toString('hex')),
          attachments.map((x) => x.a.contentId),
          attachments.map((x) => x.a.inline),
        ],
      ),
    );
  }
  const participants = [
    ...new Set(messages.flatMap((m) => (m.participants ?? []).map((p) => `${m.ticketId}\n${p}`))),
  ]
    .sort()
    .map((p) => p.split('\n'));
  if (participants.length > 0) {
    sent.push(
      tx.query(
        `INSERT INTO ticket_participants (tenant_id, ticket_id, address_normalized)
       SELECT $1, x.ticket_id, x.address FROM unnest($2::uuid[], $3::text[]) WITH ORDINALITY AS x(ticket_id, address, ord)
        ORDER BY x.ord
       ON CONFLICT DO NOTHING`,
        [tx.tenantId, participants.map((p) => p[0]), participants.map((p) => p[1])],
      ),
    );
  }
  return Promise.all(sent).then(() => undefined);
}

/**
 * Gives a message the mail it goes out as, when its mail could not be made as it was written (an
 * agent's reply: no mailbox, no recipient) and is now: its Message-ID and headers. A message that has
 * another Message-ID keeps it and all (the answer is false); one with this Message-ID (it had no
 * recipient) takes the headers.
 */
export async function attachMail(
  tx: TenantTx,
  messageId: string,
  input: { rfcMessageId: string; mail: Pick<MailFields, 'from' | 'to' | 'cc' | 'subject'> },
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE ticket_messages SET rfc_message_id = $3, mail_from = $4, mail_to = $5, mail_cc = $6, mail_subject = $7
      WHERE tenant_id = $1 AND id = $2 AND (rfc_message_id IS NULL OR rfc_message_id = $3)`,
    [
      tx.tenantId,
      messageId,
      input.rfcMessageId,
      input.mail.from,
      JSON.stringify(input.mail.to),
      JSON.stringify(input.mail.cc),
      input.mail.subject,
    ],
  );
  return (rowCount ?? 0) > 0;
}

export async function getMessage(tx: TenantTx, id: string): Promise<TicketMessage> {
  const { rows } = await tx.query<MessageRow>(
    `SELECT ${MESSAGE_READ_COLUMNS} FROM ticket_messages m WHERE m.tenant_id = $1 AND m.id = $2`,
    [tx.tenantId, id],
  );
  return toMessage(rows[0]!);
}

export async function listMessages(
  tx: TenantTx,
  input: {
    ticketId: string;
    limit?: number | undefined;
    cursor?: string | undefined;
    visibility?: Visibility | undefined;
  },
): Promise<Page<TicketMessage>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const { rowCount } = await tx.query(
    'SELECT 1 FROM tickets WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL',
    [tx.tenantId, input.ticketId],
  );
  if (rowCount === 0) throw notFound('ticket');
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

/** The attachments of a message with their contents (for mail that carries them out). */
export async function messageAttachments(
  tx: TenantTx,
  messageId: string,
): Promise<
  { filename: string; contentType: string; content: Buffer; contentId: string | null; inline: boolean }[]
> {
  const { rows } = await tx.query<{
    filename: string;
    content_type: string;
    sha256: Buffer;
    content_id: string | null;
    inline: boolean;
  }>(
    `SELECT filename, content_type, sha256, content_id, inline FROM attachments
      WHERE tenant_id = $1 AND message_id = $2 ORDER BY created_at, id`,
    [tx.tenantId, messageId],
  );
  if (rows.length === 0) return [];
  const contents = await readBlobs(
    tx,
    rows.map((r) => r.sha256),
  );
  return rows.map((r) => ({
    filename: r.filename,
    contentType: r.content_type,
    content:
      contents.get(r.sha256.toString('hex')) ??
      (() => {
        throw new Error(`the content of attachment ${r.filename} of message ${messageId} is missing`);
      })(),
    contentId: r.content_id,
    inline: r.inline,
  }));
}

/**
 * Which of these messages, named by tenant and id and of several tenants at once (a batch of send
 * jobs, platform work in the system scope), have attachments: answers them as `tenant/id`.
 */
export async function messagesWithAttachmentsAcrossTenants(
  sys: SystemTx,
  refs: { tenantId: string; messageId: string }[],
): Promise<Set<string>> {
  if (refs.length === 0) return new Set();
  const { rows } = await sys.query<{ tenant_id: string; message_id: string }>(
    `SELECT DISTINCT a.tenant_id, a.message_id FROM attachments a
       JOIN unnest($1::uuid[], $2::uuid[]) AS x(tenant_id, message_id)
         ON a.tenant_id = x.tenant_id AND a.message_id = x.message_id
      WHERE a.tenant_id = ANY($1::uuid[])`,
    [refs.map((r) => r.tenantId), refs.map((r) => r.messageId)],
  );
  return new Set(rows.map((r) => `${r.tenant_id}/${r.message_id}`));
}

/** A public message of a conversation, as threading and quoting need it. */
export interface ThreadMessage {
  id: string;
  rfcMessageId: string | null;
  direction: 'inbound' | 'outbound';
  authorId: string;
  text: string;
  replyText: string | null;
  from: string | null;
  createdAt: string;
}

/**
 * The ticket's latest `limit` public messages (before `before`, when given), oldest first (threading
 * headers and quoting read them).
 */
export async function threadMessages(
  tx: TenantTx,
  input: { ticketId: string; limit: number; before?: { id: string; createdAt: string } | undefined },
): Promise<ThreadMessage[]> {
  const { rows } = await tx.query<{
    id: string;
    rfc_message_id: string | null;
    direction: 'inbound' | 'outbound';
    author_id: string;
    body_text: string;
    reply_text: string | null;
    mail_from: string | null;
    created_at: string;
  }>(
    `SELECT * FROM (
       SELECT id, rfc_message_id, direction, author_id, body_text, reply_text, mail_from, created_at
         FROM ticket_messages WHERE tenant_id = $1 AND ticket_id = $2 AND visibility = 'public'
          AND ($4::timestamptz IS NULL OR (created_at, id) < ($4::timestamptz, $5::uuid))
        ORDER BY created_at DESC, id DESC LIMIT $3) m
      ORDER BY created_at, id`,
    [tx.tenantId, input.ticketId, input.limit, input.before?.createdAt ?? null, input.before?.id ?? null],
  );
  return rows.map((r) => ({
    id: r.id,
    rfcMessageId: r.rfc_message_id,
    direction: r.direction,
    authorId: r.author_id,
    text: r.body_text,
    replyText: r.reply_text,
    from: r.mail_from,
    createdAt: r.created_at,
  }));
}

/** The ticket's participants (normalised addresses that took part in its mail), in address order. */
export async function ticketParticipants(tx: TenantTx, ticketId: string): Promise<string[]> {
  const { rows } = await tx.query<{ a: string }>(
    `SELECT address_normalized AS a FROM ticket_participants WHERE tenant_id = $1 AND ticket_id = $2
      ORDER BY address_normalized`,
    [tx.tenantId, ticketId],
  );
  return rows.map((r) => r.a);
}
