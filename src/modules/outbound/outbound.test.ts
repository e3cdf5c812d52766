// Agents answer by email, over real SMTP (AUTH and STARTTLS against the SMTP simulator): what the
// customer receives, how their answer threads back, what the ledger says about each attempt, and
// how failures are retried or not.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type SmtpSimulator, startSmtpSimulator } from '../../../simulators/smtp.ts';
import { makeTicket, type TestApp, useTestApp } from '../../../test/app.ts';
import { multipart, type UploadFile } from '../../../test/multipart.ts';
import { failWritesAsLostConnection } from '../../../test/outage.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { createLogger } from '../../platform/logging.ts';
import { ingestRawMessage } from '../inbound/process.ts';
import { messageIdKey, verifyMessageId } from '../inbound/signing.ts';
import { deliveryReportJob, ticketOpenedByMailJob } from '../inbound/job-refs.ts';
import { acknowledgeTicket } from './acknowledge.ts';
import { recordDeliveryReport } from './delivery-reports.ts';
import { outboundSendJob } from './job-refs.ts';
import { queueNotificationMail } from './notification-mail.ts';
import { postTicketMessage } from './replies.ts';
import { sendDelivery, sendDeliveryBatch } from './send.ts';
import { Transports } from './transports.ts';

let t: TestApp;
let smtp: SmtpSimulator;
let transports: Transports;
let mailboxId: string;
const logger = createLogger('silent');
const ADDRESS = 'support@out.test';

const admin = () => t.a.adminToken.token;

/** A reply posted as multipart/form-data, as the console's editor sends one with files. */
async function postForm(ticketId: string, fields: Record<string, string>, files: UploadFile[]) {
  const upload = await multipart(fields, files);
  return t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, upload.body, upload.headers);
}

/** Sends every queued attempt of tenant A now, as the worker would (the job's delay is the queue's). */
async function sendQueued(): Promise<Record<string, unknown>[]> {
  const { rows } = await t.db.admin.query<{ id: string; tenant_id: string }>(
    "SELECT id, tenant_id FROM deliveries WHERE status = 'queued' ORDER BY created_at, id",
  );
  const results = [];
  for (const r of rows)
    results.push(
      await sendDelivery(
        { pool: t.db.pool, clock: t.clock, logger, transports },
        { tenantId: r.tenant_id, deliveryId: r.id },
        { send: (job, payload, options) => t.queue.send(job, payload, options) },
      ),
    );
  return results;
}

