// mailparser decodes a base64 body line by line in JavaScript (its splitter walks every byte and
// slices every line; the decoder filters each chunk with a regular expression): about 12 ms per MB,
// the largest single cost of processing mail with attachments, where Node's own base64 decoder needs
// well under 1 ms. Large base64 bodies are therefore taken out of the parser's way and decoded
// natively, with mailparser's result unchanged:
//
// 1. A body that starts right after a blank line and is nothing but base64 text (lines of one width
//    and one kind of line break, a shorter last line, the letters, digits, + and / and at most two =
//    at its very end) is decoded natively and replaced by one line of 64 random base64 characters,
//    its marker.
// 2. mailparser parses that smaller message. Nothing it decides depends on such a body: those lines
//    can be neither boundaries (no "--") nor anything but the body they are in, and both decoders
//    skip the line breaks.
// 3. Each marker must come back as the whole content of exactly one attachment: then that part's
//    body was exactly that base64 text (anything else in it would have changed the bytes of a
//    marker nobody can guess), and its content is the native decoding of the text, which for such
//    text is byte for byte what mailparser's decoder gives. The checksum is computed again.
//
// When a marker ends up anywhere else (a text part, two attachments, none), the message is parsed
// as it was, whole.
//
// The characters of a body are not checked one by one (a regular expression over them cost more
// than the decoding): Node's decoder skips, or stops at, every character outside the base64
// alphabet (tested in base64-bodies.test.ts), so a body whose decoding is as long as its count of
// characters says has none, once - and _ (which Node reads as URL-safe base64) are ruled out.
import { createHash, randomBytes } from 'node:crypto';
import { type ParsedMail, simpleParser } from 'mailparser';

type ParserOptions = NonNullable<Parameters<typeof simpleParser>[1]>;

/** Bodies smaller than this are left to the parser (the saving would not pay for the detour). */
const MIN_BODY_CHARS = 16 * 1024;
/** How far before a body its part's Content-Transfer-Encoding header is looked for. */
const HEADER_LOOKBACK = 8 * 1024;
/**
 * Characters the search may read, as a multiple of the message's length. Bodies do not overlap, so
 * ordinary mail reads each character about once; crafted mail that would make the search read the
 * same stretch again and again (many candidate bodies over one run of equal-width lines) stops it,
 * and the message is parsed whole by mailparser, which is linear.
 */
const READ_BUDGET = 4;

interface ElidedBody {
  /** The decoded marker, as the parser will report it. */
  marker: Buffer;
  /** The decoded body. */
  content: Buffer;
}

const BLANK_LINE = /\n\r?\n/g;
const BASE64_HEADER = /content-transfer-encoding:[ \t]*(?:\r?\n[ \t]+)?base64\b/i;
const LAST_LINE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Bytes that n base64 characters (no padding) decode to; undefined for a count no encoder makes. */
export function decodedLength(n: number): number | undefined {
  return n % 4 === 1 ? undefined : Math.floor(n / 4) * 3 + [0, 0, 1, 2][n % 4]!;
}

/**
 * The base64 body that starts at `start`, decoded: `dataEnd` is where its text ends, `end` where
 * its last line break ends. Undefined unless it has the shape and characters described above.
 */
function base64BodyAt(
  text: string,
  start: number,
  budget: { left: number },
): { content: Buffer; dataEnd: number; end: number } | undefined {
  const firstBreak = text.indexOf('\n', start);
  if (firstBreak < 0) return undefined;
  budget.left -= firstBreak - start;
  const crlf = text.charCodeAt(firstBreak - 1) === 0x0d;
  const eol = crlf ? 2 : 1;
  const width = firstBreak - start - (eol - 1);
  if (width < 4 || width > 998) return undefined;
  // Whole lines: a line break where the width puts it (what lies between is checked by decoding).
  let at = start;
  let lines = 0;
  while (text.charCodeAt(at + width + eol - 1) === 0x0a && (!crlf || text.charCodeAt(at + width) === 0x0d)) {
    at += width + eol;
    lines++;
  }
  budget.left -= at - start;
  let dataEnd = at - eol;
  let end = at;
  // A shorter last line, if the next line is one.
  let next = text.indexOf('\n', at);
  if (next < 0) next = text.length;
  budget.left -= next - at;
  const lastEnd = crlf && text.charCodeAt(next - 1) === 0x0d ? next - 1 : next;
  if (lastEnd > at && lastEnd - at < width && LAST_LINE.test(text.slice(at, lastEnd))) {
    dataEnd = lastEnd;
    end = Math.min(next + 1, text.length);
  }
  if (dataEnd - start < MIN_BODY_CHARS) return undefined;
  let padding = 0;
  while (padding < 2 && text.charCodeAt(dataEnd - 1 - padding) === 0x3d) padding++;
  const chars = dataEnd - start - (end === at ? lines - 1 : lines) * eol - padding;
  const expected = decodedLength(chars);
  // Whole groups of four only: mailparser's streaming decoder would complete an unfinished last
  // group with base64 characters that follow the body (a stray line before the boundary), and the
  // marker, a whole group, would hide that.
  if (expected === undefined || (chars + padding) % 4 !== 0) return undefined;
  const body = text.slice(start, dataEnd);
  budget.left -= 2 * body.length;
  if (body.includes('-') || body.includes('_')) return undefined;
  const content = Buffer.from(body, 'base64');
  return content.length === expected ? { content, dataEnd, end } : undefined;
}

