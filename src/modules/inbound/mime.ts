// Pure mail handling: parsing a raw RFC 5322 message (mailparser), the message key, the references
// to thread by, the automatic-mail and bounce classification, and the new part of a reply. No
// database, no clock: everything here is a function of the bytes.
import { createHash } from 'node:crypto';
import { sha256 } from '../../platform/crypto.ts';
import { compile as compileHtmlToText } from 'html-to-text';
import iconv from 'iconv-lite';
import { type AddressObject, type ParsedMail, simpleParser } from 'mailparser';
import { sanitizeBodyHtml } from '../tickets/model.ts';
import { parseMail } from './base64-bodies.ts';
import type { Classification, MailAddress, ParsedAttachment, ParsedMessage } from './message.ts';
import { isStorableAddress, storableMessage } from './storable.ts';

export type { Classification, MailAddress, ParsedAttachment, ParsedMessage } from './message.ts';

/** One pair of angle brackets removed, the domain lower-cased; undefined when empty. */
export function normalizeMessageId(raw: string | undefined | null): string | undefined {
  if (!raw) return undefined;
  let id = raw.trim();
  if (id.startsWith('<') && id.endsWith('>')) id = id.slice(1, -1).trim();
  if (id === '') return undefined;
  const at = id.lastIndexOf('@');
  return at < 0 ? id : `${id.slice(0, at)}@${id.slice(at + 1).toLowerCase()}`;
}

export function generatedKey(raw: Buffer): string {
  return generatedKeyOfHash(createHash('sha256').update(raw).digest());
}

/** The generated key of a message whose SHA-256 is known. */
export const generatedKeyOfHash = (sha256: Buffer): string =>
  `gen-${sha256.toString('hex')}@relaydesk.invalid`;

/** Every <...> token of a References / In-Reply-To header, in order. */
export function splitMessageIds(value: string | string[] | undefined): string[] {
  if (!value) return [];
  const text = Array.isArray(value) ? value.join(' ') : value;
  const ids = [...text.matchAll(/<([^<>\s]+)>/g)].map((m) => m[1]!);
  if (ids.length === 0 && text.trim() !== '') return text.trim().split(/\s+/);
  return ids;
}

/** Message-IDs to thread by, newest first and without repeats: In-Reply-To, then References read from the end. */
export function threadReferences(
  inReplyTo: string | undefined,
  references: string | string[] | undefined,
): string[] {
  const ordered = [...splitMessageIds(inReplyTo), ...splitMessageIds(references).reverse()];
  const seen = new Set<string>();
  const out: string[] = [];
  for (const raw of ordered) {
    const id = normalizeMessageId(raw);
    if (id && !seen.has(id)) {
      seen.add(id);
      out.push(id);
    }
  }
  return out;
}

const tagPatterns = new Map<string, RegExp>();

/** The pattern of a subject tag format (outbound settings: `{number}` stands for T-123). */
function tagPattern(format: string): RegExp {
  let re = tagPatterns.get(format);
  if (!re) {
    const [before, after] = format.split('{number}').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    re = new RegExp(`${before}T-(\\d{1,18})${after ?? ''}`, 'i');
    if (tagPatterns.size < 1000) tagPatterns.set(format, re);
  }
  return re;
}

/**
 * The ticket number of the subject's tag, if any: in the mailbox's format (outbound settings), or in
 * the default `[#T-123]` (so that changing the format keeps older conversations threading).
 */
export function subjectTicketNumber(subject: string, format = '[#{number}]'): number | undefined {
  const m = tagPattern(format).exec(subject) ?? tagPattern('[#{number}]').exec(subject);
  return m ? Number(m[1]) : undefined;
}

/** Raw header values by lower-case name (unfolded, in order). */
export type RawHeaders = Map<string, string[]>;

export function rawHeaders(lines: { key: string; line: string }[]): RawHeaders {
  const map: RawHeaders = new Map();
  for (const { key, line } of lines) {
    const value = line
      .slice(line.indexOf(':') + 1)
      .replace(/\r?\n[ \t]+/g, ' ')
      .trim();
    const list = map.get(key.toLowerCase());
    if (list) list.push(value);
    else map.set(key.toLowerCase(), [value]);
  }
  return map;
}

const AUTOMATIC_PRECEDENCE = new Set(['bulk', 'list', 'junk', 'auto_reply']);