/** A MIME mailbox of the tenant whose token this is, sending through the SMTP simulator (AUTH, STARTTLS); its id. */
async function relayMailbox(token: string, address: string, displayName?: string): Promise<string> {
  const res = await t.call(token, 'POST', '/api/v1/mailboxes', {
    kind: 'mime',
    address,
    ...(displayName ? { displayName } : {}),
    settings: {
      smtp: { host: smtp.host, port: smtp.port, security: 'starttls', username: 'relay', ca: smtp.ca },
    },
    credentials: { smtpPassword: 's3cret' },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

const ran = new Set<string>();

/** Runs the queued jobs of these types once each (acknowledgements, delivery reports), as a worker would. */
async function runMailJobs(): Promise<Record<string, unknown>[]> {
  const { rows } = await t.db.admin.query<{ id: string; name: string; data: any }>(
    `SELECT id, name, data FROM pgboss.job WHERE name IN ($1, $2) ORDER BY created_on, id`,
    [ticketOpenedByMailJob.name, deliveryReportJob.name],
  );
  const out = [];
  for (const job of rows.filter((r) => !ran.has(r.id))) {
    ran.add(job.id);
    const ctx = { send: t.queue.send.bind(t.queue) } as never;
    const deps = { pool: t.db.pool, clock: t.clock, messageIdKey: messageIdKey(t.secretKey) };
    out.push(
      job.name === ticketOpenedByMailJob.name
        ? await acknowledgeTicket(deps, job.data, ctx)
        : await recordDeliveryReport(deps, job.data),
    );
  }
  return out;
}

async function mailTo(
  mailbox: string,
  lines: Record<string, string>,
  body: string,
): Promise<Awaited<ReturnType<typeof ingestRawMessage>>> {
  const raw = Object.entries(lines)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n');
  return ingestRawMessage(t.inboundDeps(), t.queue, {
    tenantId: t.a.tenant.id,
    mailboxId: mailbox,
    raw: Buffer.from(`${raw}\r\n\r\n${body}\r\n`),
  });
}

async function customerMail(headers: Record<string, string>, body = 'Hello, my printer is broken.') {
  const lines = Object.entries({
    From: 'Carol Customer <carol@customer.test>',
    To: ADDRESS,
    Cc: 'dave@customer.test, support@out.test',
    Subject: 'Printer broken',
    'Message-ID': `<${Math.random().toString(36).slice(2)}@customer.test>`,
    Date: new Date().toUTCString(),
    ...headers,
  }).map(([k, v]) => `${k}: ${v}`);
  return ingestRawMessage(t.inboundDeps(), t.queue, {
    tenantId: t.a.tenant.id,
    mailboxId,
    raw: Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}\r\n`),
  });
}

const deliveries = async (ticketId: string) =>
  (await t.call(admin(), 'GET', `/api/v1/deliveries?ticketId=${ticketId}`)).body.items as Record<
    string,
    any
  >[];

beforeAll(async () => {
  t = await useTestApp();
  for (const q of [
    'inbound.process',
    outboundSendJob.name,
    ticketOpenedByMailJob.name,
    deliveryReportJob.name,
  ])
    await t.queue.boss.createQueue(q);
  smtp = await startSmtpSimulator({ tls: 'starttls', auth: { username: 'relay', password: 's3cret' } });
  transports = new Transports({ pool: t.db.pool, secretKey: t.secretKey, clock: t.clock });
  mailboxId = await relayMailbox(admin(), ADDRESS, 'Contoso Support');
});

afterAll(async () => {
  transports?.close();
  await smtp?.close();
});

beforeEach(() => {
  smtp.clear();
  smtp.clearFaults();
});

describe('an agent reply', () => {
  it('in a workspace without a mailbox is kept, its mail recorded skipped (no_mailbox), as the ledger reads', async () => {
    // Tenant b has no mailbox.
    const ticket = await makeTicket(t, t.b.adminToken.token, { subject: 'No mailbox here' });
    const posted = await t.call(t.b.adminToken.token, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      visibility: 'public',
      text: 'We are looking into it.',
    });
    expect(posted.status, JSON.stringify(posted.body)).toBe(201);
    expect(posted.body.delivery).toMatchObject({
      status: 'skipped',
      attempt: 1,
      attempts: 1,
      lastError: null,
    });
    const listed = await t.call(t.b.adminToken.token, 'GET', `/api/v1/tickets/${ticket.id}/messages`);
    expect(listed.body.items.find((m: { id: string }) => m.id === posted.body.id).delivery).toEqual(
      posted.body.delivery,
    );
    const row = await t.call(t.b.adminToken.token, 'GET', `/api/v1/deliveries/${posted.body.delivery.id}`);
    expect(row.body).toMatchObject({
      status: 'skipped',
      skipReason: 'no_mailbox',
      ticketMessageId: posted.body.id,
    });
  });

  it('skipped for want of a mailbox, goes out when retried once the workspace has one, with its own Message-ID', async () => {
    const b = t.b.adminToken.token;
    const ticket = await makeTicket(t, b, {
      subject: 'Retried once there is a mailbox',
      requester: { email: 'rita@customer-b.test', name: 'Rita' },
    });
    const posted = await t.call(b, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      visibility: 'public',
      text: 'We fixed it this morning.',
    });
    expect(posted.body.delivery).toMatchObject({ status: 'skipped', attempt: 1 });
    // Still no mailbox: refused, saying why, and nothing queued.
    const early = await t.call(b, 'POST', `/api/v1/deliveries/${posted.body.delivery.id}/retry`);
    expect(early.status).toBe(400);
    expect(early.body.detail).toContain('no mailbox');

    const bMailbox = await relayMailbox(b, 'desk@b-retry.test', 'B Desk');
    // The customer writes again after the reply: the reply's mail quotes what came before it only.
    const later = await ingestRawMessage(t.inboundDeps(), t.queue, {
      tenantId: t.b.tenant.id,
      mailboxId: bMailbox,
      raw: Buffer.from(
        `From: Rita <rita@customer-b.test>\r\nTo: desk@b-retry.test\r\nSubject: Still broken [#${ticket.number}]\r\n` +
          `Message-ID: <later-${ticket.id}@customer-b.test>\r\n\r\nWritten after the reply.\r\n`,
      ),
    });
    expect(later).toMatchObject({ status: 'appended', ticketId: ticket.id });
    const retried = await t.call(b, 'POST', `/api/v1/deliveries/${posted.body.delivery.id}/retry`);
    expect(retried.status, JSON.stringify(retried.body)).toBe(202);
    expect(retried.body).toMatchObject({
      status: 'queued',
      attempt: 2,
      channel: 'email',
      purpose: 'reply',
      destination: 'rita@customer-b.test',
      ticketMessageId: posted.body.id,
    });
    const rfcMessageId = retried.body.rfcMessageId as string;
    expect(verifyMessageId(messageIdKey(t.secretKey), t.b.tenant.id, rfcMessageId)).toBe(ticket.id);

    await sendQueued();
    const sent = smtp.messages().filter((m) => m.to.includes('rita@customer-b.test'));
    expect(sent).toHaveLength(1);
    expect(sent[0]!.headers['message-id']).toEqual([`<${rfcMessageId}>`]);
    expect(sent[0]!.headers['from']![0]).toContain('desk@b-retry.test');
    expect(sent[0]!.raw.toString()).toContain('We fixed it this morning.');
    expect(sent[0]!.raw.toString()).toContain('> Something is broken');
    expect(sent[0]!.raw.toString()).not.toContain('Written after the reply.');
    expect(sent[0]!.headers['references']?.join(' ') ?? '').not.toContain('later-');
    // The message now carries the mail it went out as, and its delivery says sent.
    const listed = await t.call(b, 'GET', `/api/v1/tickets/${ticket.id}/messages`);
    const message = listed.body.items.find((m: { id: string }) => m.id === posted.body.id);
    expect(message.messageId).toBe(rfcMessageId);
    expect(message.mail.to).toEqual([{ address: 'rita@customer-b.test', name: 'Rita' }]);
    expect(message.delivery).toMatchObject({ status: 'sent', attempt: 2, attempts: 2 });
    // Sent: a further retry is refused, and so is the skipped attempt's again (its mail is made).
    expect((await t.call(b, 'POST', `/api/v1/deliveries/${retried.body.id}/retry`)).status).toBe(400);
    const again = await t.call(b, 'POST', `/api/v1/deliveries/${posted.body.delivery.id}/retry`);
    expect(again.status).toBe(400);
    expect(again.body.detail).toContain(`retried already, as ${retried.body.id}`);
    const { rows: attempts } = await t.db.admin.query(
      'SELECT attempt, status FROM deliveries WHERE ticket_message_id = $1 ORDER BY attempt',
      [posted.body.id],
    );
    expect(attempts).toEqual([
      { attempt: 1, status: 'skipped' },
      { attempt: 2, status: 'sent' },
    ]);
  });

  it('leaves as one mail over SMTP with the threading headers, and the customer answer threads back', async () => {
    const first = await customerMail({ 'Message-ID': '<first-1@customer.test>' });
    expect(first.status).toBe('created');
    const ticketId = first.ticketId!;

    const posted = await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
      visibility: 'public',
      text: 'Have you tried turning it off and on again?',
      cc: ['erin@partner.test', 'SUPPORT@out.test'],
    });
    expect(posted.status, JSON.stringify(posted.body)).toBe(201);
    expect(posted.body.delivery).toMatchObject({ status: 'queued', attempt: 1 });
    // The answer's delivery (known when the mail was queued, not read back) is what the ledger says.
    const listed = await t.call(admin(), 'GET', `/api/v1/tickets/${ticketId}/messages`);
    expect(listed.body.items.find((m: { id: string }) => m.id === posted.body.id).delivery).toEqual(
      posted.body.delivery,
    );
    expect(posted.body.mail.to).toEqual([{ address: 'carol@customer.test', name: 'Carol Customer' }]);
    expect(posted.body.mail.cc.map((a: { address: string }) => a.address).sort()).toEqual([
      'dave@customer.test',
      'erin@partner.test',
    ]);

    expect(await sendQueued()).toEqual([{ sent: expect.stringMatching(/^250 /) }]);
    const [mail] = smtp.messages();
    expect(smtp.messages()).toHaveLength(1);
    expect(mail!.secure).toBe(true);
    expect(mail!.authUser).toBe('relay');
    expect(mail!.from).toBe(ADDRESS);
    expect(mail!.to.sort()).toEqual(['carol@customer.test', 'dave@customer.test', 'erin@partner.test']);
    const h = mail!.headers;
    const number = (await t.call(admin(), 'GET', `/api/v1/tickets/${ticketId}`)).body.number;
    expect(h['subject']).toEqual([`Re: Printer broken [#${number}]`]);
    expect(h['in-reply-to']).toEqual(['<first-1@customer.test>']);
    expect(h['references']).toEqual(['<first-1@customer.test>']);
    expect(h['reply-to']).toEqual([ADDRESS]);
    expect(h['from']![0]).toContain(ADDRESS);
    expect(h['auto-submitted']).toBeUndefined();
    expect(mail!.messageId).toBe(`<${posted.body.messageId}>`);
    expect(mail!.messageId).toMatch(new RegExp(`^<rd\\.${ticketId}\\.[0-9a-f]{24}\\.[0-9a-f]+@out\\.test>$`));
    const text = mail!.raw.toString('utf8');
    expect(text).toContain('Have you tried turning it off and on again?');
    expect(text).toContain('> Hello, my printer is broken.');
    expect(text).not.toMatch(/^Bcc:/im);

    const [delivery] = await deliveries(ticketId);
    expect(delivery).toMatchObject({
      channel: 'email',
      purpose: 'reply',
      status: 'sent',
      attempt: 1,
      destination: 'carol@customer.test',
      ticketMessageId: posted.body.id,
      rfcMessageId: posted.body.messageId,
      errorCode: null,
    });
    expect(delivery!.providerResponse).toMatch(/^250 /);
    const messages = await t.call(admin(), 'GET', `/api/v1/tickets/${ticketId}/messages`);
    expect(messages.body.items[0].delivery).toMatchObject({ status: 'sent', attempt: 1 });
    expect(messages.body.items[1].delivery).toBeNull();

    // The customer answers from the captured mail, with a subject that lost its tag.
    const answer = await customerMail({
      Subject: 'Still broken',
      'In-Reply-To': mail!.messageId!,
      References: `<first-1@customer.test> ${mail!.messageId}`,
    });
    expect(answer).toMatchObject({ status: 'appended', ticketId });
    // A client that drops In-Reply-To and keeps References threads too.
    const again = await customerMail({ Subject: 'Any news', References: mail!.messageId! });
    expect(again).toMatchObject({ status: 'appended', ticketId });
  });

  it('plus-addresses Reply-To where the mailbox allows it, and an answer to that address threads', async () => {
    const box = await t.call(admin(), 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: 'plus@out.test',
      settings: {
        smtp: { host: smtp.host, port: smtp.port, security: 'starttls', username: 'relay', ca: smtp.ca },
        outbound: { plusAddressing: true, subjectTag: '(Case {number})', quoteHistory: false },
      },
      credentials: { smtpPassword: 's3cret' },
    });
    expect(box.status, JSON.stringify(box.body)).toBe(201);
    const opened = await mailTo(
      box.body.id,
      {
        From: 'gina@customer.test',
        To: 'plus@out.test',
        Subject: 'Laptop',
        'Message-ID': '<plus-1@customer.test>',
      },
      'My laptop is slow',
    );
    await t.call(admin(), 'POST', `/api/v1/tickets/${opened.ticketId}/messages`, {
      visibility: 'public',
      text: 'Reboot it',
    });
    await sendQueued();
    const sent = smtp.messages().find((m) => m.to.includes('gina@customer.test'))!;
    const plus = `plus+${opened.ticketNumber}@out.test`;
    expect(sent.headers['reply-to']).toEqual([plus]);
    expect(sent.headers['subject']).toEqual([`Re: Laptop (Case ${opened.ticketNumber})`]);
    expect(sent.raw.toString()).not.toContain('> My laptop is slow');
    // No threading headers, a new subject: the plus address alone brings it back.
    const answer = await mailTo(
      box.body.id,
      { From: 'gina@customer.test', To: plus, Subject: 'Done', 'Message-ID': '<plus-2@customer.test>' },
      'Rebooted',
    );
    expect(answer).toMatchObject({ status: 'appended', ticketId: opened.ticketId });
    // The plus address is ours: not a participant that later replies would copy.
    const { rows: participants } = await t.db.admin.query<{ a: string }>(
      'SELECT address_normalized AS a FROM ticket_participants WHERE ticket_id = $1',
      [opened.ticketId],
    );
    expect(participants.map((p) => p.a)).toEqual(['gina@customer.test']);
    // The configured tag threads too.
    const tagged = await mailTo(
      box.body.id,
      {
        From: 'gina@customer.test',
        To: 'plus@out.test',
        Subject: `Again (Case ${opened.ticketNumber})`,
        'Message-ID': '<plus-3@customer.test>',
      },
      'x',
    );
    expect(tagged).toMatchObject({ status: 'appended', ticketId: opened.ticketId });
    // A stranger's mail to the plus address does not get in.
    const stranger = await mailTo(
      box.body.id,
      { From: 'mallory@evil.test', To: plus, Subject: 'hi', 'Message-ID': '<plus-4@evil.test>' },
      'x',
    );
    expect(stranger.ticketId).not.toBe(opened.ticketId);
  });

  it('with a forged Message-ID signature does not thread', async () => {
    const first = await customerMail({});
    const ticketId = first.ticketId!;
    const forged = `<rd.${ticketId}.${'0'.repeat(24)}.abc@out.test>`;
    const reply = await customerMail({ Subject: 'Other thing', 'In-Reply-To': forged, References: forged });
    expect(reply.status).toBe('created');
    expect(reply.ticketId).not.toBe(ticketId);
  });

  it('commits with its message or not at all', async () => {
    const { ticketId } = await customerMail({});
    const before = (await deliveries(ticketId!)).length;
    await expect(
      withTenant(t.db.pool, t.a.tenant.id, async (tx) => {
        await postTicketMessage(
          tx,
          { messageIdKey: messageIdKey(t.secretKey), queue: t.queue },
          { ticketId: ticketId!, authorId: t.a.adminToken.personId, visibility: 'public', text: 'Lost' },
        );
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(await deliveries(ticketId!)).toHaveLength(before);
    const { rows } = await t.db.admin.query(
      "SELECT 1 FROM pgboss.job WHERE name = 'outbound.send' AND data->>'tenantId' = $1 AND state = 'created' AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id::text = data->>'deliveryId')",
      [t.a.tenant.id],
    );
    expect(rows).toEqual([]);
  });

  it('sends nothing for an internal note, and refuses Cc on it', async () => {
    const { ticketId } = await customerMail({});
    const note = await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
      visibility: 'internal',
      text: 'Customer is on the old firmware',
    });
    expect(note.status).toBe(201);
    expect(note.body.delivery).toBeNull();
    expect(await deliveries(ticketId!)).toEqual([]);
    const cc = await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
      visibility: 'internal',
      text: 'x',
      cc: ['a@b.test'],
    });
    expect(cc.status).toBe(400);
    expect(cc.body.code).toBe('validation_failed');
  });

  it('carries attachments uploaded as multipart/form-data', async () => {
    const { ticketId } = await customerMail({});
    const res = await postForm(
      ticketId!,
      { visibility: 'public', text: 'Here is the driver.', bcc: 'audit@partner.test' },
      [{ filename: 'driver.txt', contentType: 'text/plain', content: Buffer.from('DRIVER-BYTES-123') }],
    );
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.mail.attachments).toMatchObject([
      { filename: 'driver.txt', contentType: 'text/plain', size: 16 },
    ]);
    await sendQueued();
    const [mail] = smtp.messages();
    expect(mail!.to).toContain('audit@partner.test');
    expect(mail!.headers['bcc']).toBeUndefined();
    const raw = mail!.raw.toString('utf8');
    expect(raw).toMatch(/filename="?driver\.txt"?/);
    expect(raw).toMatch(/DRIVER-BYTES-123|RFJJVkVSLUJZVEVTLTEyMw==/);
  });

  it('refuses an attachments field that holds text instead of a file, writing nothing', async () => {
    const { ticketId } = await customerMail({});
    const res = await postForm(
      ticketId!,
      { visibility: 'public', text: 'See attached', attachments: 'driver.txt' },
      [{ filename: 'real.txt', contentType: 'text/plain', content: Buffer.from('REAL') }],
    );
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(res.body.errors).toEqual([{ path: '/attachments', message: 'must be a file' }]);
    const messages = await t.call(admin(), 'GET', `/api/v1/tickets/${ticketId}/messages`);
    expect(messages.body.items).toHaveLength(1);
  });

  it('refuses an attachment over the size limit with 413', async () => {
    const { ticketId } = await customerMail({});
    const res = await postForm(ticketId!, { visibility: 'public', text: 'big' }, [
      {
        filename: 'big.bin',
        contentType: 'application/octet-stream',
        content: Buffer.alloc(25 * 1024 * 1024 + 10, 0x61),
      },
    ]);
    expect(res.status).toBe(413);
    expect(res.body.code).toBe('payload_too_large');
    const messages = await t.call(admin(), 'GET', `/api/v1/tickets/${ticketId}/messages`);
    expect(messages.body.items).toHaveLength(1);
  });

  it.each([
    ['without a boundary', 'multipart/form-data', 'text=hi'],
    [
      'cut short',
      'multipart/form-data; boundary=B',
      '--B\r\nContent-Disposition: form-data; name="visibility"\r\n\r\ninternal\r\n--B\r\n' +
        'Content-Disposition: form-data; name="text"\r\n\r\nhi\r\n--B',
    ],
    ['that is no multipart at all', 'multipart/form-data; boundary=B', 'not a form'],
  ])('refuses a multipart body %s with 400 bad_request, writing nothing', async (_, type, body) => {
    const { ticketId } = await customerMail({});
    const res = await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, Buffer.from(body), {
      'content-type': type,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body.code).toBe('bad_request');
    const messages = await t.call(admin(), 'GET', `/api/v1/tickets/${ticketId}/messages`);
    expect(messages.body.items).toHaveLength(1);
  });
});

