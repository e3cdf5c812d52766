// Robustness run over the real-world mail corpus in ../shared/corpus/zammad (another help desk's
// test mails; AGPL test data, read in place and never copied). Skips when the folder is absent.
// Every message must reach an outcome (created, appended, duplicate or skipped with a reason), the
// sender, subject and attachment names must match the expectations where they give them, and a
// second run must produce only duplicates.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseMessage } from '../src/modules/inbound/mime.ts';
import { SUBJECT_MAX } from '../src/modules/inbound/storable.ts';
import { ingestRawMessage } from '../src/modules/inbound/process.ts';
import { messageIdKey } from '../src/modules/inbound/signing.ts';
import { createLogger } from '../src/platform/logging.ts';
import { type TestApp, useTestApp } from './app.ts';

const CORPUS = path.resolve('..', 'shared', 'corpus', 'zammad');
const present = existsSync(CORPUS);

interface Expectation {
  from_email?: string;
  subject?: string;
  attachments?: { filename?: string }[];
}

// Where Zammad's expectation is a quirk of Zammad rather than a fact about the mail, the difference
// is listed here with the reason; anything else that differs fails the test.
const KNOWN_DIFFERENCES: Record<string, string> = {
  'mail071.box: from system@example.com ≠ power quadrant system@example.com':
    "Zammad's from_email holds the display name and the address; the address is system@example.com",
  'mail087.box: from test@example.com ≠ Test test@example.com': 'as above: display name plus address',
  'mail076.box: from "Millions Lottery Spain transfer"@example.com ≠ "Millions Lottery Spain transfer"@example.com>':
    'Zammad keeps the stray ">" of a malformed From header in the address',
  'mail117.box: from =?utf-8?Q?attacker?Q?agent?=@victim.example ≠ attacker?Q?agent@victim.example':
    'RFC 2047 §5 forbids encoded-words in an address; decoding one lets a sender forge the address, so it stays literal',
  'mail087.box: attachment file missing (got fax_1234.pdf)':
    'Zammad also stores the text/plain body part as a file named "file"',
  'mail105.box: attachment file missing (got )':
    'as above: the text/plain body is the message text, not an attachment',
  'mail092.box: attachment Mail.eml missing (got Delivery report.txt, Undelivered Message.eml)':
    'the same report structure as mail055, where Zammad names the part by its Content-Description as Relaydesk does',
};

async function expectationOf(box: string): Promise<Expectation | undefined> {
  const file = path.join(CORPUS, box.replace(/\.box$/, '.yml'));
  if (!existsSync(file)) return undefined;
  // The files carry Ruby type tags; read them as plain maps.
  return parse((await readFile(file, 'utf8')).replace(/!ruby\/[^\s]+/g, ''), {
    strict: false,
    logLevel: 'silent',
  }) as Expectation;
}

describe.skipIf(!present)('zammad corpus', { timeout: 120_000 }, () => {
  let t: TestApp;
  let files: string[];
  let mailboxId: string;
  const deps = () => ({
    pool: t.db.pool,
    messageIdKey: messageIdKey(Buffer.alloc(32, 1)),
    secretKey: Buffer.alloc(32, 1),
    logger: createLogger('silent'),
    clock: t.clock,
  });

  beforeAll(async () => {
    t = await useTestApp();
    await t.queue.boss.createQueue('inbound.process');
    files = (await readdir(CORPUS)).filter((f) => f.endsWith('.box')).sort();
    mailboxId = (
      await t.call(t.a.adminToken.token, 'POST', '/api/v1/mailboxes', {
        kind: 'mime',
        address: 'corpus@helpdesk.test',
      })
    ).body.id;
  });

  it('parses every message, with sender, subject and attachment names as expected', async () => {
    expect(files.length).toBe(87);
    const mismatches: string[] = [];
    for (const file of files) {
      const parsed = await parseMessage(await readFile(path.join(CORPUS, file)));
      const exp = await expectationOf(file);
      if (!exp) continue;
      if (
        exp.from_email &&
        exp.from_email.includes('@') &&
        parsed.from?.address.toLowerCase() !== exp.from_email.toLowerCase()
      ) {
        mismatches.push(`${file}: from ${parsed.from?.address} ≠ ${exp.from_email}`);
      }
      // Subjects are kept up to RFC 5322's line length (storable.ts); Zammad keeps any length.
      const subject =
        typeof exp.subject === 'string' ? exp.subject.trim().slice(0, SUBJECT_MAX).trim() : null;
      if (subject !== null && parsed.subject !== subject) {
        mismatches.push(`${file}: subject ${JSON.stringify(parsed.subject)} ≠ ${JSON.stringify(subject)}`);
      }
      const expected = (exp.attachments ?? [])
        .map((a) => a.filename)
        .filter((n): n is string => typeof n === 'string' && n !== 'message.html');
      const got = parsed.attachments.map((a) => a.filename);
      for (const name of expected)
        if (!got.includes(name))
          mismatches.push(`${file}: attachment ${name} missing (got ${got.join(', ')})`);
    }
    expect(mismatches.filter((m) => !(m in KNOWN_DIFFERENCES))).toEqual([]);
    // The list of known differences stays true: each one still happens.
    expect(Object.keys(KNOWN_DIFFERENCES).filter((m) => !mismatches.includes(m))).toEqual([]);
  });

  it('ingests every message to an outcome, and only duplicates the second time', async () => {
    const first: Record<string, string> = {};
    for (const file of files) {
      const raw = await readFile(path.join(CORPUS, file));
      const outcome = await ingestRawMessage(deps(), t.queue, { tenantId: t.a.tenant.id, mailboxId, raw });
      expect(
        ['created', 'appended', 'duplicate', 'skipped'],
        `${file}: ${outcome.status} ${outcome.reason}`,
      ).toContain(outcome.status);
      if (outcome.status === 'skipped') expect(outcome.reason, file).toBeTruthy();
      first[file] = outcome.status;
    }
    const created = Object.values(first).filter((s) => s === 'created' || s === 'appended').length;
    expect(created).toBeGreaterThan(60);
    for (const file of files) {
      const raw = await readFile(path.join(CORPUS, file));
      const outcome = await ingestRawMessage(deps(), t.queue, { tenantId: t.a.tenant.id, mailboxId, raw });
      expect(outcome.status, file).toBe('duplicate');
    }
    // No half-written tickets: every ticket has its first message.
    const { rows } = await t.db.admin.query(
      'SELECT count(*)::int AS n FROM tickets t WHERE t.tenant_id = $1 AND NOT EXISTS (SELECT 1 FROM ticket_messages m WHERE m.tenant_id = t.tenant_id AND m.ticket_id = t.id)',
      [t.a.tenant.id],
    );
    expect(rows[0].n).toBe(0);
  });
});
