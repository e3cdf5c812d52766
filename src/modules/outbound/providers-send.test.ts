// Replies through Microsoft 365 (Graph sendMail with our MIME) and Gmail (users.messages.send), each
// against its simulator: what the provider was asked to send, a 429 with Retry-After honoured, and a
// send whose outcome was unknown settled by asking the provider instead of sending again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GmailSimulator, startGmailSimulator } from '../../../simulators/gmail.ts';
import { type GraphSimulator, startGraphSimulator } from '../../../simulators/graph.ts';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { multipart } from '../../../test/multipart.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { createLogger } from '../../platform/logging.ts';
import { getMailbox } from '../inbound/mailboxes.ts';
import { outboundSendJob } from './job-refs.ts';
import { deliveryRow, markSending, reserveKey } from './ledger.ts';
import type { EmailPayload } from './model.ts';
import { sendDelivery } from './send.ts';
import { classifyProviderError, Transports } from './transports.ts';
import { GraphClient } from '../inbound/providers/graph/client.ts';

let t: TestApp;
let graph: GraphSimulator;
let gmail: GmailSimulator;
let transports: Transports;
const mailboxes: Record<'graph' | 'gmail', string> = { graph: '', gmail: '' };
const logger = createLogger('silent');
const admin = () => t.a.adminToken.token;

const run = (deliveryId: string) =>
  sendDelivery(
    { pool: t.db.pool, clock: t.clock, logger, transports },
    { tenantId: t.a.tenant.id, deliveryId },
    { send: (job, payload, options) => t.queue.send(job, payload, options) },
  );