describe('failed sends', () => {
  const reply = async () => {
    const { ticketId } = await customerMail({});
    const res = await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
      visibility: 'public',
      text: 'On it',
    });
    expect(res.status).toBe(201);
    return ticketId!;
  };

  it.each([
    ['DATA', 451],
    ['MAIL', 421],
  ] as const)(
    'SMTP %s %i is retried as a new attempt after a delay, and the mail goes once',
    async (command, code) => {
      const ticketId = await reply();
      smtp.fault({ command, code, times: 1 });
      const [first] = await sendQueued();
      expect(first).toMatchObject({ failed: 'transient', inSeconds: 30 });
      const [a1, a2] = (await deliveries(ticketId)).reverse();
      expect(a1).toMatchObject({ status: 'failed', errorCode: 'transient', retryable: true, attempt: 1 });
      // A 421 closes the connection: the pool reports the close, not the code.
      expect(a1!.errorMessage).toMatch(new RegExp(`${code}|connection was closed`));
      expect(a2).toMatchObject({ status: 'queued', attempt: 2, previousId: a1!.id });
      // The message says where its mail stands: the latest attempt, how many, the last failure.
      const thread = await t.call(admin(), 'GET', `/api/v1/tickets/${ticketId}/messages`);
      const mine = thread.body.items.find((m: any) => m.direction === 'outbound');
      expect(mine.delivery).toMatchObject({ id: a2!.id, status: 'queued', attempt: 2, attempts: 2 });
      expect(mine.delivery.lastError).toBe(a1!.errorMessage);
      const job = await t.db.admin.query<{ wait: number }>(
        "SELECT extract(epoch FROM start_after - created_on)::int AS wait FROM pgboss.job WHERE name = 'outbound.send' AND data->>'deliveryId' = $1",
        [a2!.id],
      );
      expect(job.rows[0]!.wait).toBeGreaterThanOrEqual(29);
      expect(smtp.messages()).toHaveLength(0);
      await sendQueued();
      expect(smtp.messages()).toHaveLength(1);
      expect((await deliveries(ticketId))[0]).toMatchObject({ status: 'sent', attempt: 2 });
    },
  );

  it('SMTP 550 for the only recipient is terminal; a person may retry it', async () => {
    const ticketId = (await customerMail({ Cc: ADDRESS })).ticketId!;
    await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
      visibility: 'public',
      text: 'On it',
    });
    smtp.fault({ command: 'RCPT', code: 550, message: 'No such user', times: 1 });
    expect(await sendQueued()).toEqual([{ failed: 'invalid_recipient' }]);
    const [attempt] = await deliveries(ticketId);
    expect(attempt).toMatchObject({ status: 'failed', errorCode: 'invalid_recipient', retryable: false });
    expect(await sendQueued()).toEqual([]);
    // Someone hears of it: a delivery.failed event, by the tenant's rules.
    const { rows: told } = await t.db.admin.query(
      "SELECT data FROM events WHERE type = 'delivery.failed' AND ticket_id = $1",
      [ticketId],
    );
    expect(told.map((r) => r.data)).toEqual([
      expect.objectContaining({
        deliveryId: attempt!.id,
        channel: 'email',
        purpose: 'reply',
        errorCode: 'invalid_recipient',
      }),
    ]);

    // Two people retry at once: one new attempt.
    const both = await Promise.all([
      t.call(admin(), 'POST', `/api/v1/deliveries/${attempt!.id}/retry`),
      t.call(admin(), 'POST', `/api/v1/deliveries/${attempt!.id}/retry`),
    ]);
    expect(both.map((r) => r.status).sort()).toEqual([202, 400]);
    const retried = both.find((r) => r.status === 202)!;
    expect(retried.body.ticketId).toBe(ticketId);
    expect(retried.status).toBe(202);
    expect(retried.body).toMatchObject({ status: 'queued', attempt: 2, previousId: attempt!.id });
    await sendQueued();
    expect(smtp.messages()).toHaveLength(1);
    const again = await t.call(admin(), 'POST', `/api/v1/deliveries/${attempt!.id}/retry`);
    expect(again.status).toBe(400);
    expect(again.body.detail).toContain('sent');
  });

  it('a recipient refused beside accepted ones is noted on the sent attempt', async () => {
    const ticketId = await reply();
    smtp.fault({ command: 'RCPT', address: 'dave@customer.test', code: 550, message: 'No such user' });
    expect(await sendQueued()).toEqual([{ sent: expect.stringMatching(/^250 /) }]);
    expect(smtp.messages()[0]!.to).toEqual(['carol@customer.test']);
    const [attempt] = await deliveries(ticketId);
    expect(attempt).toMatchObject({ status: 'sent', errorCode: 'invalid_recipient' });
    expect(attempt!.errorMessage).toContain('dave@customer.test');
  });

  it('a wrong SMTP password is an auth failure, not retried', async () => {
    const other = await t.call(admin(), 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: 'billing@out.test',
      settings: {
        smtp: { host: smtp.host, port: smtp.port, security: 'starttls', username: 'relay', ca: smtp.ca },
      },
      credentials: { smtpPassword: 'wrong' },
    });
    const { ticketId } = await customerMail({});
    const res = await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
      visibility: 'public',
      text: 'x',
      mailboxId: other.body.id,
    });
    expect(res.status).toBe(201);
    expect(await sendQueued()).toEqual([{ failed: 'auth' }]);
    expect(smtp.messages()).toHaveLength(0);
  });
});