/** RFC 3834 and the de-facto headers of auto-responders, lists and bounces. */
export function classify(headers: RawHeaders, from: string | null, contentType: string): Classification {
  const reasons: string[] = [];
  let automatic = false;
  let bounce = false;
  const first = (name: string) => headers.get(name)?.[0];
  const autoSubmitted = first('auto-submitted')?.toLowerCase();
  if (autoSubmitted !== undefined && autoSubmitted.split(';')[0]!.trim() !== 'no') {
    automatic = true;
    reasons.push(`auto-submitted: ${autoSubmitted}`);
  }
  const precedence = first('precedence')?.toLowerCase().trim();
  if (precedence && AUTOMATIC_PRECEDENCE.has(precedence)) {
    automatic = true;
    reasons.push(`precedence: ${precedence}`);
  }
  for (const name of [
    'x-autoreply',
    'x-autorespond',
    'x-auto-response-suppress',
    'x-loop',
    'list-unsubscribe',
  ]) {
    if (headers.has(name)) {
      automatic = true;
      reasons.push(name);
    }
  }
  const ct = contentType.toLowerCase();
  if (ct.startsWith('multipart/report') && /report-type\s*=\s*"?delivery-status/.test(ct)) {
    bounce = true;
    reasons.push('delivery-status report');
  }
  if (headers.has('x-failed-recipients')) {
    bounce = true;
    reasons.push('x-failed-recipients');
  }
  const returnPath = first('return-path');
  if (returnPath !== undefined && /^<\s*>$/.test(returnPath.trim())) {
    bounce = true;
    reasons.push('empty return-path');
  }
  const local = from?.split('@')[0]?.toLowerCase();
  if (local === 'mailer-daemon' || local === 'postmaster') {
    bounce = true;
    reasons.push(`sender ${local}`);
  }
  return { automatic: automatic || bounce, bounce, reasons };
}

const QUOTE_HEADERS = [
  /^On .{3,200} wrote:\s*$/i,
  /^Am .{3,200} schrieb .{0,200}:\s*$/i,
  /^Le .{3,200} a écrit\s*:\s*$/i,
  /^-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine)\s*-{2,}\s*$/i,
  /^_{10,}\s*$/,
  /^(From|Von|De):\s.+/i,
];

/** The new part of a reply: text above the first quote header, quoted block or signature marker. */
export function extractReply(text: string): string {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  // quotedToEnd[i]: lines i.. are all quoted or blank. One pass from the end: asking it of every
  // line by scanning the rest made a message of many quoted lines ending in another line quadratic
  // (200,000 such lines: minutes, longer than the job's lease).
  const quotedToEnd = new Array<boolean>(lines.length + 1);
  quotedToEnd[lines.length] = true;
  for (let i = lines.length - 1; i >= 0; i--)
    quotedToEnd[i] = quotedToEnd[i + 1]! && (lines[i]!.startsWith('>') || lines[i]!.trim() === '');
  let end = lines.length;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '-- ' || line === '--') {
      end = i;
      break;
    }
    if (QUOTE_HEADERS.some((re) => re.test(line.trim()))) {
      end = i;
      break;
    }
    // A block of quoted lines that runs to the end of the message.
    if (line.startsWith('>') && quotedToEnd[i]) {
      end = i;
      break;
    }
  }
  const reply = lines.slice(0, end).join('\n').trim();
  return reply === '' ? text.trim() : reply;
}

function addresses(value: AddressObject | AddressObject[] | undefined): MailAddress[] {
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value];
  const out: MailAddress[] = [];
  for (const obj of list) {
    for (const a of obj.value) {
      if (a.address) out.push({ address: a.address.trim(), name: (a.name ?? '').trim() });
      for (const g of a.group ?? [])
        if (g.address) out.push({ address: g.address.trim(), name: (g.name ?? '').trim() });
    }
  }
  return out;
}

function htmlToText(html: string): string {
  return html
    .replace(/<(script|style)[\s\S]*?<\/\1>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|li|tr|h\d)>/gi, '\n')
    .replace(/<[^>]+>/g, '')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** The Message-ID quoted by a bounce: from its attached message/rfc822 or text/rfc822-headers part. */
