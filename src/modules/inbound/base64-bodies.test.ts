import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { type ParsedMail, simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { corpusMessage } from '../../../bench/inbound-load.ts';
import { decodedLength, parseEliding, parseMail } from './base64-bodies.ts';

const OPTIONS = { skipImageLinks: true, skipTextToHtml: true, keepCidLinks: true, checksumAlgo: 'sha256' };

/** Everything mailparser reports, in comparable form (a missing or invalid Date reads as "now"). */
function comparable(mail: ParsedMail): unknown {
  const now = (v: unknown) => (v instanceof Date && Math.abs(v.getTime() - Date.now()) < 60_000 ? 'now' : v);
  const headers = (h: Map<string, unknown>) => JSON.stringify([...h].map(([k, v]) => [k, now(v)]));
  return {
    ...mail,
    date: now(mail.date),
    headers: headers(mail.headers),
    attachments: mail.attachments.map((a) => ({
      ...a,
      headers: headers(a.headers),
      content: a.content.toString('base64'),
    })),
  };
}

async function expectSameAsMailparser(raw: Buffer): Promise<void> {
  const plain = await simpleParser(raw, OPTIONS).then(comparable, (err: Error) => `error: ${err.message}`);
  const ours = await parseMail(raw, OPTIONS).then(comparable, (err: Error) => `error: ${err.message}`);
  expect(ours).toEqual(plain);
}

/** Deterministic bytes (xorshift), so a failure can be replayed. */
function bytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed * 2654435761 + 7;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const wrap = (text: string, width: number, eol: string) =>
  Array.from({ length: Math.ceil(text.length / width) }, (_, i) =>
    text.slice(i * width, (i + 1) * width),
  ).join(eol);

/** A message with one large base64 part (as a top-level body or the second of three parts). */
function message(opts: {
  body: string;
  eol: string;
  contentType: string;
  inline: boolean;
  top: boolean;
}): Buffer {
  const disposition = opts.inline ? 'inline' : 'attachment; filename="data.bin"';
  const lines = opts.top
    ? [
        'From: a@example.com',
        'Subject: top',
        `Content-Type: ${opts.contentType}`,
        `Content-Disposition: ${disposition}`,
        'Content-Transfer-Encoding: base64',
        '',
        opts.body,
        '',
      ]
    : [
        'From: a@example.com',
        'Subject: parts',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="zz"',
        '',
        '--zz',
        'Content-Type: text/plain',
        '',
        'hello',
        '--zz',
        `Content-Type: ${opts.contentType}`,
        `Content-Disposition: ${disposition}`,
        'Content-Transfer-Encoding: base64',
        '',
        opts.body,
        '--zz',
        'Content-Type: application/octet-stream',
        'Content-Transfer-Encoding: BASE64',
        '',
        wrap(bytes(30_000, 99).toString('base64'), 76, opts.eol),
        '--zz--',
        '',
      ];
  return Buffer.from(lines.join(opts.eol), 'latin1');
}

describe('large base64 bodies decoded outside mailparser', () => {
  it('gives what mailparser gives for the benchmark corpus, and takes the short way for its attachments', async () => {
    for (let i = 0; i < 60; i++) {
      const { raw, kind } = corpusMessage(i, 'b64', false);
      await expectSameAsMailparser(raw);
      if (kind !== 'small') expect(await parseEliding(raw, OPTIONS)).toBeDefined();
    }
  });

  it('gives what mailparser gives for well-formed and malformed bodies alike', async () => {
    const shapes: [string, (body: string, eol: string) => string][] = [
      ['as written', (b) => b],
      ['without padding', (b) => b.replace(/=+$/, '')],
      ['a line of junk first', (b, eol) => `junk!${eol}${b}`],
      ['more base64 after a blank line', (b, eol) => `${b}${eol}${eol}QUJD`],
      ['padding in the middle', (b) => `${b.slice(0, 5000)}=${b.slice(5000)}`],
      ['URL-safe characters', (b) => `${b.slice(0, 7000)}-_${b.slice(7000)}`],
      ['three padding characters', (b) => `${b}===`],
      ['a stray character in a line', (b) => `${b.slice(0, 9000)}!${b.slice(9000)}`],
      ['a space at a line end', (b, eol) => b.replace(eol, ` ${eol}`)],
      ['cut inside a quartet', (b) => b.replace(/=+$/, '').slice(0, -1)],
      // mailparser completes the last group with the stray character; the short way must not differ.
      ['unpadded, a stray character on the next line', (b, eol) => `${b.replace(/=+$/, '')}${eol}A`],
    ];
    let seed = 1;
    for (const [, shape] of shapes)
      for (const eol of ['\r\n', '\n'])
        for (const width of [76, 64, 1000])
          for (const [contentType, inline, top] of [
            ['application/octet-stream', false, false],
            ['image/png', true, false],
            ['text/plain', true, false],
            ['message/rfc822', false, false],
            ['application/pdf', false, true],
            ['text/plain', true, true],
          ] as const) {
            const encoded = bytes(20_000 + seed * 7, seed++).toString('base64');
            const body = shape(wrap(encoded, width, eol), eol);
            await expectSameAsMailparser(message({ body, eol, contentType, inline, top }));
          }
  });

  it('takes the short way only where the body is base64 and nothing else', async () => {
    const encoded = wrap(bytes(40_000, 5).toString('base64'), 76, '\r\n');
    const attachment = (body: string) =>
      message({ body, eol: '\r\n', contentType: 'application/octet-stream', inline: false, top: false });
    expect(await parseEliding(attachment(encoded), OPTIONS)).toBeDefined();
    expect(await parseEliding(attachment(`QUJD!\r\n\r\n${encoded}`), OPTIONS)).toBeUndefined();
    // An inline text part is text, not an attachment: mailparser decodes it as always.
    const text = message({ body: encoded, eol: '\r\n', contentType: 'text/plain', inline: true, top: false });
    expect(await parseEliding(text, OPTIONS)).toBeUndefined();
    await expectSameAsMailparser(text);
  });

  it('reads crafted mail in linear time: many small base64-looking bodies fall back to mailparser', async () => {
    // Thousands of tiny candidate bodies, each announced as base64, in 4 MiB and no "_": the search
    // once looked for "-" and "_" from each candidate to the end of the message (16 s for this one).
    const unit = 'Content-Transfer-Encoding: base64\n' + '\nQUJD\n'.repeat(1000);
    const raw = Buffer.from(
      `From: a@example.com\nSubject: crafted\nContent-Type: text/plain\n\n${unit.repeat(Math.ceil((4 << 20) / unit.length))}`,
      'latin1',
    );
    expect(await parseEliding(raw, OPTIONS)).toBeUndefined();
    await expectSameAsMailparser(raw);
  });

  it('leaves cid: links to mailparser when it is asked to turn them into data: URIs', async () => {
    const raw = Buffer.from(
      [
        'From: a@example.com',
        'Subject: related',
        'MIME-Version: 1.0',
        'Content-Type: multipart/related; boundary="rr"',
        '',
        '--rr',
        'Content-Type: text/html',
        '',
        '<p><img src="cid:img1@example.com"></p>',
        '--rr',
        'Content-Type: image/png',
        'Content-ID: <img1@example.com>',
        'Content-Disposition: inline',
        'Content-Transfer-Encoding: base64',
        '',
        wrap(bytes(30_000, 3).toString('base64'), 76, '\r\n'),
        '--rr--',
        '',
      ].join('\r\n'),
    );
    const options = { skipTextToHtml: true, checksumAlgo: 'sha256' };
    expect(await parseEliding(raw, options)).toBeUndefined();
    const plain = comparable(await simpleParser(raw, options));
    expect(comparable(await parseMail(raw, options))).toEqual(plain);
    expect(await parseEliding(raw, OPTIONS)).toBeDefined();
  });

  it("relies on Node's decoder taking no character outside the alphabet as data but - and _", () => {
    const alphabet = /[A-Za-z0-9+/]/;
    for (const size of [3001, 3002]) {
      const text = bytes(size, size).toString('base64').replace(/=+$/, '');
      for (let code = 0; code < 256; code++) {
        const char = String.fromCharCode(code);
        if (alphabet.test(char)) continue;
        for (const at of [0, 1, 77, text.length >> 1, text.length]) {
          const decoded = Buffer.from(text.slice(0, at) + char + text.slice(at), 'base64');
          if (char === '-' || char === '_') expect(decoded.length).toBe(decodedLength(text.length + 1));
          else expect(decoded.length).toBeLessThan(decodedLength(text.length + 1)!);
        }
      }
    }
  });

  const corpus = path.resolve('..', 'shared', 'corpus', 'zammad');
  it.skipIf(!existsSync(corpus))('gives what mailparser gives for the real-world corpus', async () => {
    for (const file of (await readdir(corpus)).filter((f) => f.endsWith('.box')))
      await expectSameAsMailparser(await readFile(path.join(corpus, file)));
  });
});