describe('later replies of a conversation', () => {
  it("is the first reply's for a ticket opened by API, not the tenant's first mailbox", async () => {
    const sales = await relayMailbox(admin(), 'sales@out.test', 'Contoso Sales');
    const opened = await t.call(admin(), 'POST', '/api/v1/tickets', {
      subject: 'Quote for 40 laptops',
      requester: { email: 'erin@buyer.test', name: 'Erin' },
    });
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    const reply = (body: Record<string, unknown>) =>
      t.call(admin(), 'POST', `/api/v1/tickets/${opened.body.id}/messages`, {
        visibility: 'public',
        ...body,
      });
    expect((await reply({ text: 'Here is our quote.', mailboxId: sales })).status).toBe(201);
    // The next reply names no mailbox: the conversation's is the one the customer was written from.
    expect((await reply({ text: 'Did the quote reach you?' })).status).toBe(201);
    expect(await sendQueued()).toEqual([{ sent: expect.any(String) }, { sent: expect.any(String) }]);
    const sent = smtp.messages().filter((m) => m.to.includes('erin@buyer.test'));
    expect(sent.map((m) => m.headers['from']![0])).toEqual([
      'Contoso Sales <sales@out.test>',
      'Contoso Sales <sales@out.test>',
    ]);
    // The second is threaded under the first.
    expect(sent[1]!.headers['in-reply-to']).toEqual([sent[0]!.messageId]);
  });
  it('copies whom an agent copied on later replies too, never whom they blind-copied', async () => {
    const { ticketId } = await customerMail({ Cc: ADDRESS, From: 'Frank <frank@customer.test>' });
    const reply = (body: Record<string, unknown>) =>
      t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, { visibility: 'public', ...body });
    const first = await reply({
      text: 'Looping in your manager.',
      cc: ['Gina@Customer.test'],
      bcc: ['audit@out-archive.test'],
    });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const second = await reply({ text: 'Any news?' });
    expect(second.body.mail.cc.map((a: { address: string }) => a.address)).toEqual(['gina@customer.test']);
    expect(await sendQueued()).toEqual([{ sent: expect.any(String) }, { sent: expect.any(String) }]);
    const sent = smtp.messages().filter((m) => m.to.includes('frank@customer.test'));
    expect(sent.map((m) => m.to.sort())).toEqual([
      ['audit@out-archive.test', 'frank@customer.test', 'gina@customer.test'],
      ['frank@customer.test', 'gina@customer.test'],
    ]);
  });
});

describe('a batch of send jobs (the worker)', () => {
  it('sends each queued attempt once, records a failure on its own, and skips a repeated job', async () => {
    const replies = [];
    for (const who of ['hank', 'ivy', 'jo']) {
      const { ticketId } = await customerMail({ From: `${who}@batch.test`, Cc: ADDRESS });
      const res = await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
        visibility: 'public',
        text: `Hello ${who}`,
      });
      replies.push(res.body.delivery.id as string);
    }
    smtp.fault({ command: 'RCPT', address: 'ivy@batch.test', code: 550, message: 'No such user' });
    const ctx = {
      send: t.queue.send.bind(t.queue),
      signal: new AbortController().signal,
    } as never;
    const items = [...replies, replies[0]!].map((deliveryId) => ({
      payload: { tenantId: t.a.tenant.id, deliveryId },
      ctx,
    }));
    const results = await sendDeliveryBatch({ pool: t.db.pool, clock: t.clock, logger, transports }, items);
    expect(results).toEqual([
      { ok: true, output: { sent: expect.stringMatching(/^250 /) } },
      { ok: true, output: { failed: 'invalid_recipient' } },
      { ok: true, output: { sent: expect.stringMatching(/^250 /) } },
      { ok: true, output: { already: 'sent' } },
    ]);
    expect(
      smtp
        .messages()
        .map((m) => m.to[0])
        .sort(),
    ).toEqual(['hank@batch.test', 'jo@batch.test']);
    const statuses = await Promise.all(
      replies.map(async (id) => (await t.call(admin(), 'GET', `/api/v1/deliveries/${id}`)).body),
    );
    expect(statuses.map((d) => [d.status, d.errorCode])).toEqual([
      ['sent', null],
      ['failed', 'invalid_recipient'],
      ['sent', null],
    ]);
    expect(statuses[0].durationMs).toEqual(expect.any(Number));
    // Run again (a redelivered batch): nothing more goes out.
    await sendDeliveryBatch({ pool: t.db.pool, clock: t.clock, logger, transports }, items);
    expect(smtp.messages()).toHaveLength(2);
  });
});

