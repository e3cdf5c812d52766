import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, type TestApp, useTestApp } from '../../../test/app.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { acceptRawMessage } from './ingest.ts';
import { ingestRawMessage, processInbound } from './process.ts';
import { messageIdKey, signedMessageId } from './signing.ts';

let t: TestApp;
let tokenA: string;
let mailboxId: string;
let otherMailboxId: string;
const deps = () => t.inboundDeps();

let seq = 0;
/** A raw RFC 5322 message. */
function mail(opts: {
  from?: string;
  to?: string;
  cc?: string;
  subject?: string;
  messageId?: string | null;
  inReplyTo?: string;
  references?: string;
  headers?: Record<string, string>;
  body?: string;
  contentType?: string;
  rawBody?: string;
}): Buffer {
  seq++;
  const lines = [
    `From: ${opts.from ?? 'Customer <customer@example.org>'}`,
    `To: ${opts.to ?? 'support@helpdesk.test'}`,
    ...(opts.cc ? [`Cc: ${opts.cc}`] : []),
    `Subject: ${opts.subject ?? `Question ${seq}`}`,
    'Date: Mon, 02 Mar 2026 14:00:00 +0000',
    ...(opts.messageId === null
      ? []
      : [`Message-ID: ${opts.messageId ?? `<msg-${seq}-${randomBytes(4).toString('hex')}@Example.ORG>`}`]),
    ...(opts.inReplyTo ? [`In-Reply-To: ${opts.inReplyTo}`] : []),
    ...(opts.references ? [`References: ${opts.references}`] : []),
    ...Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
    'MIME-Version: 1.0',
    `Content-Type: ${opts.contentType ?? 'text/plain; charset=utf-8'}`,
    '',
    opts.rawBody ?? opts.body ?? `Hello, this is message ${seq}.`,
  ];
  return Buffer.from(lines.join('\r\n'));
}

async function ingest(raw: Buffer, mailbox = mailboxId, tenantId = t.a.tenant.id) {
  return ingestRawMessage(deps(), t.queue, { tenantId, mailboxId: mailbox, raw });
}

const messagesOf = async (ticketId: string) =>
  (
    await t.db.admin.query(
      'SELECT author_id, visibility, direction, body_text, reply_text, mail_from, classification FROM ticket_messages WHERE ticket_id = $1 ORDER BY created_at, id',
      [ticketId],
    )
  ).rows;

beforeAll(async () => {
  t = await useTestApp();
  tokenA = t.a.adminToken.token;
  await t.queue.boss.createQueue('inbound.process');
  const res = await t.call(tokenA, 'POST', '/api/v1/mailboxes', {
    kind: 'mime',
    address: 'support@helpdesk.test',
    displayName: 'Support',
    credentials: { password: 'hunter2' },
  });
  expect(res.status).toBe(201);
  mailboxId = res.body.id;
  otherMailboxId = (
    await t.call(tokenA, 'POST', '/api/v1/mailboxes', { kind: 'mime', address: 'billing@helpdesk.test' })
  ).body.id;
});

