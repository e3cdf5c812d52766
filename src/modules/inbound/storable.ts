// What PostgreSQL and our indexes can hold, decided in one place. Every parsed message passes
// through storableMessage before anything else sees it (mime.ts parseMessage, whatever the message
// came through: the API, the CLI, IMAP, Graph, Gmail), and every message key is made by messageKey
// (also where a key is derived from the header block alone: over-size mail, known duplicates).
//
// Mail can carry what PostgreSQL refuses: U+0000 in text and jsonb, a lone surrogate in jsonb (the
// driver turns one into U+FFFD in a text column, but JSON.stringify writes it as an escape jsonb
// rejects), and values longer than a btree row (about 2.7 kB). Refused by the database, such a
// message failed every attempt of its job and ended in the dead-letter queue. Here it is made safe
// instead, and what changed is recorded in `sanitised` (the record's reason and the message's
// classification show it):
// - a NUL or a lone surrogate becomes U+FFFD, the replacement character, which shows that something
//   was there; in bodies, subjects, names, identifiers alike;
// - single-line fields (subject, display names, attachment names) lose control characters and are
//   bounded; an attachment name also loses any directory part;
// - addresses that are not storable as one (too long, control characters) are dropped, so a sender
//   without a usable address is a message without sender (skipped, `no_sender`);
// - Message-IDs longer than a btree row can hold are keyed by their hash.
// What the parser cannot turn into this model at all (a parse error, more than 1,000 parts or a
// deeper nesting, parsing that does not end) is quarantined by the caller (process.ts), with its
// reason.
import { createHash } from 'node:crypto';
import type { SafeHtml } from '../tickets/model.ts';
import type { MailAddress, ParsedAttachment, ParsedMessage } from './message.ts';

/** Longest subject kept (RFC 5322's line length). */
export const SUBJECT_MAX = 998;
/** Longest display name kept (people's names are indexed). */
export const NAME_MAX = 256;
/** Longest attachment file name kept (what file systems allow). */
export const FILENAME_MAX = 255;
/** Longest address accepted (RFC 5321's path limit; what people accept too). */
export const ADDRESS_MAX = 254;
/** Addresses kept per To or Cc header: each becomes a participant row of the ticket. */
export const RECIPIENTS_MAX = 200;
/** Message-IDs a message answers that are looked up: the newest ones. */
export const REFERENCES_MAX = 100;
/**
 * Longest message key kept as it is, in UTF-8 bytes. A btree index row holds at most 2,704 bytes;
 * with the tenant and mailbox ids beside it a key of 2,600 bytes fits whatever it contains, so
 * every key that could be stored before is still stored as it was (no stored key changes). Longer
 * ones, which fit only when they happened to compress well, are keyed by their SHA-256.
 */
export const KEY_MAX_BYTES = 2600;

const LONE_SURROGATE = /\p{Cs}/u;
const LONE_SURROGATES = /\p{Cs}/gu;
// Line breaks and tabs in a one-line value are folding, not content: they become spaces unremarked.
const FOLDING = /[\t\r\n]/g;
// Control characters (C0, DEL, C1); NUL, tabs and line breaks are gone by the time these are looked for.
const CONTROL = /\p{Cc}/u;
const CONTROLS = /\p{Cc}/gu;

/** The text with what PostgreSQL cannot hold (NUL, lone surrogates) replaced by U+FFFD. */
export const storableText = (text: string): string =>
  text.replaceAll('\0', '\uFFFD').replace(LONE_SURROGATES, '\uFFFD');

/** True when the text holds something storableText would replace. */
export const hasUnstorable = (text: string): boolean => text.includes('\0') || LONE_SURROGATE.test(text);

/** At most `max` UTF-16 units, never ending in half a surrogate pair. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  const end = /[\uD800-\uDBFF]/.test(text[max - 1]!) ? max - 1 : max;
  return text.slice(0, end);
}

/** What a message key is made of a normalised Message-ID. */
export function messageKey(messageId: string): string {
  // A lone surrogate was stored as U+FFFD before (the driver's encoding), so the key stays the same.
  const id = storableText(messageId);
  const bytes = Buffer.from(id, 'utf8');
  if (bytes.length <= KEY_MAX_BYTES) return id;
  return `hashed-${createHash('sha256').update(bytes).digest('hex')}@relaydesk.invalid`;
}

/** True when `address` can be stored and matched as an address (people accept the rest or refuse it). */
export const isStorableAddress = (address: string): boolean =>
  address.length > 0 &&
  address.length <= ADDRESS_MAX &&
  address.includes('@') &&
  !/[\p{Cc}\p{Cs}]/u.test(address) &&
  // Spaces only inside a quoted local part ("john smith"@example.com is an address; RFC 5321 §4.1.2).
  !/\s/u.test(address.replace(/^"(?:[^"\\]|\\.)*"@/u, '@'));