describe('the signature', () => {
  it("is the tenant's signature template filled from the ticket, its requester and the writing agent", async () => {
    const template = await t.call(admin(), 'POST', '/api/v1/mail-templates', {
      kind: 'signature',
      name: 'default',
      text: 'Yours, {{ agent.name }} for {{ requester.name }} on {{ ticket.number }} via {{ mailbox.address }}',
    });
    expect(template.status, JSON.stringify(template.body)).toBe(201);
    try {
      const { ticketId } = await customerMail({ From: 'Gus Guest <gus@sign.test>', Cc: ADDRESS });
      const posted = await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
        visibility: 'public',
        text: 'A signed reply',
      });
      expect(posted.status, JSON.stringify(posted.body)).toBe(201);
      await sendQueued();
      const agent = (await t.call(admin(), 'GET', '/api/v1/me')).body.person.displayName as string;
      const number = (await t.call(admin(), 'GET', `/api/v1/tickets/${ticketId}`)).body.number as string;
      const mail = smtp.messages().find((m) => m.to.includes('gus@sign.test'));
      expect(mail!.raw.toString('utf8')).toContain(
        `A signed reply\r\n\r\n-- \r\nYours, ${agent} for Gus Guest on ${number} via ${ADDRESS}`,
      );
    } finally {
      await t.call(admin(), 'DELETE', `/api/v1/mail-templates/${template.body.id}`);
    }
  });
});

describe('a database outage right after the send', () => {
  it('records the mail sent once the database answers again, in a batch and alone, instead of leaving it unknown', async () => {
    const ids: string[] = [];
    for (const who of ['lou', 'mo']) {
      const { ticketId } = await customerMail({ From: `${who}@outage.test`, Cc: ADDRESS });
      const res = await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
        visibility: 'public',
        text: `Sent during an outage, ${who}`,
      });
      ids.push(res.body.delivery.id as string);
    }
    // The first two tries to record each mail sent fail as a lost connection does (SQLSTATE 08006).
    const outage = await failWritesAsLostConnection(t.db.admin, {
      table: 'deliveries',
      ids,
      status: 'sent',
      times: 2,
    });
    const pauses: number[] = [];
    const deps = {
      pool: t.db.pool,
      clock: t.clock,
      logger,
      transports,
      leaseSeconds: 60,
      sleep: async (ms: number) => void pauses.push(ms),
    };
    const ctx = { send: t.queue.send.bind(t.queue), signal: new AbortController().signal } as never;
    try {
      const batch = await sendDeliveryBatch(deps, [
        { payload: { tenantId: t.a.tenant.id, deliveryId: ids[0]! }, ctx },
      ]);
      expect(batch).toEqual([{ ok: true, output: { sent: expect.stringMatching(/^250 /) } }]);
      expect(pauses).toEqual([100, 200]);
      await outage.restart();
      const alone = await sendDelivery(deps, { tenantId: t.a.tenant.id, deliveryId: ids[1]! }, ctx);
      expect(alone).toEqual({ sent: expect.stringMatching(/^250 /) });
      expect(pauses).toEqual([100, 200, 100, 200]);
    } finally {
      await outage.remove();
    }
    for (const id of ids)
      expect((await t.call(admin(), 'GET', `/api/v1/deliveries/${id}`)).body).toMatchObject({
        status: 'sent',
        errorCode: null,
      });
    // Each mail went out once.
    for (const who of ['lou', 'mo'])
      expect(smtp.messages().filter((m) => m.to.includes(`${who}@outage.test`))).toHaveLength(1);
  });
});

describe('a batch of send jobs across tenants', () => {
  it("sends each tenant's mail through its own mailbox, and a job naming another tenant's attempt sends nothing", async () => {
    const otherId = await relayMailbox(t.b.adminToken.token, 'help@b-out.test');
    const bTicket = await ingestRawMessage(t.inboundDeps(), t.queue, {
      tenantId: t.b.tenant.id,
      mailboxId: otherId,
      raw: Buffer.from(
        'From: Bea <bea@customer-b.test>\r\nTo: help@b-out.test\r\nSubject: B needs help\r\n' +
          `Message-ID: <${Math.random().toString(36).slice(2)}@customer-b.test>\r\n\r\nHello\r\n`,
      ),
    });
    const bReply = await t.call(
      t.b.adminToken.token,
      'POST',
      `/api/v1/tickets/${bTicket.ticketId}/messages`,
      {
        visibility: 'public',
        text: 'Hello from B',
      },
    );
    const { ticketId } = await customerMail({ From: 'kim@batch.test', Cc: ADDRESS });
    const aReply = await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
      visibility: 'public',
      text: 'Hello from A',
    });
    const ctx = { send: t.queue.send.bind(t.queue), signal: new AbortController().signal } as never;
    const items = [
      { tenantId: t.a.tenant.id, deliveryId: aReply.body.delivery.id as string },
      // A payload naming tenant A with B's attempt: no statement of the batch matches that pair.
      { tenantId: t.a.tenant.id, deliveryId: bReply.body.delivery.id as string },
      { tenantId: t.b.tenant.id, deliveryId: bReply.body.delivery.id as string },
    ].map((payload) => ({ payload, ctx }));
    const results = await sendDeliveryBatch({ pool: t.db.pool, clock: t.clock, logger, transports }, items);
    expect(results).toEqual([
      { ok: true, output: { sent: expect.stringMatching(/^250 /) } },
      { ok: true, output: { skipped: 'no such delivery' } },
      { ok: true, output: { sent: expect.stringMatching(/^250 /) } },
    ]);
    const sent = smtp.messages().map((m) => [m.from, m.to]);
    expect(sent).toEqual(
      expect.arrayContaining([
        [ADDRESS, ['kim@batch.test']],
        ['help@b-out.test', ['bea@customer-b.test']],
      ]),
    );
    expect(sent).toHaveLength(2);
    const b = await t.call(t.b.adminToken.token, 'GET', `/api/v1/deliveries/${bReply.body.delivery.id}`);
    expect(b.body.status).toBe('sent');
  });
});

