// The delivery ledger as the API shows it (DESIGN §5.4): one row per attempt to deliver something
// somewhere, with its idempotency key, status and classified error.
import { createHash } from 'node:crypto';

export const DELIVERY_STATUSES = [
  'queued',
  'skipped',
  'sent',
  'delivered',
  'bounced',
  'failed',
  'unknown',
] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export const DELIVERY_CHANNELS = ['email', 'teams', 'slack', 'webhook'] as const;
export type DeliveryChannel = (typeof DELIVERY_CHANNELS)[number];

/** The error taxonomy every channel maps its failures to. */
export const DELIVERY_ERROR_CODES = [
  'throttled',
  'auth',
  'not_found',
  'invalid_recipient',
  'transient',
  'permanent',
] as const;
export type DeliveryErrorCode = (typeof DELIVERY_ERROR_CODES)[number];

export const DELIVERY_PURPOSES = ['reply', 'acknowledgement', 'notification'] as const;
export type DeliveryPurpose = (typeof DELIVERY_PURPOSES)[number];

/** A mail's addresses as sent. */
export interface MailAddress {
  address: string;
  name: string;
}

/** What an email attempt sends (the outbox part of the row). */
export interface EmailPayload {
  from: MailAddress;
  replyTo: string;
  to: MailAddress[];
  cc: MailAddress[];
  bcc: MailAddress[];
  subject: string;
  text: string;
  html: string | null;
  inReplyTo: string | null;
  references: string[];
  /** Automatic mail (acknowledgements): Auto-Submitted and X-Auto-Response-Suppress. */
  automatic: boolean;
  /** Of a notification by email: the event type it tells of. */
  about?: string | undefined;
}

export interface Delivery {
  id: string;
  channel: DeliveryChannel;
  purpose: DeliveryPurpose;
  destination: string;
  status: DeliveryStatus;
  attempt: number;
  /** The attempt this one retries. */
  previousId: string | null;
  skipReason: string | null;
  retryable: boolean | null;
  errorCode: DeliveryErrorCode | null;
  errorMessage: string | null;
  providerMessageId: string | null;
  providerResponse: string | null;
  requestId: string | null;
  ticketId: string | null;
  ticketMessageId: string | null;
  mailboxId: string | null;
  rfcMessageId: string | null;
  /** The notification this attempt delivers (the same for all its attempts and destinations' retries). */
  notificationId: string | null;
  createdAt: string;
  startedAt: string | null;
  sentAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
}

export interface DeliveryRow {
  id: string;
  channel: DeliveryChannel;
  purpose: DeliveryPurpose;
  destination: string;
  status: DeliveryStatus;
  attempt: number;
  previous_id: string | null;
  skip_reason: string | null;
  retryable: boolean | null;
  error_code: DeliveryErrorCode | null;
  error_message: string | null;
  provider_message_id: string | null;
  provider_response: string | null;
  request_id: string | null;
  ticket_id: string | null;
  ticket_message_id: string | null;
  mailbox_id: string | null;
  rfc_message_id: string | null;
  notification_id: string | null;
  idempotency_key: string;
  payload: Record<string, unknown>;
  created_at: string;
  started_at: string | null;
  sent_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
}

export const DELIVERY_COLUMNS = `id, channel, purpose, destination, status, attempt, previous_id, skip_reason,
  retryable, error_code, error_message, provider_message_id, provider_response, request_id, ticket_id,
  ticket_message_id, mailbox_id, rfc_message_id, notification_id, idempotency_key, payload, created_at, started_at, sent_at,
  finished_at, duration_ms`;

export const toDelivery = (r: DeliveryRow): Delivery => ({
  id: r.id,
  channel: r.channel,
  purpose: r.purpose,
  destination: r.destination,
  status: r.status,
  attempt: r.attempt,
  previousId: r.previous_id,
  skipReason: r.skip_reason,
  retryable: r.retryable,
  errorCode: r.error_code,
  errorMessage: r.error_message,
  providerMessageId: r.provider_message_id,
  providerResponse: r.provider_response,
  requestId: r.request_id,
  ticketId: r.ticket_id,
  ticketMessageId: r.ticket_message_id,
  mailboxId: r.mailbox_id,
  rfcMessageId: r.rfc_message_id,
  notificationId: r.notification_id,
  createdAt: r.created_at,
  startedAt: r.started_at,
  sentAt: r.sent_at,
  finishedAt: r.finished_at,
  durationMs: r.duration_ms,
});

/**
 * The idempotency key of an attempt: sha256(subject|tenant|channel|destination|attempt), where the
 * subject is what is delivered (the ticket message, or the delivery chain's first attempt).
 */
export function idempotencyKey(input: {
  subject: string;
  tenantId: string;
  channel: DeliveryChannel;
  destination: string;
  attempt: number;
}): string {
  return createHash('sha256')
    .update(
      [input.subject, input.tenantId, input.channel, input.destination.toLowerCase(), input.attempt].join(
        '|',
      ),
    )
    .digest('hex');
}

/** Error messages are kept to 1,024 characters, on one line. */
export const truncateMessage = (message: string): string => message.replace(/[\r\n]+/g, ' ').slice(0, 1024);