describe('mailboxes', () => {
  it('never returns credentials, seals them at rest and fills settings with defaults', async () => {
    const got = await t.call(tokenA, 'GET', `/api/v1/mailboxes/${mailboxId}`);
    expect(got.body).toMatchObject({ kind: 'mime', address: 'support@helpdesk.test', hasCredentials: true });
    expect(got.body.settings).toMatchObject({
      createContacts: true,
      automaticMayOpenTickets: false,
      maxMessageBytes: 25 * 1024 * 1024,
      reopenWithinDays: 14,
    });
    expect(JSON.stringify(got.body)).not.toContain('hunter2');
    const { rows } = await t.db.admin.query('SELECT credentials FROM mailboxes WHERE id = $1', [mailboxId]);
    expect(rows[0].credentials.toString('latin1')).not.toContain('hunter2');
  });

  it('validates input and keeps tenants apart', async () => {
    expect(
      (await t.call(tokenA, 'POST', '/api/v1/mailboxes', { kind: 'pop3', address: 'x@y.z' })).status,
    ).toBe(400);
    expect(
      (
        await t.call(tokenA, 'POST', '/api/v1/mailboxes', {
          kind: 'mime',
          address: 'x@y.z',
          settings: { bogus: 1 },
        })
      ).status,
    ).toBe(400);
    expect(
      (await t.call(tokenA, 'POST', '/api/v1/mailboxes', { kind: 'mime', address: 'SUPPORT@helpdesk.test' }))
        .status,
    ).toBe(409);
    const tokenB = t.b.adminToken.token;
    expect((await t.call(tokenB, 'GET', `/api/v1/mailboxes/${mailboxId}`)).status).toBe(404);
    expect(
      (await t.call(tokenB, 'PATCH', `/api/v1/mailboxes/${mailboxId}`, { displayName: 'x' })).status,
    ).toBe(404);
    expect((await t.call(tokenB, 'DELETE', `/api/v1/mailboxes/${mailboxId}`)).status).toBe(404);
    const upload = await t.app.inject({
      method: 'POST',
      url: `/api/v1/mailboxes/${mailboxId}/messages`,
      headers: { authorization: `Bearer ${tokenB}`, 'content-type': 'message/rfc822' },
      payload: mail({}),
    });
    expect(upload.statusCode).toBe(404);
    expect((await t.call(tokenB, 'GET', '/api/v1/mailboxes')).body.items).toEqual([]);
  });
});

describe('raw MIME ingress and consume', () => {
  it('accepts a raw message (202), and the worker makes exactly one ticket of it', async () => {
    const raw = mail({ subject: 'Printer on fire', from: 'Ann Example <ann@example.org>' });
    const res = await t.app.inject({
      method: 'POST',
      url: `/api/v1/mailboxes/${mailboxId}/messages`,
      headers: { authorization: `Bearer ${tokenA}`, 'content-type': 'message/rfc822' },
      payload: raw,
    });
    expect(res.statusCode).toBe(202);
    const { inboundId, status } = res.json();
    expect(status).toBe('queued');
    const jobs = await t.db.admin.query(
      "SELECT data FROM pgboss.job WHERE name = 'inbound.process' AND data->>'inboundId' = $1",
      [inboundId],
    );
    expect(jobs.rows).toEqual([{ data: { tenantId: t.a.tenant.id, inboundId } }]); // a pointer, never the body
    const outcome = await processInbound(deps(), { tenantId: t.a.tenant.id, inboundId, lastAttempt: false });
    expect(outcome).toMatchObject({ status: 'created', ticketNumber: expect.stringMatching(/^T-\d+$/) });
    const again = await processInbound(deps(), { tenantId: t.a.tenant.id, inboundId, lastAttempt: false });
    expect(again).toEqual(outcome); // a retried job changes nothing
    const ticket = await t.call(tokenA, 'GET', `/api/v1/tickets/${outcome.ticketId}`);
    expect(ticket.body.subject).toBe('Printer on fire');
    const requester = await t.call(tokenA, 'GET', `/api/v1/people/${ticket.body.requesterId}`);
    expect(requester.body).toMatchObject({
      displayName: 'Ann Example',
      kind: 'contact',
      email: 'ann@example.org',
    });
    const listed = await t.call(tokenA, 'GET', `/api/v1/inbound?mailboxId=${mailboxId}&status=created`);
    expect(listed.body.items.find((i: any) => i.id === inboundId)).toMatchObject({
      status: 'created',
      ticketNumber: outcome.ticketNumber,
      attempts: 1,
    });
  });

  it('makes the same message a duplicate, and a message without Message-ID keyed by its bytes', async () => {
    const raw = mail({ messageId: '<Same-ID@EXAMPLE.org>' });
    const first = await ingest(raw);
    const second = await ingest(
      mail({ messageId: 'Same-ID@example.ORG', subject: 'different bytes, same id' }),
    );
    expect(first.status).toBe('created');
    expect(second).toMatchObject({ status: 'duplicate', ticketId: first.ticketId });
    const noId = mail({ messageId: null, subject: 'no id' });
    expect((await ingest(noId)).status).toBe('created');
    expect((await ingest(noId)).status).toBe('duplicate');
    const { rows } = await t.db.admin.query(
      "SELECT key FROM message_keys WHERE key LIKE 'gen-%@relaydesk.invalid'",
    );
    expect(rows.length).toBeGreaterThanOrEqual(1);
  });

  it('treats one Message-ID arriving at two mailboxes as two messages', async () => {
    const raw = mail({
      messageId: '<to-both@example.org>',
      to: 'support@helpdesk.test, billing@helpdesk.test',
    });
    expect((await ingest(raw, mailboxId)).status).toBe('created');
    expect((await ingest(raw, otherMailboxId)).status).toBe('created');
  });

  it('skips mail from our own mailboxes and mail carrying our own Message-ID', async () => {
    expect(await ingest(mail({ from: 'support@helpdesk.test' }))).toMatchObject({
      status: 'skipped',
      reason: 'own_mail',
    });
    const ours = signedMessageId(
      messageIdKey(t.secretKey),
      t.a.tenant.id,
      '01a20430-e963-7a16-98d1-c69cf56067c7',
      'helpdesk.test',
      'x1',
    );
    expect(await ingest(mail({ messageId: `<${ours}>` }))).toMatchObject({
      status: 'skipped',
      reason: 'own_mail',
    });
  });

  it('quarantines what cannot be parsed, keeps the bytes, and reprocesses on request', async () => {
    const accepted = await acceptRawMessage(t.db.pool, t.queue, {
      tenantId: t.a.tenant.id,
      mailboxId,
      raw: Buffer.from([0]),
    });
    const outcome = await processInbound(deps(), {
      tenantId: t.a.tenant.id,
      inboundId: accepted.inboundId,
      lastAttempt: false,
    });
    if (outcome.status === 'quarantined') {
      const again = await t.call(tokenA, 'POST', `/api/v1/inbound/${accepted.inboundId}/reprocess`);
      expect(again.status).toBe(202);
      expect(again.body.status).toBe('queued');
    } else {
      // mailparser accepts almost anything; then it is an ordinary outcome with a reason.
      expect(['skipped', 'created']).toContain(outcome.status);
      const refused = await t.call(tokenA, 'POST', `/api/v1/inbound/${accepted.inboundId}/reprocess`);
      expect(refused.status).toBe(409);
    }
    const { rows } = await t.db.admin.query(
      'SELECT b.size FROM inbound_messages i JOIN blobs b ON b.tenant_id = i.tenant_id AND b.sha256 = i.blob_sha256 WHERE i.id = $1',
      [accepted.inboundId],
    );
    expect(rows[0].size).toBe(1);
  });

  it('skips over-size mail with its headers kept', async () => {
    await t.call(tokenA, 'PATCH', `/api/v1/mailboxes/${otherMailboxId}`, {
      settings: { maxMessageBytes: 2048 },
    });
    const outcome = await ingest(mail({ subject: 'huge', body: 'x'.repeat(5000) }), otherMailboxId);
    expect(outcome.status).toBe('skipped');
    expect(outcome.reason).toMatch(/^too_large/);
    await t.call(tokenA, 'PATCH', `/api/v1/mailboxes/${otherMailboxId}`, {
      settings: { maxMessageBytes: 25 * 1024 * 1024 },
    });
  });
});