describe('the ledger', () => {
  it('is tenant-scoped on every route, and needs deliveries:read', async () => {
    const { ticketId } = await customerMail({});
    await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
      visibility: 'public',
      text: 'x',
    });
    const [own] = await deliveries(ticketId!);
    const b = t.b.adminToken.token;
    expect((await t.call(b, 'GET', `/api/v1/deliveries/${own!.id}`)).status).toBe(404);
    expect((await t.call(b, 'POST', `/api/v1/deliveries/${own!.id}/retry`)).status).toBe(404);
    expect((await t.call(b, 'GET', `/api/v1/deliveries?ticketId=${ticketId}`)).body.items).toEqual([]);
    // B's own ledger (its mail of other tests) holds none of A's attempts.
    const aIds = new Set(
      (await t.call(admin(), 'GET', '/api/v1/deliveries?limit=200')).body.items.map((d: any) => d.id),
    );
    const bItems = (await t.call(b, 'GET', '/api/v1/deliveries?limit=200')).body.items as any[];
    expect(bItems.filter((d) => aIds.has(d.id))).toEqual([]);
    const post = await t.call(b, 'POST', `/api/v1/tickets/${ticketId}/messages`, {
      visibility: 'public',
      text: 'x',
    });
    expect(post.status).toBe(404);
    const viewer = await t.call(admin(), 'POST', '/api/v1/tokens', { role: 'viewer', label: 'v' });
    expect((await t.call(viewer.body.token, 'GET', '/api/v1/deliveries')).status).toBe(403);
    expect((await t.call(admin(), 'GET', `/api/v1/deliveries/${own!.id}`)).status).toBe(200);
  });

  it('filters by status and error code and pages with a cursor', async () => {
    // Three failed attempts of this test's own (more than a page of 2), each refused by the server.
    const seeded: string[] = [];
    for (const who of ['pia', 'quinn', 'rui']) {
      const from = `${who}@pages.test`;
      const { ticketId } = await customerMail({ From: from, Cc: ADDRESS });
      await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
        visibility: 'public',
        text: 'Paged',
      });
      smtp.fault({ command: 'RCPT', code: 550, address: from, times: 1 });
      await sendQueued();
      const [attempt] = await deliveries(ticketId!);
      expect(attempt).toMatchObject({ status: 'failed', destination: from });
      seeded.push(attempt!.id);
    }
    const failed = (cursor?: string) =>
      t.call(admin(), 'GET', `/api/v1/deliveries?status=failed&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
    const page = await failed();
    expect(page.status).toBe(200);
    expect(page.body.items).toHaveLength(2);
    expect(page.body.nextCursor).toEqual(expect.any(String));
    const next = await failed(page.body.nextCursor);
    expect(next.status).toBe(200);
    expect(next.body.items.length).toBeGreaterThan(0);
    const ids = (p: { body: { items: { id: string }[] } }) => p.body.items.map((d) => d.id);
    expect(ids(next).filter((id) => ids(page).includes(id))).toEqual([]);
    // Every page to the end: each failed attempt once, newest first, as one unpaged list has them.
    const all = [...ids(page), ...ids(next)];
    const statuses = [...page.body.items, ...next.body.items].map((d: { status: string }) => d.status);
    for (let cursor = next.body.nextCursor; cursor;) {
      const more = await failed(cursor);
      all.push(...ids(more));
      statuses.push(...more.body.items.map((d: { status: string }) => d.status));
      cursor = more.body.nextCursor;
    }
    expect(statuses.every((s) => s === 'failed')).toBe(true);
    expect(new Set(all).size).toBe(all.length);
    expect(all).toEqual(ids(await t.call(admin(), 'GET', '/api/v1/deliveries?status=failed&limit=200')));
    expect(all.slice(0, 3)).toEqual([...seeded].reverse());
    const bad = await t.call(admin(), 'GET', '/api/v1/deliveries?cursor=nonsense');
    expect(bad.status).toBe(400);
    const codes = await t.call(admin(), 'GET', '/api/v1/deliveries?errorCode=invalid_recipient');
    expect(codes.body.items.every((d: { errorCode: string }) => d.errorCode === 'invalid_recipient')).toBe(
      true,
    );
  });
});

describe('the ledger for the console', () => {
  it('filters by purpose, destination and ticket number, and names each ticket by its number', async () => {
    const { ticketId } = await customerMail({});
    await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
      visibility: 'public',
      text: 'y',
    });
    const ticket = (await t.call(admin(), 'GET', `/api/v1/tickets/${ticketId}`)).body;
    const [own] = await deliveries(ticketId!);
    expect(own).toMatchObject({ purpose: 'reply', ticketNumber: ticket.number });

    const list = async (query: string) =>
      (await t.call(admin(), 'GET', `/api/v1/deliveries?${query}`)).body.items as Record<string, any>[];
    const byNumber = await list(`ticketNumber=${ticket.number}`);
    expect(byNumber.map((d) => d.id)).toEqual((await deliveries(ticketId!)).map((d) => d.id));
    expect(byNumber.every((d) => d.ticketNumber === ticket.number)).toBe(true);
    expect(await list('ticketNumber=T-999999')).toEqual([]);
    const replies = await list(`purpose=reply&destination=${encodeURIComponent(own!.destination)}`);
    expect(replies.map((d) => d.id)).toContain(own!.id);
    expect(replies.every((d) => d.purpose === 'reply' && d.destination === own!.destination)).toBe(true);
    expect(await list('purpose=notification&destination=nobody%40nowhere.test')).toEqual([]);
    expect((await t.call(admin(), 'GET', `/api/v1/deliveries/${own!.id}`)).body.ticketNumber).toBe(
      ticket.number,
    );

    // Another tenant's number names nothing of this tenant's, nor does this tenant's number there.
    const b = t.b.adminToken.token;
    expect((await t.call(b, 'GET', `/api/v1/deliveries?ticketNumber=${ticket.number}`)).body.items).toEqual(
      [],
    );
    const bad = await t.call(admin(), 'GET', '/api/v1/deliveries?purpose=spam&ticketNumber=12');
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('validation_failed');
  });
});

describe('acknowledgements', () => {
  let ackBox: string;
  const ACK = 'help@ack.test';
  beforeAll(async () => {
    const res = await t.call(admin(), 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: ACK,
      displayName: 'Help Desk',
      settings: {
        automaticMayOpenTickets: true,
        smtp: { host: smtp.host, port: smtp.port, security: 'starttls', username: 'relay', ca: smtp.ca },
        outbound: { acknowledge: true, portalLink: 'https://portal.ack.test/requests/{number}' },
      },
      credentials: { smtpPassword: 's3cret' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    ackBox = res.body.id;
  });
  const mail = (from: string, subject: string, extra: Record<string, string> = {}) =>
    mailTo(
      ackBox,
      {
        From: from,
        To: ACK,
        Subject: subject,
        'Message-ID': `<${Math.random().toString(36).slice(2)}@sender.test>`,
        ...extra,
      },
      'Please help',
    );

  it('acknowledges a new ticket once, automatic and threaded back', async () => {
    const opened = await mail('Frank <frank@sender.test>', 'VPN down');
    expect(opened.status).toBe('created');
    const [decision] = await runMailJobs();
    expect(decision).toMatchObject({ queued: expect.any(String) });
    await sendQueued();
    const acks = smtp.messages().filter((m) => m.to.includes('frank@sender.test'));
    expect(acks).toHaveLength(1);
    const [ack] = acks;
    expect(ack!.to).toEqual(['frank@sender.test']);
    expect(ack!.headers['auto-submitted']).toEqual(['auto-replied']);
    expect(ack!.headers['x-auto-response-suppress']).toEqual(['All']);
    expect(ack!.headers['subject']![0]).toContain(opened.ticketNumber!);
    expect(ack!.raw.toString()).toContain(opened.ticketNumber!);
    // The customer is sent to the desk's portal, never to the agents' console.
    expect(ack!.raw.toString()).toContain(`https://portal.ack.test/requests/${opened.ticketNumber}`);
    expect(ack!.raw.toString()).not.toContain('/console/');
    // The job again (a redelivery) sends nothing more.
    expect(
      await acknowledgeTicket(
        { pool: t.db.pool, clock: t.clock, messageIdKey: messageIdKey(t.secretKey) },
        (
          await t.db.admin.query(`SELECT data FROM pgboss.job WHERE name = $1 AND data->>'ticketId' = $2`, [
            ticketOpenedByMailJob.name,
            opened.ticketId,
          ])
        ).rows[0].data,
        { send: t.queue.send.bind(t.queue) } as never,
      ),
    ).toEqual({ skipped: 'already acknowledged' });
    // Frank's answer to the acknowledgement lands on the same ticket.
    const answer = await mail('Frank <frank@sender.test>', 'thanks', { 'In-Reply-To': ack!.messageId! });
    expect(answer).toMatchObject({ status: 'appended', ticketId: opened.ticketId });
    expect(await runMailJobs()).toEqual([]);
  });

  it('links only to an http(s) portal given with {number}', async () => {
    for (const portalLink of [
      'https://portal.ack.test/requests',
      'javascript:alert(1)//{number}',
      'https://user:pw@portal.ack.test/{number}',
      `https://portal.ack.test/${'x'.repeat(500)}{number}`,
    ]) {
      const res = await t.call(admin(), 'PATCH', `/api/v1/mailboxes/${ackBox}`, {
        settings: { outbound: { portalLink } },
      });
      expect(res.status, portalLink).toBe(400);
      expect(JSON.stringify(res.body.errors)).toContain('outbound/portalLink');
    }
  });

  it('never acknowledges automatic mail, and records why', async () => {
    const opened = await mail('robot@sender.test', 'Out of office', { 'Auto-Submitted': 'auto-replied' });
    expect(opened.status).toBe('created');
    expect(await runMailJobs()).toEqual([{ skipped: 'automatic' }]);
    const [d] = await deliveries(opened.ticketId!);
    expect(d).toMatchObject({ status: 'skipped', skipReason: 'automatic', purpose: 'acknowledgement' });
  });

  /** A delivery-status report from a mail server to the desk (no Auto-Submitted), quoting `quoted`. */
  const bounce = (quoted: string) =>
    mailTo(
      ackBox,
      {
        From: 'Mail Delivery System <MAILER-DAEMON@mx.sender.test>',
        To: ACK,
        Subject: 'Undelivered Mail Returned to Sender',
        'Message-ID': `<dsn-${Math.random().toString(36).slice(2)}@mx.sender.test>`,
        'MIME-Version': '1.0',
        'Content-Type': 'multipart/report; report-type=delivery-status; boundary="B"',
      },
      [
        '--B',
        'Content-Type: text/plain',
        '',
        'This is the mail system at host mx.sender.test.',
        '--B',
        'Content-Type: message/delivery-status',
        '',
        'Reporting-MTA: dns; mx.sender.test',
        '',
        'Final-Recipient: rfc822; gone@sender.test',
        'Action: failed',
        'Status: 5.1.1',
        '--B',
        'Content-Type: text/rfc822-headers',
        '',
        `Message-ID: ${quoted}`,
        'Subject: Hello',
        '--B--',
      ].join('\r\n'),
    );

  it('never acknowledges a bounce, which opens a ticket only where automatic mail may, and records why', async () => {
    // Where automatic mail may not open tickets, a bounce opens none: nothing to acknowledge.
    const off = await t.call(admin(), 'PATCH', `/api/v1/mailboxes/${ackBox}`, {
      settings: { automaticMayOpenTickets: false },
    });
    expect(off.status, JSON.stringify(off.body)).toBe(200);
    try {
      expect(await bounce('<lost-1@elsewhere.test>')).toMatchObject({ status: 'skipped', reason: 'bounce' });
      expect(await runMailJobs()).toEqual([]);
    } finally {
      const on = await t.call(admin(), 'PATCH', `/api/v1/mailboxes/${ackBox}`, {
        settings: { automaticMayOpenTickets: true },
      });
      expect(on.status, JSON.stringify(on.body)).toBe(200);
    }
    // This mailbox lets it open one (it quotes no mail of any ticket), and it is not acknowledged.
    const opened = await bounce('<lost-2@elsewhere.test>');
    expect(opened.status).toBe('created');
    expect(await runMailJobs()).toEqual([{ skipped: 'bounce' }]);
    expect(await deliveries(opened.ticketId!)).toEqual([
      expect.objectContaining({
        status: 'skipped',
        skipReason: 'bounce',
        purpose: 'acknowledgement',
        destination: 'mailer-daemon@mx.sender.test',
      }),
    ]);
    await sendQueued();
    expect(smtp.messages()).toEqual([]);
  });

  it.each([
    ['its address', 'Help Desk <help@ack.test>'],
    ['a plus form of it, in another case', 'Help+x@ACK.test'],
  ])('never acknowledges mail from one of our own mailboxes (%s): it opens no ticket', async (_, from) => {
    const outcome = await mail(from, 'Looped back');
    expect(outcome).toMatchObject({ status: 'skipped', reason: 'own_mail', ticketId: null });
    expect(await runMailJobs()).toEqual([]);
    await sendQueued();
    expect(smtp.messages()).toEqual([]);
  });

  it.each([
    ['its address', 'desk1@ack.test', 'desk1@ack.test'],
    ['a plus form of it, in another case', 'Desk2+T-9@Ack.Test', 'desk2@ack.test'],
  ])(
    'never acknowledges an address that became one of our mailboxes (%s) before the acknowledgement was decided, and records why',
    async (_, from, mailbox) => {
      const opened = await mail(from, 'Before the mailbox existed');
      expect(opened.status).toBe('created');
      await relayMailbox(admin(), mailbox);
      expect(await runMailJobs()).toEqual([{ skipped: 'own_address' }]);
      expect(await deliveries(opened.ticketId!)).toEqual([
        expect.objectContaining({
          status: 'skipped',
          skipReason: 'own_address',
          purpose: 'acknowledgement',
          destination: from.toLowerCase(),
        }),
      ]);
      await sendQueued();
      expect(smtp.messages()).toEqual([]);
    },
  );

  it('records no_recipient for a ticket whose message and requester have no address', async () => {
    // From mail this cannot happen: mail without a sender opens no ticket, so there is no job.
    const noSender = await mailTo(
      ackBox,
      { To: ACK, Subject: 'Who am I', 'Message-ID': `<${Math.random().toString(36).slice(2)}@sender.test>` },
      'No From',
    );
    expect(noSender).toMatchObject({ status: 'skipped', reason: 'no_sender', ticketId: null });
    expect(await runMailJobs()).toEqual([]);
    // A job naming a ticket of a requester without an address (made by an agent, its message no mail).
    const person = await t.call(admin(), 'POST', '/api/v1/people', {
      displayName: 'Nomail',
      kind: 'contact',
    });
    expect(person.status, JSON.stringify(person.body)).toBe(201);
    const ticket = await t.call(admin(), 'POST', '/api/v1/tickets', {
      subject: 'By phone',
      requester: { personId: person.body.id },
      message: { text: 'Called in' },
    });
    expect(ticket.status, JSON.stringify(ticket.body)).toBe(201);
    const [first] = (await t.call(admin(), 'GET', `/api/v1/tickets/${ticket.body.id}/messages`)).body.items;
    const decision = await acknowledgeTicket(
      { pool: t.db.pool, clock: t.clock, messageIdKey: messageIdKey(t.secretKey) },
      { tenantId: t.a.tenant.id, ticketId: ticket.body.id, ticketMessageId: first.id, mailboxId: ackBox },
      { send: t.queue.send.bind(t.queue) } as never,
    );
    expect(decision).toEqual({ skipped: 'no_recipient' });
    expect(await deliveries(ticket.body.id)).toEqual([
      expect.objectContaining({
        status: 'skipped',
        skipReason: 'no_recipient',
        purpose: 'acknowledgement',
        destination: '',
      }),
    ]);
    await sendQueued();
    expect(smtp.messages()).toEqual([]);
  });

  it('threads the bounce of an acknowledgement to its ticket as a note, opening no ticket', async () => {
    const opened = await mail('Gone <gone@sender.test>', 'Where is my order');
    expect(await runMailJobs()).toEqual([{ queued: expect.any(String) }]);
    await sendQueued();
    const [ack] = smtp.messages();
    expect(ack!.to).toEqual(['gone@sender.test']);
    const bounced = await bounce(ack!.messageId!);
    expect(bounced).toMatchObject({
      status: 'appended',
      ticketId: opened.ticketId,
      reason: 'thread: bounce',
    });
    const thread = (await t.call(admin(), 'GET', `/api/v1/tickets/${opened.ticketId}/messages`)).body.items;
    // Newest first: the report, a note for the agents, after the customer's message.
    expect(thread.map((m: { visibility: string }) => m.visibility)).toEqual(['internal', 'public']);
    // The report marks the acknowledgement bounced; nothing acknowledges the bounce.
    expect(await runMailJobs()).toEqual([{ bounced: [expect.any(String)] }]);
    expect(await deliveries(opened.ticketId!)).toEqual([
      expect.objectContaining({ purpose: 'acknowledgement', status: 'bounced' }),
    ]);
  });

  it('an auto-responder answering every mail gets at most the cap, never a storm', async () => {
    const BOT = 'autobot@loop.test';
    let round = 0;
    await mail(BOT, `Automatic answer ${round}`);
    for (; round < 12; round++) {
      await runMailJobs();
      await sendQueued();
      const acks = smtp.messages().filter((m) => m.to.includes(BOT));
      smtp.clear();
      if (acks.length === 0) {
        // Nothing more to answer: the loop has stopped. (Its mail still opens tickets, unanswered.)
        await mail(BOT, `Automatic answer again ${round}`);
        continue;
      }
      // The naive auto-responder: a new mail, no threading headers, no Auto-Submitted.
      for (const _ of acks) await mail(BOT, `Automatic answer ${round}`);
    }
    await runMailJobs();
    const { rows } = await t.db.admin.query<{ status: string; skip_reason: string | null; n: number }>(
      `SELECT status, skip_reason, count(*)::int AS n FROM deliveries WHERE destination = $1 GROUP BY 1, 2 ORDER BY 1`,
      [BOT],
    );
    expect(rows).toEqual([
      { status: 'sent', skip_reason: null, n: 5 },
      { status: 'skipped', skip_reason: 'recipient_cap', n: expect.any(Number) },
    ]);
    expect(rows[1]!.n).toBeGreaterThanOrEqual(5);
  });
});

