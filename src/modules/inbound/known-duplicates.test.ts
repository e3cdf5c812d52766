import { beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { acceptRawMessage } from './ingest.ts';
import { parseInThread } from './parse-pool.ts';
import { type Outcome, processInbound, processInboundBatch } from './process.ts';

// Counts the parses, to see which messages took the short way.
const parsed = { count: 0 };
const countedParse = (raw: Buffer) => {
  parsed.count++;
  return parseInThread(raw);
};

let t: TestApp;
let mailboxId: string;
let otherMailboxId: string;
const deps = () => ({ ...t.inboundDeps(), parse: countedParse });

function mail(messageId: string | null, subject: string): Buffer {
  return Buffer.from(
    [
      'From: Customer <customer@example.org>',
      'To: support@helpdesk.test',
      `Subject: ${subject}`,
      ...(messageId === null ? [] : [`Message-ID: ${messageId}`]),
      '',
      'Hello.',
    ].join('\r\n'),
  );
}

async function accept(raw: Buffer, mailbox = mailboxId): Promise<string> {
  return (await acceptRawMessage(t.db.pool, t.queue, { tenantId: t.a.tenant.id, mailboxId: mailbox, raw }))
    .inboundId;
}

const run = (inboundId: string): Promise<Outcome> =>
  processInbound(deps(), { tenantId: t.a.tenant.id, inboundId, lastAttempt: false });

/** What a record ended as, without its own id. */
const record = async (inboundId: string) =>
  (
    await t.db.admin.query(
      'SELECT status, reason, ticket_id, ticket_message_id, message_key, attempts FROM inbound_messages WHERE id = $1',
      [inboundId],
    )
  ).rows[0];

beforeAll(async () => {
  t = await useTestApp();
  await t.queue.boss.createQueue('inbound.process');
  const create = async (address: string) =>
    (await t.call(t.a.adminToken.token, 'POST', '/api/v1/mailboxes', { kind: 'mime', address })).body.id;
  mailboxId = await create('support@helpdesk.test');
  otherMailboxId = await create('billing@helpdesk.test');
});

describe('exact duplicates of processed messages', () => {
  it('end as duplicates of the first without a parse, exactly as the parser would end them', async () => {
    const raw = mail('<Copy-1@EXAMPLE.org>', 'Copied');
    const first = await run(await accept(raw));
    expect(first.status).toBe('created');
    const parses = parsed.count;
    // The very same bytes: no parse.
    const copy = await accept(raw);
    const copyOutcome = await run(copy);
    expect(parsed.count).toBe(parses);
    // Other bytes with the same Message-ID: parsed, and a duplicate through the claim.
    const sameId = await accept(mail('<Copy-1@example.ORG>', 'Copied, other bytes'));
    const sameIdOutcome = await run(sameId);
    expect(parsed.count).toBe(parses + 1);
    expect(copyOutcome).toEqual(sameIdOutcome);
    expect(copyOutcome).toMatchObject({ status: 'duplicate', ticketId: first.ticketId });
    expect(copyOutcome.ticketNumber).toBe(first.ticketNumber);
    expect(await record(copy)).toEqual(await record(sameId));
    expect(await run(copy)).toEqual(copyOutcome); // a retried job changes nothing
  });

  it('are found by their bytes when they have no Message-ID', async () => {
    const raw = mail(null, 'No id');
    const first = await run(await accept(raw));
    const parses = parsed.count;
    const copy = await accept(raw);
    expect(await run(copy)).toMatchObject({ status: 'duplicate', ticketId: first.ticketId });
    expect(parsed.count).toBe(parses);
    expect((await record(copy)).message_key).toMatch(/^gen-[0-9a-f]{64}@relaydesk\.invalid$/);
  });

  it('take the normal way in another mailbox, and beside their original in one batch', async () => {
    const raw = mail('<Copy-2@example.org>', 'Two mailboxes');
    expect((await run(await accept(raw))).status).toBe('created');
    expect((await run(await accept(raw, otherMailboxId))).status).toBe('created');
    // Neither committed yet: the batch's own claim decides, as before.
    const together = mail('<Copy-3@example.org>', 'Together');
    const ids = [await accept(together), await accept(together)];
    const results = await processInboundBatch(
      deps(),
      ids.map((inboundId) => ({ tenantId: t.a.tenant.id, inboundId, lastAttempt: false })),
    );
    expect(results.map((r) => r.ok && r.outcome.status)).toEqual(['created', 'duplicate']);
  });
});