function bouncedMessageIdOf(attachments: { contentType: string; content: Buffer }[]): string | null {
  for (const a of attachments) {
    const ct = a.contentType.toLowerCase();
    if (ct === 'message/rfc822' || ct === 'text/rfc822-headers' || ct === 'message/rfc822-headers') {
      const text = a.content.toString('latin1');
      const headerPart = text.split(/\r?\n\r?\n/)[0] ?? text;
      const m = /^message-id:\s*(.+(?:\r?\n[ \t].+)*)/im.exec(headerPart);
      const id = m ? normalizeMessageId(splitMessageIds(m[1])[0]) : undefined;
      if (id) return id;
    }
  }
  return null;
}

const headerText = (value: unknown): string | undefined =>
  typeof value === 'string'
    ? value
    : value && typeof value === 'object' && 'value' in value
      ? String((value as { value: unknown }).value)
      : undefined;

const PLAUSIBLE_ADDRESS = /^("[^"\r\n]+"|[^\s@<>"(),;:]+)@[^\s@<>"(),;:]+$/;
const plausible = (address: string) => PLAUSIBLE_ADDRESS.test(address) && isStorableAddress(address);

/** The address inside a header value: <addr>, or a bare addr@domain. */
function addressIn(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const angled = /<\s*([^<>\s]+@[^<>\s]+)\s*>/.exec(value);
  const candidate = (angled?.[1] ?? /("[^"]+"|[^\s<>"(),;:]+)@[^\s<>"(),;:]+/.exec(value)?.[0])?.replace(
    /[>.]+$/,
    '',
  );
  return candidate && plausible(candidate) ? candidate : undefined;
}

/**
 * The sender: the From address when it is usable; otherwise, as mail from broken clients and
 * spammers needs, Reply-To, Sender, a non-empty Return-Path, or the mbox envelope line.
 */
function senderOf(parsedFrom: MailAddress | undefined, headers: RawHeaders, raw: Buffer): MailAddress | null {
  if (parsedFrom && plausible(parsedFrom.address)) return parsedFrom;
  for (const value of headers.get('from') ?? []) {
    const address = addressIn(value);
    if (address) return { address, name: parsedFrom?.name ?? '' };
  }
  for (const name of ['reply-to', 'sender', 'return-path']) {
    const address = addressIn(headers.get(name)?.[0]);
    if (address) return { address, name: parsedFrom?.name ?? '' };
  }
  const envelope = /^From (\S+@\S+)\s/.exec(raw.subarray(0, 512).toString('latin1'));
  const address = addressIn(envelope?.[1]);
  return address ? { address, name: parsedFrom?.name ?? '' } : null;
}

// Charsets to try for raw 8-bit header bytes, by what the message declares (declarations are often
// wrong within a language family: iso-2022-jp mail with Shift_JIS headers, gb2312 with GBK).
const CHARSET_FAMILIES: Record<string, string[]> = {
  'iso-2022-jp': ['shift_jis', 'euc-jp'],
  shift_jis: ['shift_jis', 'euc-jp'],
  'euc-jp': ['euc-jp', 'shift_jis'],
  gb2312: ['gb18030'],
  gbk: ['gb18030'],
  gb18030: ['gb18030'],
  big5: ['big5'],
  'euc-kr': ['euc-kr'],
  'ks_c_5601-1987': ['euc-kr'],
};

/**
 * Raw 8-bit bytes in a header (no encoded words) that are not UTF-8: decode them with the charsets
 * the message declares (and their relatives), else Windows-1252.
 */
