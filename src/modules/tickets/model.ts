// What a ticket and its messages are, as the API shows them, and how rows become those shapes.
import sanitizeHtml from 'sanitize-html';
import { validation } from '../../platform/errors.ts';

export const TICKET_STATUSES = ['new', 'open', 'pending', 'on_hold', 'solved', 'closed'] as const;
export type TicketStatus = (typeof TICKET_STATUSES)[number];
export const TICKET_PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;
export type TicketPriority = (typeof TICKET_PRIORITIES)[number];
export const VISIBILITIES = ['public', 'internal'] as const;
export type Visibility = (typeof VISIBILITIES)[number];
export type Direction = 'inbound' | 'outbound';

export interface Ticket {
  id: string;
  /** Shown to people as T-<n>; unique, increasing and without gaps per tenant (a failed creation takes none). */
  number: string;
  subject: string;
  status: TicketStatus;
  priority: TicketPriority;
  requesterId: string;
  assigneeId: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface Address {
  address: string;
  name: string;
}

export interface AttachmentInfo {
  id: string;
  filename: string;
  contentType: string;
  size: number;
  inline: boolean;
  contentId: string | null;
}

export interface MailDetails {
  from: string | null;
  to: Address[];
  cc: Address[];
  subject: string | null;
  replyText: string | null;
  classification: Record<string, unknown> | null;
  attachments: AttachmentInfo[];
}

export interface TicketMessage {
  id: string;
  ticketId: string;
  authorId: string;
  visibility: Visibility;
  direction: Direction;
  text: string;
  html: string | null;
  messageId: string | null;
  /** For messages that came by mail: its envelope, the new part of a reply, attachments, classification. */
  mail: MailDetails | null;
  /** For a message sent out by mail: its latest delivery attempt (filled in by the outbound module). */
  delivery: DeliverySummary | null;
  createdAt: string;
}

export interface DeliverySummary {
  id: string;
  status: string;
  attempt: number;
  attempts: number;
  errorCode: string | null;
  errorMessage: string | null;
  lastError: string | null;
  sentAt: string | null;
}

export interface StatusChange {
  fromStatus: TicketStatus | null;
  toStatus: TicketStatus;
  changedAt: string;
  changedBy: string | null;
}

export interface TicketRow {
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

export interface MessageRow {
  id: string;
  ticket_id: string;
  author_id: string;
  visibility: Visibility;
  direction: Direction;
  body_text: string;
  body_html: string | null;
  rfc_message_id: string | null;
  created_at: string;
  inbound_id?: string | null;
  mail_from?: string | null;
  mail_to?: Address[] | null;
  mail_cc?: Address[] | null;
  mail_subject?: string | null;
  reply_text?: string | null;
  classification?: Record<string, unknown> | null;
  attachments?: AttachmentInfo[] | null;
}

export const TICKET_COLUMNS =
  'id, number, subject, status, priority, requester_id, assignee_id, created_at, updated_at';
export const MESSAGE_COLUMNS =
  'id, ticket_id, author_id, visibility, direction, body_text, body_html, rfc_message_id, created_at';
export const MESSAGE_READ_COLUMNS = `m.id, m.ticket_id, m.author_id, m.visibility, m.direction, m.body_text, m.body_html,
  m.rfc_message_id, m.created_at, m.inbound_id, m.mail_from, m.mail_to, m.mail_cc, m.mail_subject, m.reply_text,
  m.classification,
  (SELECT json_agg(json_build_object('id', a.id, 'filename', a.filename, 'contentType', a.content_type,
                   'size', a.size, 'inline', a.inline, 'contentId', a.content_id) ORDER BY a.created_at, a.id)
     FROM attachments a WHERE a.tenant_id = m.tenant_id AND a.message_id = m.id) AS attachments`;

export const ticketNumber = (n: number): string => `T-${n}`;

export const toTicket = (r: TicketRow): Ticket => ({
  id: r.id,
  number: ticketNumber(r.number),
  subject: r.subject,
  status: r.status,
  priority: r.priority,
  requesterId: r.requester_id,
  assigneeId: r.assignee_id,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const toMessage = (r: MessageRow): TicketMessage => ({
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
  // The ledger is the outbound module's: it fills this in where messages are served (withDeliveries).
  delivery: null,
  createdAt: r.created_at,
});

/**
 * HTML that went through sanitizeBodyHtml. Message bodies are stored only in this form; the type
 * makes the compiler check it, and lets inbound sanitise in its parser threads, once.
 */
export type SafeHtml = string & { readonly __sanitised: true };

/** HTML bodies are stored sanitised: no scripts, no event handlers, no remote loads. */
export function sanitizeBodyHtml(html: string): SafeHtml {
  return sanitizeHtml(html, {
    allowedTags: sanitizeHtml.defaults.allowedTags.concat(['img']),
    allowedAttributes: { ...sanitizeHtml.defaults.allowedAttributes, img: ['src', 'alt', 'width', 'height'] },
    allowedSchemes: ['http', 'https', 'mailto', 'cid'],
    allowedSchemesByTag: { img: ['cid', 'data'] },
  }) as SafeHtml;
}

export function checkSubject(subject: string, path = '/subject'): string {
  const trimmed = subject.trim();
  if (trimmed === '') throw validation('subject must not be empty', [{ path, message: 'must not be empty' }]);
  return trimmed;
}

export function checkText(text: string, path: string): string {
  if (text.trim() === '')
    throw validation('message text must not be empty', [{ path, message: 'must not be empty' }]);
  return text;
}