describe('threading', () => {
  it('opens a new ticket for a reply to a deleted ticket, also when its subject names the old one', async () => {
    const first = await ingest(mail({ messageId: '<gone-1@example.org>', subject: 'Old problem' }));
    expect(first.status).toBe('created');
    const del = await t.call(t.a.adminToken.token, 'DELETE', `/api/v1/tickets/${first.ticketId}`);
    expect(del.status).toBe(204);
    const reply = await ingest(
      mail({
        messageId: '<gone-2@example.org>',
        inReplyTo: '<gone-1@example.org>',
        subject: 'Re: Old problem',
      }),
    );
    expect(reply.status).toBe('created');
    expect(reply.ticketId).not.toBe(first.ticketId);
    const { rows } = await t.db.admin.query('SELECT number FROM tickets WHERE id = $1', [first.ticketId]);
    const tagged = await ingest(mail({ subject: `Re: [T-${rows[0].number}] Old problem` }));
    expect(tagged.status).toBe('created');
    expect(tagged.ticketId).not.toBe(first.ticketId);
    // The redelivered original is still recognised as a duplicate (its key outlives the ticket).
    const again = await ingest(mail({ messageId: '<gone-1@example.org>', subject: 'Old problem' }));
    expect(again.status).toBe('duplicate');
  });

  it('threads a reply by In-Reply-To, and an Outlook reply that kept only References', async () => {
    const first = await ingest(mail({ messageId: '<thread-1@example.org>', subject: 'VPN' }));
    const reply = await ingest(
      mail({ messageId: '<thread-2@example.org>', inReplyTo: '<thread-1@example.org>', subject: 'Re: VPN' }),
    );
    expect(reply).toMatchObject({ status: 'appended', ticketId: first.ticketId });
    const outlook = await ingest(
      mail({
        messageId: '<thread-3@example.org>',
        references: '<unknown@elsewhere> <thread-1@example.org> <thread-2@EXAMPLE.org>',
        subject: 'AW: VPN',
      }),
    );
    expect(outlook).toMatchObject({
      status: 'appended',
      ticketId: first.ticketId,
      reason: 'thread: message_id',
    });
  });

  it('threads by our signed Message-ID, and ignores a forged one', async () => {
    const first = await ingest(mail({ subject: 'Signed' }));
    const signed = signedMessageId(
      messageIdKey(t.secretKey),
      t.a.tenant.id,
      first.ticketId!,
      'helpdesk.test',
      'a1',
    );
    const reply = await ingest(mail({ inReplyTo: `<${signed}>`, subject: 'Re: anything' }));
    expect(reply).toMatchObject({
      status: 'appended',
      ticketId: first.ticketId,
      reason: 'thread: signed_id',
    });
    const forged = signedMessageId(randomBytes(32), t.a.tenant.id, first.ticketId!, 'helpdesk.test', 'a2');
    const attack = await ingest(mail({ inReplyTo: `<${forged}>`, subject: 'Re: anything' }));
    expect(attack.status).toBe('created');
    expect(attack.ticketId).not.toBe(first.ticketId);
  });

  it('uses a subject tag only from the requester or a participant', async () => {
    const first = await ingest(
      mail({ from: 'owner@example.org', cc: 'colleague@example.org', subject: 'Tagged' }),
    );
    const tag = `[#${first.ticketNumber}]`;
    const own = await ingest(mail({ from: 'owner@example.org', subject: `Re: ${tag} Tagged` }));
    expect(own).toMatchObject({
      status: 'appended',
      ticketId: first.ticketId,
      reason: 'thread: subject_tag',
    });
    const colleague = await ingest(mail({ from: 'colleague@example.org', subject: `${tag} more` }));
    expect(colleague).toMatchObject({ status: 'appended', ticketId: first.ticketId });
    const stranger = await ingest(mail({ from: 'stranger@evil.example', subject: `${tag} let me in` }));
    expect(stranger.status).toBe('created');
    expect(stranger.ticketId).not.toBe(first.ticketId);
  });

  it('threads an agent reply as a public agent reply and opens a new ticket', async () => {
    const agent = await makePerson(t, tokenA, { kind: 'agent', email: 'agent@helpdesk-staff.test' });
    const first = await ingest(mail({ messageId: '<agent-1@example.org>' }));
    const reply = await ingest(
      mail({ from: 'agent@helpdesk-staff.test', inReplyTo: '<agent-1@example.org>' }),
    );
    expect(reply.status).toBe('appended');
    const msgs = await messagesOf(first.ticketId!);
    expect(msgs.at(-1)).toMatchObject({ author_id: agent.id, visibility: 'public', direction: 'outbound' });
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${first.ticketId}`)).body.status).toBe('open');
  });

  it('moves a pending ticket to open on a customer reply, reopens a solved one, and starts a new ticket after the window', async () => {
    const first = await ingest(mail({ messageId: '<status-1@example.org>' }));
    await t.call(tokenA, 'PATCH', `/api/v1/tickets/${first.ticketId}`, { status: 'pending' });
    await ingest(mail({ messageId: '<status-2@example.org>', inReplyTo: '<status-1@example.org>' }));
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${first.ticketId}`)).body.status).toBe('open');
    await t.call(tokenA, 'PATCH', `/api/v1/tickets/${first.ticketId}`, { status: 'solved' });
    const reopen = await ingest(
      mail({ messageId: '<status-3@example.org>', inReplyTo: '<status-2@example.org>' }),
    );
    expect(reopen.ticketId).toBe(first.ticketId);
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${first.ticketId}`)).body.status).toBe('open');
    await t.call(tokenA, 'PATCH', `/api/v1/tickets/${first.ticketId}`, { status: 'closed' });
    await t.db.admin.query("UPDATE tickets SET updated_at = now() - interval '20 days' WHERE id = $1", [
      first.ticketId,
    ]);
    const late = await ingest(
      mail({ messageId: '<status-4@example.org>', inReplyTo: '<status-3@example.org>' }),
    );
    expect(late.status).toBe('created');
    expect(late.ticketId).not.toBe(first.ticketId);
  });
});

describe('loop and noise protection', () => {
  it.each([
    ['Auto-Submitted: auto-replied', { 'Auto-Submitted': 'auto-replied' }],
    ['Precedence: bulk', { Precedence: 'bulk' }],
    ['Precedence: auto_reply', { Precedence: 'auto_reply' }],
    ['X-Autoreply', { 'X-Autoreply': 'yes' }],
    ['X-Autorespond', { 'X-Autorespond': 'yes' }],
    ['X-Auto-Response-Suppress', { 'X-Auto-Response-Suppress': 'All' }],
    ['X-Loop', { 'X-Loop': 'helpdesk' }],
    ['List-Unsubscribe', { 'List-Unsubscribe': '<mailto:leave@list.example>' }],
  ])(
    'does not open a ticket for automatic mail (%s), but threads it without reopening',
    async (_name, headers) => {
      expect(await ingest(mail({ headers }))).toMatchObject({ status: 'skipped', reason: 'automatic' });
      const first = await ingest(mail({}));
      const ref = (
        await t.db.admin.query('SELECT key FROM message_keys WHERE ticket_id = $1', [first.ticketId])
      ).rows[0].key;
      await t.call(tokenA, 'PATCH', `/api/v1/tickets/${first.ticketId}`, { status: 'solved' });
      const auto = await ingest(mail({ headers, inReplyTo: `<${ref}>` }));
      expect(auto).toMatchObject({ status: 'appended', ticketId: first.ticketId });
      expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${first.ticketId}`)).body.status).toBe('solved');
    },
  );

  it('keeps Auto-Submitted: no as human mail', async () => {
    expect((await ingest(mail({ headers: { 'Auto-Submitted': 'no' } }))).status).toBe('created');
  });

  it('opens tickets for automatic mail when the mailbox allows it', async () => {
    await t.call(tokenA, 'PATCH', `/api/v1/mailboxes/${otherMailboxId}`, {
      settings: { automaticMayOpenTickets: true },
    });
    expect((await ingest(mail({ headers: { Precedence: 'list' } }), otherMailboxId)).status).toBe('created');
    await t.call(tokenA, 'PATCH', `/api/v1/mailboxes/${otherMailboxId}`, {
      settings: { automaticMayOpenTickets: false },
    });
  });

  it.each([
    ['X-Failed-Recipients', { headers: { 'X-Failed-Recipients': 'gone@example.org' } }],
    ['an empty Return-Path', { headers: { 'Return-Path': '<>' } }],
    ['a mailer-daemon sender', { from: 'MAILER-DAEMON@mx.example.org' }],
    ['a postmaster sender', { from: 'postmaster@mx.example.org' }],
  ])('recognises a bounce by %s', async (_name, opts) => {
    expect(await ingest(mail(opts))).toMatchObject({ status: 'skipped', reason: 'bounce' });
  });

  it('threads a delivery-status report to the ticket of the message it quotes, as an internal note', async () => {
    const first = await ingest(mail({ messageId: '<bounced-original@example.org>' }));
    const boundary = 'b0undary';
    const report = mail({
      from: 'Mail Delivery System <MAILER-DAEMON@mx.example.org>',
      subject: 'Undelivered Mail Returned to Sender',
      contentType: `multipart/report; report-type=delivery-status; boundary="${boundary}"`,
      rawBody: [
        `--${boundary}`,
        'Content-Type: text/plain',
        '',
        'The mail could not be delivered.',
        `--${boundary}`,
        'Content-Type: message/delivery-status',
        '',
        'Final-Recipient: rfc822; gone@example.org',
        'Action: failed',
        'Status: 5.1.1',
        `--${boundary}`,
        'Content-Type: text/rfc822-headers',
        '',
        'From: support@helpdesk.test',
        'Message-ID: <bounced-original@example.org>',
        'Subject: Your ticket',
        `--${boundary}--`,
        '',
      ].join('\r\n'),
    });
    const outcome = await ingest(report);
    expect(outcome).toMatchObject({ status: 'appended', ticketId: first.ticketId, reason: 'thread: bounce' });
    expect((await messagesOf(first.ticketId!)).at(-1)).toMatchObject({ visibility: 'internal' });
  });
});