/** A ticket and an agent's reply through the mailbox; answers the queued attempt's id and Message-ID. */
async function reply(kind: 'graph' | 'gmail'): Promise<{ deliveryId: string; messageId: string }> {
  const ticket = await t.call(admin(), 'POST', '/api/v1/tickets', {
    subject: `Reply through ${kind}`,
    requester: { email: `customer-${kind}@example.org`, name: 'Cust' },
  });
  expect(ticket.status).toBe(201);
  const res = await t.call(admin(), 'POST', `/api/v1/tickets/${ticket.body.id}/messages`, {
    visibility: 'public',
    text: `Hello from ${kind}`,
    mailboxId: mailboxes[kind],
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { deliveryId: res.body.delivery.id, messageId: res.body.messageId };
}

const delivery = async (id: string) => (await t.call(admin(), 'GET', `/api/v1/deliveries/${id}`)).body;

beforeAll(async () => {
  t = await useTestApp();
  await t.queue.boss.createQueue(outboundSendJob.name);
  graph = await startGraphSimulator();
  gmail = await startGmailSimulator();
  transports = new Transports({ pool: t.db.pool, secretKey: t.secretKey, clock: t.clock });
  const g = await t.call(admin(), 'POST', '/api/v1/mailboxes', {
    kind: 'graph',
    address: 'desk@contoso.test',
    settings: { graph: { apiBaseUrl: graph.apiBaseUrl, tokenUrl: graph.tokenUrl } },
    credentials: graph.credentials,
  });
  expect(g.status).toBe(201);
  mailboxes.graph = g.body.id;
  const m = await t.call(admin(), 'POST', '/api/v1/mailboxes', {
    kind: 'gmail',
    address: 'desk@fabrikam.test',
    settings: { gmail: { apiBaseUrl: gmail.apiBaseUrl, tokenUrl: gmail.tokenUrl, jwksUrl: gmail.jwksUrl } },
    credentials: { ...gmail.credentials },
  });
  expect(m.status).toBe(201);
  mailboxes.gmail = m.body.id;
});

afterAll(async () => {
  transports?.close();
  await graph?.close();
  await gmail?.close();
});

describe.each(['graph', 'gmail'] as const)('a reply through %s', (kind) => {
  const sim = () => (kind === 'graph' ? graph : gmail);

  it('is sent as our MIME, keeping our Message-ID', async () => {
    sim().clearSent();
    const { deliveryId, messageId } = await reply(kind);
    expect(await run(deliveryId)).toMatchObject({ sent: expect.any(String) });
    const sent = sim().sent();
    expect(sent).toHaveLength(1);
    const raw = sent[0]!.raw.toString('utf8').replace(/\r\n[ \t]+/g, ' ');
    expect(raw).toMatch(new RegExp(`^Message-ID: <${messageId.replace(/\./g, '\\.')}>\r$`, 'im'));
    expect(raw).toContain(`Hello from ${kind}`);
    expect(await delivery(deliveryId)).toMatchObject({ status: 'sent' });
  });

  it('honours a 429 Retry-After: the next attempt waits exactly that long', async () => {
    sim().clearSent();
    const { deliveryId } = await reply(kind);
    sim().fault({ pathPrefix: '/', method: 'POST', status: 429, retryAfter: 7, times: 1 });
    const result = await run(deliveryId);
    expect(result).toMatchObject({ failed: 'throttled', inSeconds: 7 });
    expect(await delivery(deliveryId)).toMatchObject({
      status: 'failed',
      errorCode: 'throttled',
      retryable: true,
    });
    const next = String(result['nextAttempt']);
    const { rows } = await t.db.admin.query<{ wait: number }>(
      "SELECT round(extract(epoch FROM start_after - created_on))::int AS wait FROM pgboss.job WHERE name = 'outbound.send' AND data->>'deliveryId' = $1",
      [next],
    );
    expect(rows[0]!.wait).toBe(7);
    expect(sim().sent()).toHaveLength(0);
    await run(next);
    expect(sim().sent()).toHaveLength(1);
    expect(await delivery(next)).toMatchObject({ status: 'sent', attempt: 2 });
  });

  it('asks the provider about a send whose outcome is unknown, and never sends twice', async () => {
    sim().clearSent();
    // A run that stopped after the provider took the mail: the key says `sending`.
    const taken = await reply(kind);
    const row = await withTenant(t.db.pool, t.a.tenant.id, async (tx) => {
      const r = (await deliveryRow(tx, taken.deliveryId))!;
      await reserveKey(tx, r);
      await markSending(tx, r);
      return r;
    });
    const mailbox = await withTenant(t.db.pool, t.a.tenant.id, (tx) => getMailbox(tx, mailboxes[kind]));
    await transports.send({
      tenantId: t.a.tenant.id,
      mailbox,
      payload: row.payload as unknown as EmailPayload,
      messageId: taken.messageId,
      attachments: [],
    });
    expect(await run(taken.deliveryId)).toEqual({ recovered: 'sent' });
    expect(sim().sent()).toHaveLength(1);
    expect(await delivery(taken.deliveryId)).toMatchObject({ status: 'sent' });

    // One that stopped before the provider took it: asked, the provider has nothing; it is sent once.
    const lost = await reply(kind);
    await withTenant(t.db.pool, t.a.tenant.id, async (tx) => {
      const r = (await deliveryRow(tx, lost.deliveryId))!;
      await reserveKey(tx, r);
      await markSending(tx, r);
    });
    expect(await run(lost.deliveryId)).toMatchObject({ sent: expect.any(String) });
    expect(sim().sent()).toHaveLength(2);
  });

  it('asks again before a retry: a 5xx whose mail went out after all is not sent twice', async () => {
    sim().clearSent();
    const { deliveryId, messageId } = await reply(kind);
    sim().fault({ pathPrefix: '/', method: 'POST', status: 503, times: 1 });
    const first = await run(deliveryId);
    expect(first).toMatchObject({ failed: 'transient' });
    // The provider had taken it after all, though its search did not show it yet when asked.
    const row = await withTenant(
      t.db.pool,
      t.a.tenant.id,
      async (tx) => (await deliveryRow(tx, deliveryId))!,
    );
    const mailbox = await withTenant(t.db.pool, t.a.tenant.id, (tx) => getMailbox(tx, mailboxes[kind]));
    await transports.send({
      tenantId: t.a.tenant.id,
      mailbox,
      payload: row.payload as unknown as EmailPayload,
      messageId,
      attachments: [],
    });
    const next = String(first['nextAttempt']);
    expect(await run(next)).toEqual({ recovered: 'sent' });
    expect(sim().sent()).toHaveLength(1);
    expect(await delivery(next)).toMatchObject({ status: 'sent', attempt: 2 });
  });
});

describe('the size Microsoft 365 takes', () => {
  /** A reply with one attachment of `bytes`, uploaded as multipart/form-data through the Graph mailbox. */
  async function replyWith(bytes: number) {
    const ticket = await t.call(admin(), 'POST', '/api/v1/tickets', {
      subject: `Attachment of ${bytes}`,
      requester: { email: 'files@example.org' },
    });
    const upload = await multipart(
      { visibility: 'public', text: 'The file you asked for.', mailboxId: mailboxes.graph },
      [
        {
          filename: 'report.bin',
          contentType: 'application/octet-stream',
          content: Buffer.alloc(bytes, 0x5a),
        },
      ],
    );
    const res = await t.call(
      admin(),
      'POST',
      `/api/v1/tickets/${ticket.body.id}/messages`,
      upload.body,
      upload.headers,
    );
    return { res, ticketId: ticket.body.id as string };
  }

  it('refuses at once a reply Graph would refuse (over 4 MB as sent), writing nothing', async () => {
    const { res, ticketId } = await replyWith(3 * 1024 * 1024);
    expect(res.status, JSON.stringify(res.body)).toBe(413);
    expect(res.body).toMatchObject({
      code: 'payload_too_large',
      detail: expect.stringMatching(/Microsoft 365/),
    });
    expect((await t.call(admin(), 'GET', `/api/v1/tickets/${ticketId}/messages`)).body.items).toEqual([]);
  });

  it('sends one that fits, and the simulator holds Graph to its limit', async () => {
    graph.clearSent();
    const { res } = await replyWith(2 * 1024 * 1024);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(await run(res.body.delivery.id)).toMatchObject({ sent: expect.any(String) });
    const [sent] = graph.sent();
    expect(Buffer.byteLength(sent!.raw.toString('base64'))).toBeLessThanOrEqual(4 * 1024 * 1024);
    // A request over the limit is refused whole, as Graph does: a permanent failure, not retried.
    const client = new GraphClient(
      { apiBaseUrl: graph.apiBaseUrl, tokenUrl: graph.tokenUrl },
      graph.credentials,
      t.clock,
    );
    const err = await client
      .sendMime('desk@contoso.test', Buffer.alloc(3.2 * 1024 * 1024, 0x41))
      .catch((e) => e);
    expect(classifyProviderError(err)).toMatchObject({ code: 'permanent', retryable: false });
    expect(String(err.message)).toMatch(/413|maximum request length/);
  });
});