export function decodeRawHeader(raw: Buffer, name: string): string | undefined {
  const head = headerBlock(raw).toString('latin1');
  const m = new RegExp(`^${name}:[ \\t]?(.*(?:\\r?\\n[ \\t].*)*)`, 'im').exec(head);
  if (!m) return undefined;
  const bytes = Buffer.from(m[1]!.replace(/\r?\n[ \t]+/g, ' '), 'latin1');
  const declared = [...raw.toString('latin1').matchAll(/charset\s*=\s*"?([A-Za-z0-9_.:-]+)/gi)].map((x) =>
    x[1]!.toLowerCase(),
  );
  // Multi-byte charsets first: a single-byte one (Latin-1) decodes anything without complaint.
  const multi = declared.flatMap((c) => CHARSET_FAMILIES[c] ?? []);
  const candidates = [...new Set([...multi, ...declared])];
  for (const charset of candidates) {
    if (!iconv.encodingExists(charset) || /^(us-ascii|ascii|iso-2022-jp|utf-?8)$/.test(charset)) continue;
    const text = iconv.decode(bytes, charset);
    if (!text.includes('\uFFFD') && !/[\u0080-\u009f]/.test(text)) return text.trim();
  }
  return iconv.decode(bytes, 'windows-1252').trim();
}

/**
 * A name for a part that has none: an attached message is named by its subject, else by the part's
 * Content-Description ("Undelivered Message"); other parts by their description or as image.<type>.
 */
async function defaultFilename(
  contentType: string,
  content: Buffer,
  description: string | undefined,
  index: number,
): Promise<string> {
  const type = contentType.toLowerCase();
  const clean = (name: string) => name.replace(/[\\/*?"<>|\r\n]+/g, ' ').trim();
  if (type === 'message/rfc822') {
    const inner = await simpleParser(content, { skipImageLinks: true, skipTextToHtml: true }).catch(
      () => undefined,
    );
    let subject = (inner?.subject ?? '').trim();
    if (subject.includes('\uFFFD')) subject = decodeRawHeader(content, 'subject') ?? subject;
    return `${clean(subject) || clean(description ?? '') || 'Mail'}.eml`;
  }
  if (description && clean(description))
    return `${clean(description)}${type.startsWith('text/') ? '.txt' : ''}`;
  const image = /^image\/([a-z0-9.+-]+)$/.exec(type);
  if (image) return `image.${image[1] === 'jpeg' ? 'jpg' : image[1]!.replace(/\+.*$/, '')}`;
  return `attachment-${index + 1}`;
}

/** The message/delivery-status part of a report found in its raw text: its description and body. */
function statusPartOf(raw: Buffer): { description: string | undefined; body: string } | undefined {
  const text = raw.toString('latin1');
  const boundary =
    /report-type\s*=\s*"?delivery-status"?[\s\S]*?boundary\s*=\s*"?([^";\r\n]+)"?|boundary\s*=\s*"?([^";\r\n]+)"?[\s\S]*?report-type\s*=\s*"?delivery-status/i.exec(
      text.slice(0, 64 * 1024),
    );
  const b = boundary?.[1] ?? boundary?.[2];
  if (!b) return undefined;
  for (const part of text.split(`--${b}`)) {
    const split = part.search(/\r?\n\r?\n/);
    if (split < 0) continue;
    const head = part.slice(0, split);
    if (!/content-type:\s*message\/delivery-status/i.test(head)) continue;
    const description = /content-description:\s*(.+)/i.exec(head)?.[1]?.trim();
    const body = part
      .slice(split)
      .replace(/^\r?\n\r?\n/, '')
      .replace(/\r?\n$/, '');
    return { description, body };
  }
  return undefined;
}

/**
 * The machine-readable part of a delivery report (message/delivery-status), which the parser folds
 * into the text: kept as an attachment too, as operators expect to see it.
 */
function deliveryStatusPart(raw: Buffer): ParsedAttachment | undefined {
  const part = statusPartOf(raw);
  if (!part) return undefined;
  const content = Buffer.from(part.body, 'latin1');
  return {
    filename: `${part.description || 'delivery-status'}.txt`,
    contentType: 'message/delivery-status',
    content,
    sha256: sha256(content),
    contentId: null,
    inline: false,
  };
}

/**
 * The text of a delivery report's message/delivery-status part (RFC 3464, 7-bit by its definition),
 * when the message is a multipart/report that has one: the part parseMessage keeps as an attachment.
 */
export function deliveryStatusText(raw: Buffer): string | undefined {
  const head = headerBlock(raw).toString('latin1');
  const contentType = /^content-type:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(head)?.[1];
  if (!contentType || !/^multipart\/report\b/i.test(contentType.trim())) return undefined;
  return statusPartOf(raw)?.body;
}

// mailparser turns the HTML of an HTML-only message into its text with html-to-text, whose
// htmlToText() compiles its formatting rules again on every call: that compilation was two thirds
// of the parse time of a small HTML message. For a message whose top part is text/html the parser
// is therefore asked to skip the conversion and the same conversion runs here with rules compiled
// once (same package and version as mailparser's, same options, same result). Where mailparser's
// own guard against deep nesting could matter (more than its 1,000 levels' worth of tags), and for
// every other structure, the parser converts as before.
const MAILPARSER_MAX_HTML_DEPTH = 1000;
const htmlPartToText = compileHtmlToText({ limits: { maxDepth: MAILPARSER_MAX_HTML_DEPTH } });
// The parser hashes every attachment as it decodes it (MD5 unless told otherwise): asked for
// SHA-256, that hash is the blob key the attachment is stored under, and is not computed twice.
const PARSE_OPTIONS = {
  skipImageLinks: true,
  skipTextToHtml: true,
  keepCidLinks: true,
  checksumAlgo: 'sha256',
} as const;

function countOf(text: string, char: string): number {
  let n = 0;
  for (let i = text.indexOf(char); i >= 0; i = text.indexOf(char, i + 1)) n++;
  return n;
}

async function parseMime(raw: Buffer): Promise<ParsedMail> {
  if (!/^content-type:[ \t]*(\r?\n[ \t]+)?text\/html\b/im.test(headerBlock(raw).toString('latin1')))
    return parseMail(raw, PARSE_OPTIONS);
  const mail = await parseMail(raw, { ...PARSE_OPTIONS, skipHtmlToText: true } as typeof PARSE_OPTIONS);
  const contentType = mail.headers.get('content-type') as { value?: string } | undefined;
  const htmlRoot = contentType?.value?.toLowerCase() === 'text/html';
  if (!htmlRoot || (typeof mail.html === 'string' && countOf(mail.html, '<') > MAILPARSER_MAX_HTML_DEPTH))
    return parseMail(raw, PARSE_OPTIONS);
  if (typeof mail.html === 'string') {
    try {
      mail.text = htmlPartToText(mail.html);
    } catch {
      mail.text = ''; // as mailparser: the HTML is kept, the text stays empty
    }
  }
  return mail;
}

/** Parses raw bytes. Throws only when the bytes are not a message at all. */
export async function parseMessage(raw: Buffer): Promise<ParsedMessage> {
  const mail = await parseMime(raw);
  const headers = rawHeaders([...(mail.headerLines ?? [])]);
  const messageId = normalizeMessageId(mail.messageId) ?? null;
  const from = senderOf(addresses(mail.from)[0], headers, raw);
  const contentType = headers.get('content-type')?.[0] ?? 'text/plain';
  const html = typeof mail.html === 'string' && mail.html.trim() !== '' ? sanitizeBodyHtml(mail.html) : null;
  const text = (mail.text ?? '').trim() !== '' ? (mail.text ?? '').trim() : html ? htmlToText(html) : '';
  const attachments: ParsedAttachment[] = [];
  for (const [i, a] of mail.attachments.entries()) {
    const type = a.contentType || 'application/octet-stream';
    attachments.push({
      filename:
        (a.filename ?? '').trim() ||
        (await defaultFilename(type, a.content, headerText(a.headers.get('content-description')), i)),
      contentType: type,
      content: a.content,
      sha256: /^[0-9a-f]{64}$/.test(a.checksum ?? '') ? Buffer.from(a.checksum, 'hex') : sha256(a.content),
      contentId: a.contentId ? (normalizeMessageId(a.contentId) ?? null) : null,
      inline: a.contentDisposition === 'inline' || Boolean(a.related),
    });
  }
  if (contentType.toLowerCase().startsWith('multipart/report')) {
    const status = deliveryStatusPart(raw);
    if (status && !attachments.some((a) => a.contentType === 'message/delivery-status'))
      attachments.unshift(status);
  }
  let subject = (mail.subject ?? '').trim();
  if (subject.includes('\uFFFD')) subject = decodeRawHeader(raw, 'subject') ?? subject;
  const classification = classify(headers, from?.address ?? null, contentType);
  // Everything parsed becomes storable in one place (storable.ts), the message key included.
  return storableMessage(
    {
      messageId,
      references: threadReferences(mail.inReplyTo, mail.references),
      from,
      to: addresses(mail.to),
      cc: addresses(mail.cc),
      subject,
      text,
      html,
      replyText: extractReply(text),
      attachments,
      classification,
      bouncedMessageId: classification.bounce ? bouncedMessageIdOf(attachments) : null,
    },
    () => generatedKey(raw),
  );
}

/** The header block of a raw message (kept for over-size mail, whose body is not stored). */
export function headerBlock(raw: Buffer, limit = 64 * 1024): Buffer {
  const text = raw.subarray(0, limit).toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  return raw.subarray(0, end < 0 ? Math.min(raw.length, limit) : end);
}