describe('content', () => {
  it('stores text, sanitised HTML, the reply part and attachments (deduplicated, downloadable)', async () => {
    const boundary = 'mixed42';
    const pdf = Buffer.from('%PDF-1.4 fake pdf bytes');
    const raw = mail({
      contentType: `multipart/mixed; boundary="${boundary}"`,
      rawBody: [
        `--${boundary}`,
        'Content-Type: multipart/alternative; boundary="alt42"',
        '',
        '--alt42',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'Thanks, that fixed it.',
        '',
        'On Mon, 2 Mar 2026 at 10:00, Support <support@helpdesk.test> wrote:',
        '> Please restart the router.',
        '--alt42',
        'Content-Type: text/html; charset=utf-8',
        '',
        '<p onclick="steal()">Thanks, <img src="https://tracker.example/pixel.gif">that fixed it.</p><script>alert(1)</script>',
        '--alt42--',
        `--${boundary}`,
        'Content-Type: application/pdf; name="report.pdf"',
        'Content-Disposition: attachment; filename="report.pdf"',
        'Content-Transfer-Encoding: base64',
        '',
        pdf.toString('base64'),
        `--${boundary}--`,
        '',
      ].join('\r\n'),
    });
    const outcome = await ingest(raw);
    expect(outcome.status).toBe('created');
    const { rows } = await t.db.admin.query(
      'SELECT id, body_text, body_html, reply_text FROM ticket_messages WHERE ticket_id = $1',
      [outcome.ticketId],
    );
    expect(rows[0].body_text).toContain('Please restart the router');
    expect(rows[0].reply_text).toBe('Thanks, that fixed it.');
    expect(rows[0].body_html).not.toMatch(/script|onclick|tracker\.example/);
    const att = await t.db.admin.query(
      'SELECT id, filename, content_type, size FROM attachments WHERE message_id = $1',
      [rows[0].id],
    );
    expect(att.rows).toEqual([
      { id: expect.any(String), filename: 'report.pdf', content_type: 'application/pdf', size: pdf.length },
    ]);
    const api = await t.call(tokenA, 'GET', `/api/v1/tickets/${outcome.ticketId}/messages`);
    expect(api.body.items[0].mail).toMatchObject({
      from: 'customer@example.org',
      to: [{ address: 'support@helpdesk.test', name: '' }],
      replyText: 'Thanks, that fixed it.',
      classification: { automatic: false, bounce: false },
      attachments: [
        {
          id: att.rows[0].id,
          filename: 'report.pdf',
          contentType: 'application/pdf',
          size: pdf.length,
          inline: false,
        },
      ],
    });
    const download = await t.app.inject({
      method: 'GET',
      url: `/api/v1/attachments/${att.rows[0].id}`,
      headers: { authorization: `Bearer ${tokenA}` },
    });
    expect(download.statusCode).toBe(200);
    expect(download.headers['content-disposition']).toMatch(/^attachment; filename="report.pdf"/);
    expect(download.rawPayload.equals(pdf)).toBe(true);
    const other = await t.app.inject({
      method: 'GET',
      url: `/api/v1/attachments/${att.rows[0].id}`,
      headers: { authorization: `Bearer ${t.b.adminToken.token}` },
    });
    expect(other.statusCode).toBe(404);
    // The same bytes again are one blob.
    await ingest(
      mail({
        contentType: `multipart/mixed; boundary="${boundary}"`,
        rawBody: raw.toString().split('\r\n\r\n').slice(1).join('\r\n\r\n'),
      }),
    );
    const blobs = await t.db.admin.query('SELECT count(*)::int AS n FROM blobs WHERE size = $1', [
      pdf.length,
    ]);
    expect(blobs.rows[0].n).toBe(1);
  });

  it('resolves cid: references of inline images to the stored attachment', async () => {
    const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001', 'hex');
    const outcome = await ingest(
      mail({
        contentType: 'multipart/related; boundary="rel"',
        rawBody: [
          '--rel',
          'Content-Type: text/html; charset=utf-8',
          '',
          '<p>Screenshot:</p><img src="cid:shot-1@example.org" alt="shot"><img src="https://tracker.example/x.png">',
          '--rel',
          'Content-Type: image/png',
          'Content-ID: <shot-1@example.org>',
          'Content-Disposition: inline',
          'Content-Transfer-Encoding: base64',
          '',
          png.toString('base64'),
          '--rel--',
          '',
        ].join('\r\n'),
      }),
    );
    const { rows } = await t.db.admin.query(
      'SELECT m.body_html, a.id AS attachment_id, a.inline, a.filename FROM ticket_messages m JOIN attachments a ON a.message_id = m.id WHERE m.ticket_id = $1',
      [outcome.ticketId],
    );
    expect(rows[0].inline).toBe(true);
    expect(rows[0].filename).toBe('image.png');
    expect(rows[0].body_html).toContain(`src="/api/v1/attachments/${rows[0].attachment_id}"`);
    expect(rows[0].body_html).not.toContain('tracker.example');
  });

  it('decodes legacy charsets and encoded subjects', async () => {
    const latin1 = Buffer.concat([
      Buffer.from(
        [
          'From: =?ISO-8859-1?Q?J=FCrgen?= <juergen@example.de>',
          'To: support@helpdesk.test',
          'Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_M=FCnchen?=',
          'Message-ID: <latin1@example.de>',
          'Content-Type: text/plain; charset=windows-1252',
          '',
          '',
        ].join('\r\n'),
      ),
      Buffer.from([0x53, 0x63, 0x68, 0xf6, 0x6e, 0x65, 0x20, 0x80]), // "Schöne €"
    ]);
    const outcome = await ingest(latin1);
    const ticket = await t.call(tokenA, 'GET', `/api/v1/tickets/${outcome.ticketId}`);
    expect(ticket.body.subject).toBe('Grüße aus München');
    expect((await messagesOf(outcome.ticketId!))[0].body_text).toBe('Schöne €');
  });

  it('gives an empty subject a placeholder', async () => {
    const outcome = await ingest(mail({ subject: '' }));
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${outcome.ticketId}`)).body.subject).toBe(
      '(no subject)',
    );
  });

  it('does not create contacts when the mailbox says so', async () => {
    await t.call(tokenA, 'PATCH', `/api/v1/mailboxes/${otherMailboxId}`, {
      settings: { createContacts: false },
    });
    expect(await ingest(mail({ from: 'newcomer@example.org' }), otherMailboxId)).toMatchObject({
      status: 'skipped',
      reason: 'unknown_sender',
    });
    const known = await makePerson(t, tokenA, { kind: 'contact', email: 'known@example.org' });
    const outcome = await ingest(mail({ from: 'known@example.org' }), otherMailboxId);
    expect((await t.call(tokenA, 'GET', `/api/v1/tickets/${outcome.ticketId}`)).body.requesterId).toBe(
      known.id,
    );
    await t.call(tokenA, 'PATCH', `/api/v1/mailboxes/${otherMailboxId}`, {
      settings: { createContacts: true },
    });
  });
});

describe('isolation of inbound records', () => {
  it("does not show one tenant another's inbound records", async () => {
    const listB = await t.call(t.b.adminToken.token, 'GET', '/api/v1/inbound');
    expect(listB.body.items).toEqual([]);
    const anyA = (await t.call(tokenA, 'GET', '/api/v1/inbound?limit=1')).body.items[0];
    expect((await t.call(t.b.adminToken.token, 'GET', `/api/v1/inbound/${anyA.id}`)).status).toBe(404);
    expect((await t.call(t.b.adminToken.token, 'POST', `/api/v1/inbound/${anyA.id}/reprocess`)).status).toBe(
      404,
    );
    await withTenant(t.db.pool, t.b.tenant.id, async (tx) => {
      expect((await tx.query('SELECT count(*)::int AS n FROM message_keys')).rows[0].n).toBe(0);
    });
  });
});