/** Notes what was changed, once each. */
class Notes {
  readonly list: string[] = [];
  add(note: string): void {
    if (!this.list.includes(note)) this.list.push(note);
  }
  /** Text made storable; `what` names it in the note. */
  text(value: string, what: string): string {
    if (value.includes('\0')) this.add(`NUL in ${what} replaced`);
    if (LONE_SURROGATE.test(value)) this.add(`invalid characters in ${what} replaced`);
    return storableText(value);
  }
  /** A one-line value: storable, without control characters, at most `max` characters. */
  line(value: string, what: string, max: number): string {
    let out = this.text(value, what).replace(FOLDING, ' ');
    if (CONTROL.test(out)) {
      this.add(`control characters in ${what} replaced`);
      out = out.replace(CONTROLS, ' ');
    }
    out = out.trim();
    if (out.length > max) {
      this.add(`${what} cut to ${max} characters`);
      out = cut(out, max).trim();
    }
    return out;
  }
}

/** An attachment's file name: its last path segment, storable, one line, at most 255 characters. */
function filename(name: string, index: number, notes: Notes): string {
  const base = name.split(/[\\/]/).pop()!;
  if (base !== name) notes.add('directory part of attachment name removed');
  let out = notes.line(base, 'attachment name', Number.MAX_SAFE_INTEGER);
  if (/^\.+$/.test(out)) {
    notes.add('attachment name of dots replaced');
    out = '';
  }
  if (out.length > FILENAME_MAX) {
    notes.add(`attachment name cut to ${FILENAME_MAX} characters`);
    // Keep the extension: it is what the name is opened by.
    const ext = /\.[^.\s]{1,16}$/.exec(out)?.[0] ?? '';
    out = cut(out.slice(0, out.length - ext.length), FILENAME_MAX - ext.length).trimEnd() + ext;
  }
  return out || `attachment-${index + 1}`;
}

const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

function attachment(a: ParsedAttachment, index: number, notes: Notes): ParsedAttachment {
  let contentType = a.contentType.trim().toLowerCase();
  if (!MEDIA_TYPE.test(contentType)) {
    notes.add('unusable attachment content type replaced');
    contentType = 'application/octet-stream';
  }
  let contentId = a.contentId;
  if (contentId !== null && (hasUnstorable(contentId) || CONTROL.test(contentId) || contentId.length > 998)) {
    notes.add('unusable attachment Content-ID dropped');
    contentId = null;
  }
  return { ...a, filename: filename(a.filename, index, notes), contentType, contentId };
}

function recipients(list: MailAddress[], header: string, notes: Notes): MailAddress[] {
  const usable = list.filter((a) => isStorableAddress(a.address));
  if (usable.length < list.length) notes.add(`unusable ${header} addresses dropped`);
  if (usable.length > RECIPIENTS_MAX)
    notes.add(`${header} addresses beyond the first ${RECIPIENTS_MAX} dropped`);
  return usable
    .slice(0, RECIPIENTS_MAX)
    .map((a) => ({ address: a.address, name: notes.line(a.name, 'recipient name', NAME_MAX) }));
}

/** A parsed message before it is made storable: Message-IDs are normalised but not keys yet. */
export type DraftMessage = Omit<ParsedMessage, 'key' | 'sanitised'>;

/**
 * The message as it is stored: every field storable and bounded, the Message-IDs it names turned
 * into keys (`generatedKey` keys a message without Message-ID), and what changed in `sanitised`.
 */
export function storableMessage(draft: DraftMessage, generatedKey: () => string): ParsedMessage {
  const notes = new Notes();
  const messageId = draft.messageId === null ? null : notes.text(draft.messageId, 'Message-ID');
  if (draft.references.length > REFERENCES_MAX)
    notes.add(`references beyond the newest ${REFERENCES_MAX} dropped`);
  const references = draft.references.slice(0, REFERENCES_MAX);
  for (const ref of references) notes.text(ref, 'references');
  let from: MailAddress | null = null;
  if (draft.from && isStorableAddress(draft.from.address))
    from = { address: draft.from.address, name: notes.line(draft.from.name, 'sender name', NAME_MAX) };
  else if (draft.from) notes.add('unusable sender address dropped');
  const body = (value: string) => notes.text(value, 'body');
  return {
    key: draft.messageId === null ? generatedKey() : messageKey(draft.messageId),
    messageId,
    references: [...new Set(references.map(messageKey))],
    from,
    to: recipients(draft.to, 'To', notes),
    cc: recipients(draft.cc, 'Cc', notes),
    subject: notes.line(draft.subject, 'subject', SUBJECT_MAX),
    text: body(draft.text),
    // Replacing characters by U+FFFD adds no markup: the HTML is as safe as it was.
    html: draft.html === null ? null : (body(draft.html) as SafeHtml),
    replyText: body(draft.replyText),
    attachments: draft.attachments.map((a, i) => attachment(a, i, notes)),
    classification: {
      ...draft.classification,
      reasons: draft.classification.reasons.map((r) => new Notes().line(r, 'reason', 200)),
    },
    bouncedMessageId: draft.bouncedMessageId === null ? null : messageKey(draft.bouncedMessageId),
    sanitised: notes.list,
  };
}

/**
 * A reason as an inbound record keeps it: storable, one line (the CLI prints it between tabs), at
 * most 1,000 characters. Reasons quote error messages, which may quote the mail.
 */
export const storableReason = (reason: string): string => new Notes().line(reason, 'reason', 1000);
