// Hostile mail through the real pipeline: the raw-MIME API (and the CLI's ingest, and a Graph
// mailbox fetching from the simulator) into a real queue, worked by real inbound workers. Every
// class of mail that PostgreSQL could not store, that outgrew an index, or that made the parser or
// the reply extraction run for ever, must end in a clear outcome at its first attempt: stored with
// the offending parts made safe (and the record saying so), or quarantined with its reason. Never a
// retry, never the dead-letter queue.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GraphSimulator, startGraphSimulator } from '../../../simulators/graph.ts';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { createLogger } from '../../platform/logging.ts';
import { JobQueue } from '../../platform/queue/queue.ts';
import { JobRegistry } from '../../platform/queue/registry.ts';
import { processInboundJob } from './job-refs.ts';
import { inboundJobs } from './jobs.ts';
import { recordGraphSubscription } from './mailboxes.ts';
import { ingestRawMessage } from './process.ts';
import { GraphClient } from './providers/graph/client.ts';

let t: TestApp;
let workers: JobQueue;
let mailboxId: string;
let token: string;

let seq = 0;
/** A raw message; header text is written byte for byte (latin1), so '\0' is a NUL byte. */
function mail(o: {
  from?: string;
  to?: string;
  cc?: string;
  subject?: string;
  messageId?: string | null;
  headers?: string[];
  contentType?: string;
  body?: string | Buffer;
}): Buffer {
  seq++;
  const head = [
    `From: ${o.from ?? 'Customer <customer@example.org>'}`,
    `To: ${o.to ?? 'support@hostile.test'}`,
    ...(o.cc === undefined ? [] : [`Cc: ${o.cc}`]),
    `Subject: ${o.subject ?? `Hostile ${seq}`}`,
    ...(o.messageId === null
      ? []
      : [`Message-ID: ${o.messageId ?? `<hostile-${seq}-${rand(6)}@example.org>`}`]),
    ...(o.headers ?? []),
    'MIME-Version: 1.0',
    `Content-Type: ${o.contentType ?? 'text/plain; charset=utf-8'}`,
    '',
    '',
  ].join('\r\n');
  const body = o.body ?? `Message ${seq}.`;
  return Buffer.concat([
    Buffer.from(head, 'latin1'),
    Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1'),
  ]);
}

/** Random text that does not compress (so an index cannot hold it by compressing it). */
const rand = (chars: number) =>
  randomBytes(Math.ceil((chars * 3) / 4) + 3)
    .toString('base64url')
    .slice(0, chars);
const b64 = (bytes: number[] | Buffer) => Buffer.from(bytes).toString('base64');
const withAttachment = (disposition: string, contentType = 'application/octet-stream', extra = '') =>
  mail({
    contentType: 'multipart/mixed; boundary="b"',
    body: [
      '--b',
      'Content-Type: text/plain',
      '',
      'See the attachment.',
      '--b',
      `Content-Type: ${contentType}`,
      `Content-Disposition: ${disposition}`,
      ...(extra ? [extra] : []),
      '',
      'root:x:0:0',
      '--b--',
      '',
    ].join('\r\n'),
  });
function nested(depth: number): string {
  let part = 'Content-Type: text/plain\r\n\r\ninnermost';
  for (let i = depth; i > 0; i--)
    part = `Content-Type: multipart/mixed; boundary="n${i}"\r\n\r\n--n${i}\r\n${part}\r\n--n${i}--\r\n`;
  return part;
}

async function upload(raw: Buffer): Promise<string> {
  const res = await t.app.inject({
    method: 'POST',
    url: `/api/v1/mailboxes/${mailboxId}/messages`,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'message/rfc822' },
    payload: raw,
  });
  expect(res.statusCode).toBe(202);
  return res.json().inboundId as string;
}

interface RecordRow {
  id: string;
  status: string;
  reason: string | null;
  attempts: number;
  ticket_id: string | null;
  ticket_message_id: string | null;
  message_key: string | null;
}

