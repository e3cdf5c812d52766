// GraphClient sending through the Graph simulator: sendMail with MIME content carries the message
// exactly as composed (our Message-ID, In-Reply-To, References), the sent message is then found by
// its Message-ID, and refusals come back as classified provider errors.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type GraphSimulator, startGraphSimulator } from '../../../../../simulators/graph.ts';
import { ManualClock } from '../../../../platform/clock.ts';
import { Permanent, RateLimited } from '../../../../platform/provider-errors.ts';
import { GraphClient } from './client.ts';

const USER = 'helpdesk@contoso.test';
const MESSAGE_ID = '<reply-1.7f3a@relaydesk.test>';

const reply = (messageId = MESSAGE_ID) =>
  Buffer.from(
    [
      'From: Helpdesk <helpdesk@contoso.test>',
      'To: Ana <ana@fabrikam.test>',
      'Subject: Re: Drucker brennt',
      `Message-ID: ${messageId}`,
      'In-Reply-To: <question-1@fabrikam.test>',
      'References: <question-0@fabrikam.test> <question-1@fabrikam.test>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Wir sind unterwegs – bitte einen Eimer bereithalten.',
      '',
    ].join('\r\n'),
  );

let sim: GraphSimulator;
let client: GraphClient;

beforeEach(async () => {
  sim = await startGraphSimulator({ seed: 3 });
  client = new GraphClient(
    { apiBaseUrl: sim.apiBaseUrl, tokenUrl: sim.tokenUrl },
    sim.credentials,
    new ManualClock(),
  );
});
afterEach(() => sim.close());

describe('GraphClient.sendMime', () => {
  it('sends the MIME byte for byte; findSentByMessageId is false before and true after', async () => {
    expect(await client.findSentByMessageId(USER, MESSAGE_ID)).toBe(false);
    const { requestId } = await client.sendMime(USER, reply());
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(sim.log.at(-1)).toMatchObject({
      method: 'POST',
      path: `/v1.0/users/${encodeURIComponent(USER)}/sendMail`,
      status: 202,
    });
    const sent = sim.sent();
    expect(sent).toHaveLength(1);
    expect(sent[0]!.user).toBe(USER);
    expect(sent[0]!.raw.equals(reply())).toBe(true);
    expect(await client.findSentByMessageId(USER, MESSAGE_ID)).toBe(true);
    // The id as Graph's internetMessageId has it (brackets) or bare: the same question.
    expect(await client.findSentByMessageId(USER, 'reply-1.7f3a@relaydesk.test')).toBe(true);
    expect(await client.findSentByMessageId(USER, '<reply-2@relaydesk.test>')).toBe(false);
    expect(await client.findSentByMessageId('other@contoso.test', MESSAGE_ID)).toBe(false);
  });

  it('finds a Message-ID with a quote in it (an OData literal doubles it)', async () => {
    const id = "<o'brien.1@relaydesk.test>";
    await client.sendMime(USER, reply(id));
    expect(await client.findSentByMessageId(USER, id)).toBe(true);
  });

  it('429 with Retry-After is RateLimited with its seconds, and nothing was sent', async () => {
    sim.fault({ pathPrefix: '/v1.0/users/', method: 'POST', status: 429, retryAfter: 2 });
    const err = await client.sendMime(USER, reply()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimited);
    expect(err).toMatchObject({
      provider: 'graph',
      status: 429,
      retryAfterSeconds: 2,
      code: 'TooManyRequests',
    });
    expect(sim.sent()).toEqual([]);
    // The fault was on POST only: asking whether it went out still works.
    expect(await client.findSentByMessageId(USER, MESSAGE_ID)).toBe(false);
  });

  it('a body that is not a message is 400 ErrorMimeContentInvalidBase64String: Permanent', async () => {
    for (const mime of [Buffer.from('just some words, no headers'), Buffer.alloc(0)]) {
      const err = await client.sendMime(USER, mime).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Permanent);
      expect(err).toMatchObject({ status: 400, code: 'ErrorMimeContentInvalidBase64String' });
    }
    expect(sim.sent()).toEqual([]);
  });
});