describe('delivery-status reports', () => {
  /** A customer's ticket (To carol, Cc dave) and the agent's answer to it, sent: the attempt's destination is carol. */
  async function answered(): Promise<{ ticketId: string; messageId: string; sentId: string }> {
    const { ticketId } = await customerMail({});
    const posted = await t.call(admin(), 'POST', `/api/v1/tickets/${ticketId}/messages`, {
      visibility: 'public',
      text: 'Answer',
    });
    await sendQueued();
    const [sent] = smtp.messages();
    expect(sent!.to).toEqual(['carol@customer.test', 'dave@customer.test']);
    return { ticketId: ticketId!, messageId: posted.body.id, sentId: sent!.messageId! };
  }

  /**
   * The customer's MTA reports on the mail `sentId`: a multipart/report whose message/delivery-status
   * part has these per-recipient field blocks or, with `null`, a plain-text bounce (no such part,
   * only X-Failed-Recipients and the original's headers attached), as many MTAs send.
   */
  async function report(sentId: string, recipients: string[][] | null): Promise<void> {
    const head = [
      'From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>',
      `To: ${ADDRESS}`,
      'Subject: Delivery Status Notification',
      `Message-ID: <dsn-${Math.random().toString(36).slice(2)}@mx.customer.test>`,
      'Auto-Submitted: auto-replied',
      'MIME-Version: 1.0',
    ];
    const original = [
      'Content-Type: text/rfc822-headers',
      '',
      `Message-ID: ${sentId}`,
      'Subject: Re: Printer broken',
    ];
    const lines =
      recipients === null
        ? [
            ...head,
            'X-Failed-Recipients: carol@customer.test',
            'Content-Type: multipart/mixed; boundary="B"',
            '',
            '--B',
            'Content-Type: text/plain',
            '',
            'This message was created automatically by mail delivery software.',
            'A message that you sent could not be delivered to one or more of its recipients:',
            '  carol@customer.test: mailbox unavailable',
            '--B',
            ...original,
            '--B--',
            '',
          ]
        : [
            ...head,
            'Content-Type: multipart/report; report-type=delivery-status; boundary="B"',
            '',
            '--B',
            'Content-Type: text/plain',
            '',
            'This is the mail system at host mx.customer.test.',
            '--B',
            'Content-Type: message/delivery-status',
            '',
            'Reporting-MTA: dns; mx.customer.test',
            'Arrival-Date: Mon, 2 Mar 2026 10:00:00 +0000',
            ...recipients.flatMap((fields) => ['', ...fields]),
            '--B',
            ...original,
            '--B--',
            '',
          ];
    await ingestRawMessage(t.inboundDeps(), t.queue, {
      tenantId: t.a.tenant.id,
      mailboxId,
      raw: Buffer.from(lines.join('\r\n')),
    });
  }

  /** The delivery.failed events recorded for this attempt. */
  const failedEvents = async (deliveryId: string) =>
    (
      await t.db.admin.query<{ ticket_id: string | null; data: Record<string, unknown> }>(
        "SELECT ticket_id, data FROM events WHERE type = 'delivery.failed' AND data->>'deliveryId' = $1",
        [deliveryId],
      )
    ).rows;

  it('mark the attempt bounced when they say it failed for its destination, with the reported status, and tell of it once', async () => {
    const { ticketId, messageId, sentId } = await answered();
    await report(sentId, [
      [
        // The address as the MTA spells it: compared without regard to case.
        'Final-Recipient: rfc822; Carol@Customer.TEST',
        'Action: failed',
        'Status: 5.1.1',
        'Remote-MTA: dns; mx.customer.test',
        'Diagnostic-Code: smtp; 550 5.1.1 <Carol@Customer.TEST>: Recipient address',
        ' rejected: User unknown in virtual mailbox table',
      ],
    ]);
    expect(await runMailJobs()).toEqual([{ bounced: [expect.any(String)] }]);
    const [d] = await deliveries(ticketId);
    expect(d).toMatchObject({
      status: 'bounced',
      ticketMessageId: messageId,
      errorCode: 'invalid_recipient',
      retryable: false,
    });
    expect(d!.errorMessage).toContain('5.1.1');
    expect(d!.errorMessage).toContain(
      'smtp; 550 5.1.1 <Carol@Customer.TEST>: Recipient address rejected: User unknown in virtual mailbox table',
    );
    // Someone hears of it, as of any mail that will not arrive (by the tenant's rules).
    expect(await failedEvents(d!.id)).toEqual([
      {
        ticket_id: ticketId,
        data: expect.objectContaining({
          deliveryId: d!.id,
          channel: 'email',
          purpose: 'reply',
          destination: 'carol@customer.test',
          errorCode: 'invalid_recipient',
          error: expect.stringContaining('5.1.1'),
        }),
      },
    ]);
    // The same report again (a second copy, a job run twice) changes nothing and tells nothing more.
    await report(sentId, [
      ['Final-Recipient: rfc822; carol@customer.test', 'Action: failed', 'Status: 5.1.1'],
    ]);
    await runMailJobs();
    expect((await deliveries(ticketId))[0]).toMatchObject({ id: d!.id, status: 'bounced' });
    expect(await failedEvents(d!.id)).toHaveLength(1);
  });

  it('classify a permanent failure other than the address as permanent', async () => {
    const { ticketId, sentId } = await answered();
    await report(sentId, [
      [
        'Final-Recipient: rfc822; carol@customer.test',
        'Action: failed',
        'Status: 5.7.1',
        'Diagnostic-Code: smtp; 550 5.7.1 Message rejected as spam',
      ],
    ]);
    expect(await runMailJobs()).toEqual([{ bounced: [expect.any(String)] }]);
    expect((await deliveries(ticketId))[0]).toMatchObject({ status: 'bounced', errorCode: 'permanent' });
  });

  it('leave the attempt sent when they say its delivery is only delayed', async () => {
    const { ticketId, sentId } = await answered();
    await report(sentId, [
      [
        'Final-Recipient: rfc822; carol@customer.test',
        'Action: delayed',
        'Status: 4.4.7',
        'Diagnostic-Code: smtp; 451 4.4.7 delivery delayed, will retry',
        'Will-Retry-Until: Fri, 6 Mar 2026 10:00:00 +0000',
      ],
    ]);
    expect(await runMailJobs()).toEqual([{ unchanged: 'the report says delayed' }]);
    const [d] = await deliveries(ticketId);
    expect(d).toMatchObject({ status: 'sent', errorCode: null });
    expect(await failedEvents(d!.id)).toEqual([]);
  });

  it('mark the attempt delivered when they say it was delivered', async () => {
    const { ticketId, sentId } = await answered();
    await report(sentId, [
      ['Final-Recipient: rfc822; carol@customer.test', 'Action: delivered', 'Status: 2.0.0'],
    ]);
    expect(await runMailJobs()).toEqual([{ delivered: [expect.any(String)] }]);
    const [d] = await deliveries(ticketId);
    expect(d).toMatchObject({ status: 'delivered', errorCode: null });
    expect(await failedEvents(d!.id)).toEqual([]);
  });

  it('leave the attempt sent when the failure is of another recipient (a Cc), not its destination', async () => {
    const { ticketId, sentId } = await answered();
    await report(sentId, [
      [
        'Final-Recipient: rfc822; dave@customer.test',
        'Action: failed',
        'Status: 5.1.1',
        'Diagnostic-Code: smtp; 550 5.1.1 user unknown',
      ],
      ['Final-Recipient: rfc822; carol@customer.test', 'Action: relayed', 'Status: 2.0.0'],
    ]);
    expect(await runMailJobs()).toEqual([{ unchanged: 'the report says relayed' }]);
    const [d] = await deliveries(ticketId);
    expect(d).toMatchObject({ status: 'sent', errorCode: null });
    expect(await failedEvents(d!.id)).toEqual([]);
  });

  it('mark the attempt bounced on a plain-text bounce, which has no delivery-status part to read', async () => {
    const { ticketId, sentId } = await answered();
    await report(sentId, null);
    expect(await runMailJobs()).toEqual([{ bounced: [expect.any(String)] }]);
    const [d] = await deliveries(ticketId);
    expect(d).toMatchObject({ status: 'bounced', errorCode: 'invalid_recipient', retryable: false });
    expect(await failedEvents(d!.id)).toHaveLength(1);
  });

  it('of a notification telling of a failed delivery mark it bounced but tell of it no more (no loop)', async () => {
    const deps = { messageIdKey: messageIdKey(t.secretKey), send: t.queue.send.bind(t.queue) };
    const mail = (about: string) => ({
      notificationId: uuidv7(),
      ticketId: null,
      to: { address: 'carol@customer.test', name: 'Carol' },
      subject: 'A delivery failed',
      text: 'A delivery failed.',
      about,
    });
    const [loop, other] = await withTenant(t.db.pool, t.a.tenant.id, async (tx) => [
      await queueNotificationMail(tx, deps, mail('delivery.failed')),
      await queueNotificationMail(tx, deps, mail('ticket.created')),
    ]);
    await sendQueued();
    const sent = smtp.messages();
    expect(sent).toHaveLength(2);
    for (const m of sent)
      await report(m.messageId!, [
        ['Final-Recipient: rfc822; carol@customer.test', 'Action: failed', 'Status: 5.1.1'],
      ]);
    expect(await runMailJobs()).toEqual([{ bounced: [loop] }, { bounced: [other] }]);
    // Both bounced; only the one about something else is told of (the other would mail about itself).
    expect(await failedEvents(loop!)).toEqual([]);
    expect(await failedEvents(other!)).toHaveLength(1);
  });
});