/** The record once it ended (or once a failure put it back in the queue, which fails the test). */
async function ended(inboundId: string): Promise<RecordRow> {
  const read = async () =>
    (
      await t.db.admin.query<RecordRow>(
        'SELECT id, status, reason, attempts, ticket_id, ticket_message_id, message_key FROM inbound_messages WHERE id = $1',
        [inboundId],
      )
    ).rows[0]!;
  await expect
    .poll(
      async () => {
        const r = await read();
        return !['queued', 'processing'].includes(r.status) || (r.reason ?? '').startsWith('retrying');
      },
      { timeout: 20_000, interval: 50 },
    )
    .toBe(true);
  return read();
}

const messageOf = async (record: RecordRow) =>
  (
    await t.db.admin.query(
      `SELECT m.body_text, m.body_html, m.reply_text, m.mail_subject, m.mail_to, m.mail_cc, m.classification,
              m.rfc_message_id, t.subject AS ticket_subject, p.display_name AS author_name,
              coalesce((SELECT json_agg(json_build_object('filename', a.filename, 'contentType', a.content_type,
                                                          'contentId', a.content_id) ORDER BY a.created_at)
                          FROM attachments a WHERE a.tenant_id = m.tenant_id AND a.message_id = m.id), '[]') AS attachments
         FROM ticket_messages m JOIN tickets t ON t.tenant_id = m.tenant_id AND t.id = m.ticket_id
         JOIN people p ON p.tenant_id = m.tenant_id AND p.id = m.author_id
        WHERE m.id = $1`,
      [record.ticket_message_id],
    )
  ).rows[0];

beforeAll(async () => {
  t = await useTestApp();
  token = t.a.adminToken.token;
  // The inbound workers, with the queue as a worker process makes it (retries, dead-letter queue).
  workers = new JobQueue({
    connectionString: t.db.url,
    logger: createLogger('silent'),
    registry: new JobRegistry().register(...inboundJobs(t.inboundDeps())),
    supervise: true,
    schedule: false,
    poolSize: 4,
  });
  await workers.start();
  await workers.ensureQueues();
  await workers.startWorkers([processInboundJob.name]);
  mailboxId = (
    await t.call(token, 'POST', '/api/v1/mailboxes', { kind: 'mime', address: 'support@hostile.test' })
  ).body.id;
});

afterAll(async () => {
  await workers?.stop({ graceful: false });
});

