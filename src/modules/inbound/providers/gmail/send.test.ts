// GmailClient sending through the Gmail simulator: users.messages.send carries the message exactly as
// composed, joins the thread it answers, is then found by rfc822msgid:, and refusals come back as
// classified provider errors.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type GmailSimulator, startGmailSimulator } from '../../../../../simulators/gmail.ts';
import { ManualClock } from '../../../../platform/clock.ts';
import { Permanent, RateLimited } from '../../../../platform/provider-errors.ts';
import { GmailClient } from './client.ts';

const USER = 'support@example.test';
const MESSAGE_ID = '<reply-1.7f3a@relaydesk.test>';

const question = Buffer.from(
  'From: Ana <ana@fabrikam.test>\r\nTo: support@example.test\r\nSubject: Drucker brennt\r\n' +
    'Message-ID: <question-1@fabrikam.test>\r\n\r\nHilfe!\r\n',
);
const reply = (headers: { to?: string; subject?: string } = {}) =>
  Buffer.from(
    [
      'From: Support <support@example.test>',
      ...(headers.to === '' ? [] : [`To: ${headers.to ?? 'Ana <ana@fabrikam.test>'}`]),
      `Subject: ${headers.subject ?? 'Re: Drucker brennt'}`,
      `Message-ID: ${MESSAGE_ID}`,
      'In-Reply-To: <question-1@fabrikam.test>',
      'References: <question-1@fabrikam.test>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Wir sind unterwegs – bitte einen Eimer bereithalten.',
      '',
    ].join('\r\n'),
  );

let sim: GmailSimulator;
let client: GmailClient;

beforeEach(async () => {
  sim = await startGmailSimulator({ seed: 3 });
  client = new GmailClient(
    { apiBaseUrl: sim.apiBaseUrl, tokenUrl: sim.tokenUrl },
    { ...sim.credentials },
    new ManualClock(),
  );
});
afterEach(() => sim.close());

describe('GmailClient.sendRaw', () => {
  it('sends the MIME byte for byte; findSentByMessageId is false before and true after', async () => {
    expect(await client.findSentByMessageId(USER, MESSAGE_ID)).toBe(false);
    const sent = await client.sendRaw(USER, reply());
    expect(sent).toEqual({ id: expect.any(String), threadId: sent.id });
    expect(sim.sent()).toHaveLength(1);
    expect(sim.sent()[0]!.user).toBe(USER);
    expect(sim.sent()[0]!.raw.equals(reply())).toBe(true);
    expect(await client.findSentByMessageId(USER, MESSAGE_ID)).toBe(true);
    expect(await client.findSentByMessageId(USER, 'reply-1.7f3a@relaydesk.test')).toBe(true);
    expect(await client.findSentByMessageId(USER, '<reply-2@relaydesk.test>')).toBe(false);
  });

  it('joins the thread it answers; a changed Subject starts a new one', async () => {
    const threadId = sim.deliver(USER, question);
    expect((await client.sendRaw(USER, reply(), threadId)).threadId).toBe(threadId);
    const other = await client.sendRaw(USER, reply({ subject: 'Re: Something else' }), threadId);
    expect(other.threadId).not.toBe(threadId);
  });

  it('429 with Retry-After is RateLimited with its seconds, and nothing was sent', async () => {
    sim.fault({ pathPrefix: '/gmail/v1/users/', method: 'POST', status: 429, retryAfter: 2 });
    const err = await client.sendRaw(USER, reply()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimited);
    expect(err).toMatchObject({
      provider: 'gmail',
      status: 429,
      retryAfterSeconds: 2,
      code: 'RESOURCE_EXHAUSTED',
    });
    expect(sim.sent()).toEqual([]);
    expect(await client.findSentByMessageId(USER, MESSAGE_ID)).toBe(false);
  });

  it('a message without a recipient is 400 INVALID_ARGUMENT: Permanent', async () => {
    const err = await client.sendRaw(USER, reply({ to: '' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Permanent);
    expect(err).toMatchObject({ status: 400, code: 'INVALID_ARGUMENT' });
    expect(sim.sent()).toEqual([]);
  });
});