/** The message with its large base64 bodies replaced by markers; undefined when it has none. */
function elideBase64Bodies(raw: Buffer): { raw: Buffer; bodies: ElidedBody[] } | undefined {
  if (raw.length < MIN_BODY_CHARS) return undefined;
  const text = raw.toString('latin1');
  const pieces: Buffer[] = [];
  const bodies: ElidedBody[] = [];
  let copied = 0;
  const budget = { left: READ_BUDGET * text.length };
  BLANK_LINE.lastIndex = 0;
  for (let m = BLANK_LINE.exec(text); m; m = BLANK_LINE.exec(text)) {
    if (budget.left < 0) return undefined;
    const start = m.index + m[0].length;
    if (start + MIN_BODY_CHARS >= text.length) break; // no room left for a large body
    // Large and base64-shaped (cheap to rule out), then announced as base64 by the part's header.
    const body = base64BodyAt(text, start, budget);
    if (!body) continue;
    const headers = text.slice(Math.max(copied, start - HEADER_LOOKBACK), start);
    budget.left -= headers.length;
    if (!BASE64_HEADER.test(headers)) continue;
    const marker = randomBytes(48);
    // The body's own last line break stays, so the lines around the marker end as they did.
    pieces.push(
      raw.subarray(copied, start),
      Buffer.from(marker.toString('base64') + text.slice(body.dataEnd, body.end), 'latin1'),
    );
    bodies.push({ marker, content: body.content });
    copied = body.end;
    BLANK_LINE.lastIndex = Math.max(body.end - 1, start);
  }
  if (bodies.length === 0) return undefined;
  pieces.push(raw.subarray(copied));
  return { raw: Buffer.concat(pieces), bodies };
}

/**
 * Puts the decoded bodies into the attachments their markers came back as. False, with nothing
 * changed, unless every marker is the whole content of exactly one attachment.
 */
function restoreBodies(mail: ParsedMail, bodies: ElidedBody[], checksumAlgo: string | false): boolean {
  const targets = bodies.map((b) => mail.attachments.filter((a) => b.marker.equals(a.content)));
  if (targets.some((t) => t.length !== 1)) return false;
  targets.forEach(([attachment], i) => {
    const content = bodies[i]!.content;
    attachment!.content = content;
    attachment!.size = content.length;
    // As mailparser: no checksum when told not to hash.
    if (checksumAlgo !== false) attachment!.checksum = createHash(checksumAlgo).update(content).digest('hex');
  });
  return true;
}

/**
 * The parse of a message whose large base64 bodies were taken out (see above); undefined when it
 * has none, or when a marker did not come back as exactly one attachment's whole content.
 */
export async function parseEliding(raw: Buffer, options: ParserOptions): Promise<ParsedMail | undefined> {
  // Unless told to keep them, mailparser rewrites cid: links in the HTML into data: URIs of the
  // content it parsed, which would be a marker's.
  if (!options.keepCidLinks && !options.skipImageLinks) return undefined;
  const elided = elideBase64Bodies(raw);
  if (!elided) return undefined;
  const mail = await simpleParser(elided.raw, options).catch(() => undefined);
  return mail && restoreBodies(mail, elided.bodies, options.checksumAlgo ?? 'md5') ? mail : undefined;
}

/**
 * mailparser's simpleParser, with large base64 bodies decoded natively (see above): the same
 * result, at a fraction of the CPU for mail with attachments.
 */
export async function parseMail(raw: Buffer, options: ParserOptions): Promise<ParsedMail> {
  return (await parseEliding(raw, options)) ?? simpleParser(raw, options);
}