describe('hostile mail', () => {
  it('with NULs in body, subject, Message-ID, In-Reply-To, From name and attachment names is stored made safe', async () => {
    const nulId = `<nul\0id-${rand(8)}@example.org>`;
    const cases = {
      body: mail({ body: 'Before\0after, and a NUL\0 again.' }),
      subject: mail({ subject: 'Printer\0on fire' }),
      encodedSubject: mail({ subject: `=?utf-8?B?${b64(Buffer.from('Encoded\0NUL'))}?=` }),
      messageId: mail({ messageId: nulId }),
      inReplyTo: mail({ headers: [`In-Reply-To: <unknown\0parent@example.org>`] }),
      fromName: mail({ from: `=?utf-8?B?${b64(Buffer.from('Ann\0Bee'))}?= <ann.nul@example.org>` }),
      attachment: withAttachment('attachment; filename="../../etc/passwd\0.txt"'),
      encodedAttachment: withAttachment(`attachment; filename*=utf-8''..%2F..%2Fetc%2Fpasswd%00.txt`),
      attachmentType: withAttachment(
        'attachment; filename="ok.bin"',
        'application/x\0evil',
        'Content-ID: <c\0id@x>',
      ),
    };
    const ids = Object.fromEntries(
      await Promise.all(Object.entries(cases).map(async ([name, raw]) => [name, await upload(raw)] as const)),
    );
    const records = Object.fromEntries(
      await Promise.all(Object.entries(ids).map(async ([name, id]) => [name, await ended(id)] as const)),
    ) as Record<keyof typeof cases, RecordRow>;
    for (const [name, r] of Object.entries(records))
      expect(r, name).toMatchObject({ status: 'created', attempts: 1 });

    const body = await messageOf(records.body);
    expect(body.body_text).toBe('Before\uFFFDafter, and a NUL\uFFFD again.');
    expect(records.body.reason).toBe('sanitised: NUL in body replaced');
    expect((await messageOf(records.subject)).ticket_subject).toBe('Printer\uFFFDon fire');
    expect(records.subject.reason).toBe('sanitised: NUL in subject replaced');
    expect((await messageOf(records.encodedSubject)).ticket_subject).toBe('Encoded\uFFFDNUL');
    expect(records.messageId.message_key).toMatch(/^nul\uFFFDid-.*@example\.org$/);
    expect((await messageOf(records.messageId)).rfc_message_id).toContain('\uFFFD');
    expect(records.inReplyTo.reason).toContain('NUL in references replaced');
    expect((await messageOf(records.fromName)).author_name).toBe('Ann\uFFFDBee');
    const attached = await messageOf(records.attachment);
    expect(attached.attachments.map((a: { filename: string }) => a.filename)).toEqual(['passwd\uFFFD.txt']);
    expect(attached.classification.sanitised).toEqual([
      'directory part of attachment name removed',
      'NUL in attachment name replaced',
    ]);
    expect((await messageOf(records.encodedAttachment)).attachments[0].filename).toBe('passwd\uFFFD.txt');
    expect((await messageOf(records.attachmentType)).attachments).toEqual([
      { filename: 'ok.bin', contentType: 'application/octet-stream', contentId: null },
    ]);

    // The same bytes again are a duplicate; a reply naming the NUL Message-ID threads onto its ticket.
    const again = await ended(await upload(cases.messageId));
    expect(again).toMatchObject({ status: 'duplicate', ticket_id: records.messageId.ticket_id });
    const reply = await ended(await upload(mail({ subject: 'Re: NUL', headers: [`In-Reply-To: ${nulId}`] })));
    expect(reply).toMatchObject({ status: 'appended', ticket_id: records.messageId.ticket_id });
  });

  it('with Message-IDs and References of 8 KB is keyed by their hash, deduplicated and threaded', async () => {
    const longId = `<${rand(8192)}@example.org>`;
    const parent = await ended(await upload(mail({ messageId: longId, subject: 'Long id' })));
    expect(parent).toMatchObject({ status: 'created', reason: null });
    expect(parent.message_key).toMatch(/^hashed-[0-9a-f]{64}@relaydesk\.invalid$/);
    // The Message-ID itself is kept as it came.
    expect((await messageOf(parent)).rfc_message_id).toBe(longId.slice(1, -1));
    expect(
      await ended(await upload(mail({ messageId: longId, subject: 'Other bytes, same id' }))),
    ).toMatchObject({
      status: 'duplicate',
      ticket_id: parent.ticket_id,
    });
    const byInReplyTo = await ended(
      await upload(mail({ subject: 'Re: Long id', headers: [`In-Reply-To: ${longId}`] })),
    );
    expect(byInReplyTo).toMatchObject({
      status: 'appended',
      reason: 'thread: message_id',
      ticket_id: parent.ticket_id,
    });
    const byReferences = await ended(
      await upload(
        mail({ subject: 'Re: Re: Long id', headers: [`References: <${rand(8192)}@example.org> ${longId}`] }),
      ),
    );
    expect(byReferences).toMatchObject({ status: 'appended', ticket_id: parent.ticket_id });
    // A References header of unknown 8 KB ids only: a new ticket.
    const unknown = await ended(await upload(mail({ headers: [`References: <${rand(8192)}@example.org>`] })));
    expect(unknown).toMatchObject({ status: 'created', reason: null });
    // A Message-ID that fits the index is kept as it is (the keys stored before stay valid).
    const fits = `${rand(2500)}@example.org`;
    expect(await ended(await upload(mail({ messageId: `<${fits}>` })))).toMatchObject({
      status: 'created',
      message_key: fits,
    });
  });

  it('with lone surrogates and bytes its charset cannot decode is stored made safe', async () => {
    // UTF-16 encoded-words that decode to lone surrogates: jsonb (mail_to, identity events) refuses them.
    const loneHigh = `=?utf-16le?B?${b64([0x41, 0x00, 0x00, 0xd8, 0x42, 0x00])}?=`;
    const loneLow = `=?utf-16le?B?${b64([0x41, 0x00, 0x00, 0xdc])}?=`;
    const surrogates = await ended(
      await upload(
        mail({
          from: `${loneHigh} <lone.surrogate@example.org>`,
          to: `${loneLow} <support@hostile.test>`,
          subject: loneHigh,
          contentType: 'text/plain; charset=utf-16le',
          body: Buffer.from([0x00, 0xd8, 0x41, 0x00]),
        }),
      ),
    );
    expect(surrogates.status).toBe('created');
    expect(surrogates.reason).toContain('invalid characters in sender name replaced');
    const stored = await messageOf(surrogates);
    expect(stored.author_name).toBe('A\uFFFDB');
    expect(stored.mail_to).toEqual([{ address: 'support@hostile.test', name: 'A\uFFFD' }]);
    const badBytes = await ended(
      await upload(mail({ body: Buffer.from([0x4f, 0x4b, 0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80, 0x21]) })),
    );
    expect(badBytes.status).toBe('created');
    expect((await messageOf(badBytes)).body_text).toMatch(/^OK\uFFFD+!$/);
    const entities = await ended(
      await upload(
        mail({ contentType: 'text/html; charset=utf-8', body: '<p>a&#xD800;b&#0;c&#x10FFFF;</p>' }),
      ),
    );
    expect(entities.status).toBe('created');
    expect((await messageOf(entities)).body_text).not.toMatch(/\p{Cs}|\0/u);
  });

  it('with a header of 100,000 characters, a huge name and unusable addresses is stored bounded', async () => {
    const huge = await ended(
      await upload(
        mail({
          from: `"${rand(100_000)}" <huge.name@example.org>`,
          subject: rand(100_000),
          cc: `${rand(5000)}@example.org, "Del" <d\x7fl@example.org>, kept@example.org`,
          headers: [`X-Padding: ${rand(100_000)}`],
        }),
      ),
    );
    expect(huge.status).toBe('created');
    expect(huge.reason).toBe(
      'sanitised: sender name cut to 256 characters, unusable Cc addresses dropped, subject cut to 998 characters',
    );
    const stored = await messageOf(huge);
    expect(stored.ticket_subject).toHaveLength(998);
    expect(stored.author_name).toHaveLength(256);
    expect(stored.mail_cc).toEqual([{ address: 'kept@example.org', name: '' }]);
    // A sender whose only address cannot be one (a control character, too long) is no sender at all.
    for (const from of ['Del <a\x7fb@example.org>', `<${rand(300)}@example.org>`])
      expect(await ended(await upload(mail({ from })))).toMatchObject({
        status: 'skipped',
        reason: 'no_sender',
      });
  });

  it('with deep or very many MIME parts, and a reply quoted 200,000 lines deep, ends at once', async () => {
    const deep = await ended(
      await upload(
        mail({ contentType: 'multipart/mixed; boundary="n0"', body: `--n0\r\n${nested(500)}\r\n--n0--\r\n` }),
      ),
    );
    expect(deep.status).toBe('created');
    const deeper = await ended(
      await upload(
        mail({
          contentType: 'multipart/mixed; boundary="n0"',
          body: `--n0\r\n${nested(5000)}\r\n--n0--\r\n`,
        }),
      ),
    );
    expect(deeper).toMatchObject({
      status: 'quarantined',
      reason: 'unparseable: Max allowed child nodes exceeded',
    });
    const parts = Array.from(
      { length: 1500 },
      (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`,
    );
    const many = await ended(
      await upload(
        mail({ contentType: 'multipart/mixed; boundary="b"', body: `${parts.join('')}--b--\r\n` }),
      ),
    );
    expect(many).toMatchObject({
      status: 'quarantined',
      reason: 'unparseable: Max allowed child nodes exceeded',
    });
    // Quoted lines that do not run to the end: finding the reply used to take minutes (past the lease).
    const quoted = await ended(await upload(mail({ body: `Top\r\n${'>quoted\r\n'.repeat(200_000)}bottom` })));
    expect(quoted.status).toBe('created');
  });

  it('ends the same way through the CLI ingest and a reply that is an auto-reply with a NUL header', async () => {
    const viaCli = await ingestRawMessage(t.inboundDeps(), t.queue, {
      tenantId: t.a.tenant.id,
      mailboxId,
      raw: mail({ messageId: '<cli\0nul@example.org>', subject: 'CLI\0subject' }),
    });
    expect(viaCli).toMatchObject({
      status: 'created',
      reason: 'sanitised: NUL in Message-ID replaced, NUL in subject replaced',
    });
    // Automatic mail threads; its classification (jsonb) quotes the header it was recognised by.
    const autoReply = await ingestRawMessage(t.inboundDeps(), t.queue, {
      tenantId: t.a.tenant.id,
      mailboxId,
      raw: mail({ headers: ['In-Reply-To: <cli\0nul@example.org>', 'Auto-Submitted: auto-replied\0x'] }),
    });
    expect(autoReply).toMatchObject({ status: 'appended', ticketId: viaCli.ticketId });
    const { rows } = await t.db.admin.query(
      "SELECT classification->'reasons' AS reasons FROM ticket_messages WHERE ticket_id = $1 AND classification->>'automatic' = 'true'",
      [viaCli.ticketId],
    );
    expect(rows[0].reasons).toEqual(['auto-submitted: auto-replied\uFFFDx']);
  });

  describe('fetched from Graph', () => {
    let sim: GraphSimulator;
    let graphMailbox: string;
    const USER = 'helpdesk@contoso.test';

    beforeAll(async () => {
      const appUrl = await t.app.listen({ host: '127.0.0.1', port: 0 });
      sim = await startGraphSimulator();
      graphMailbox = (
        await t.call(token, 'POST', '/api/v1/mailboxes', {
          kind: 'graph',
          address: USER,
          settings: { graph: { apiBaseUrl: sim.apiBaseUrl, tokenUrl: sim.tokenUrl } },
          credentials: sim.credentials,
        })
      ).body.id;
      const clientState = rand(16);
      const client = new GraphClient(
        { apiBaseUrl: sim.apiBaseUrl, tokenUrl: sim.tokenUrl },
        sim.credentials,
        t.clock,
      );
      const sub = await client.createSubscription({
        resource: `users/${USER}/mailFolders('inbox')/messages`,
        notificationUrl: `${appUrl}/hooks/graph/${graphMailbox}`,
        clientState,
        expirationDateTime: new Date(t.clock.now().getTime() + 86_400_000).toISOString(),
      });
      await withTenant(t.db.pool, t.a.tenant.id, (tx) =>
        recordGraphSubscription(tx, graphMailbox, {
          subscriptionId: sub.id,
          clientState,
          expiresAt: new Date(sub.expirationDateTime),
        }),
      );
    });

    afterAll(async () => {
      await sim?.close();
    });

    it('is made safe in the same place', async () => {
      await sim.deliver(
        USER,
        withAttachment(`attachment; filename*=utf-8''C%3A%5CWindows%5C..%5Cevil%00.exe`),
      );
      const { rows } = await t.db.admin.query<{ id: string }>(
        'SELECT id FROM inbound_messages WHERE mailbox_id = $1',
        [graphMailbox],
      );
      expect(rows).toHaveLength(1);
      const record = await ended(rows[0]!.id);
      expect(record.status).toBe('created');
      expect((await messageOf(record)).attachments[0].filename).toBe('evil\uFFFD.exe');
    });
  });

  it('left no job retried and nothing in the dead-letter queue', async () => {
    const open = await t.db.admin.query(
      "SELECT count(*)::int AS n FROM inbound_messages WHERE status IN ('queued', 'processing', 'failed')",
    );
    expect(open.rows[0].n).toBe(0);
    const jobs = await workers.boss.findJobs(processInboundJob.name, { limit: 1000 });
    expect(jobs.length).toBeGreaterThan(25);
    // Every job that ran completed at its first attempt (the CLI's own jobs find their records ended).
    await expect
      .poll(async () =>
        (await workers.boss.findJobs(processInboundJob.name, { limit: 1000 }))
          .filter((j) => j.state !== 'completed' || j.retryCount !== 0)
          .map((j) => `${j.state} ${j.retryCount}`),
      )
      .toEqual([]);
    expect(await workers.deadLetters({ queue: processInboundJob.name })).toEqual([]);
    expect((await workers.stats({ queue: processInboundJob.name }))[0]!.deadLettered).toBe(0);
  });
});
