// A received message as Relaydesk models it: what parsing (mime.ts) makes of the raw bytes, after
// storable.ts made every part of it something PostgreSQL and our indexes can hold.
import type { SafeHtml } from '../tickets/model.ts';

export interface MailAddress {
  address: string;
  name: string;
}

export interface ParsedAttachment {
  filename: string;
  contentType: string;
  content: Buffer;
  /** SHA-256 of the content (the key of its blob). */
  sha256: Buffer;
  contentId: string | null;
  inline: boolean;
}

export interface Classification {
  /** Auto-replies, bulk and list mail, loops: may thread, never reopens or auto-replies. */
  automatic: boolean;
  /** Delivery status notifications and other bounces. */
  bounce: boolean;
  /** Which rules matched, e.g. ["auto-submitted: auto-replied", "precedence: bulk"]. */
  reasons: string[];
}

export interface ParsedMessage {
  /**
   * The message key (storable.ts messageKey): the normalised Message-ID, its hashed form when that
   * is too long or holds a NUL, or gen-<sha256>@relaydesk.invalid without one.
   */
  key: string;
  messageId: string | null;
  /** Keys of the Message-IDs this one answers, newest first (In-Reply-To, then References from the end). */
  references: string[];
  from: MailAddress | null;
  to: MailAddress[];
  cc: MailAddress[];
  subject: string;
  text: string;
  /** Sanitised HTML body (no scripts, handlers or remote loads), or null. */
  html: SafeHtml | null;
  /** The new part of a reply, without quoted history and signature. */
  replyText: string;
  attachments: ParsedAttachment[];
  classification: Classification;
  /** For a bounce: the key of the Message-ID of the message that bounced, when the report quotes it. */
  bouncedMessageId: string | null;
  /**
   * What was changed to make the message storable, one short phrase each ("NUL in subject
   * replaced", "directory part of attachment name removed"); empty for ordinary mail.
   */
  sanitised: string[];
}
