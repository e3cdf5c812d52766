// mailparser decodes a base64 body line by line in JavaScript (its splitter walks every byte and
// slices every line; the decoder filters each chunk with a regular expression): about 12 ms per MB,
// the largest single cost of processing mail with attachments, where Node's own base64 decoder needs
// well under 1 ms. Large base64 bodies are therefore taken out of the parser's way and decoded
// natively, with mailparser's result unchanged:
//
// 1. A body that starts right after a blank line and is nothing but base64 text (the letters,
//    digits, + and /, line breaks, at most two = at its very end, then a line break or the end of
//    the message) is replaced by one line of 64 random base64 characters, its marker.
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
import { createHash, randomBytes } from 'node:crypto';
import { type ParsedMail, simpleParser } from 'mailparser';

type ParserOptions = NonNullable<Parameters<typeof simpleParser>[1]>;

/** Bodies smaller than this are left to the parser (the saving would not pay for the detour). */
const MIN_BODY_CHARS = 16 * 1024;
/** How far before a body its part's Content-Transfer-Encoding header is looked for. */
const HEADER_LOOKBACK = 8 * 1024;

interface ElidedBody {
  /** The decoded marker, as the parser will report it. */
  marker: Buffer;
  /** The base64 text the marker stands for, line breaks included. */
  text: string;
}

const BLANK_LINE = /\n\r?\n/g;
const BASE64_RUN = /[A-Za-z0-9+/\r\n]*/y;
const PADDING = /={1,2}(?=\r?\n|$)/y;
const BASE64_HEADER = /content-transfer-encoding:[ \t]*(?:\r?\n[ \t]+)?base64\b/i;

/** The message with its large base64 bodies replaced by markers; undefined when it has none. */
export function elideBase64Bodies(raw: Buffer): { raw: Buffer; bodies: ElidedBody[] } | undefined {
  if (raw.length < MIN_BODY_CHARS) return undefined;
  const text = raw.toString('latin1');
  const pieces: Buffer[] = [];
  const bodies: ElidedBody[] = [];
  let copied = 0;
  BLANK_LINE.lastIndex = 0;
  for (let m = BLANK_LINE.exec(text); m; m = BLANK_LINE.exec(text)) {
    const start = m.index + m[0].length;
    BASE64_RUN.lastIndex = start;
    BASE64_RUN.exec(text);
    let end = BASE64_RUN.lastIndex;
    PADDING.lastIndex = end;
    if (PADDING.exec(text)) {
      end = PADDING.lastIndex;
      if (text.charCodeAt(end) === 0x0d) end++;
      if (text.charCodeAt(end) === 0x0a) end++;
    } else if (end < text.length && text.charCodeAt(end - 1) !== 0x0a) {
      // The base64 text stops inside a line: not a body of this shape.
      BLANK_LINE.lastIndex = Math.max(end, BLANK_LINE.lastIndex);
      continue;
    }
    if (
      end - start < MIN_BODY_CHARS ||
      !BASE64_HEADER.test(text.slice(Math.max(copied, start - HEADER_LOOKBACK), start))
    ) {
      BLANK_LINE.lastIndex = Math.max(end - 1, BLANK_LINE.lastIndex);
      continue;
    }
    // Keep the body's own last line break, so the lines around the marker end as they did.
    let body = end;
    while (body > start && (text.charCodeAt(body - 1) === 0x0a || text.charCodeAt(body - 1) === 0x0d)) body--;
    const marker = randomBytes(48);
    pieces.push(
      raw.subarray(copied, start),
      Buffer.from(marker.toString('base64') + text.slice(body, end), 'latin1'),
    );
    bodies.push({ marker, text: text.slice(start, body) });
    copied = end;
    BLANK_LINE.lastIndex = Math.max(end - 1, start);
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
    const content = Buffer.from(bodies[i]!.text, 'base64');
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
