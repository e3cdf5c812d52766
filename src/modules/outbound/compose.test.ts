// The MIME of outbound mail as composed: the automatic-mail headers of RFC 3834 by kind of mail.
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { composeMail } from './compose.ts';
import type { EmailPayload } from './model.ts';

const payload = (extra: Partial<EmailPayload>): EmailPayload => ({
  from: { address: 'support@example.com', name: 'Support' },
  replyTo: 'support@example.com',
  to: [{ address: 'carol@example.org', name: 'Carol' }],
  cc: [],
  bcc: [],
  subject: 'Hello',
  text: 'Hello',
  html: null,
  inReplyTo: null,
  references: [],
  automatic: false,
  ...extra,
});

const headersOf = async (p: EmailPayload) => {
  const raw = await composeMail(p, {
    messageId: 'm.1@example.com',
    date: new Date(0),
    attachments: [],
    keepBcc: false,
  });
  const parsed = await simpleParser(raw);
  return {
    autoSubmitted: parsed.headers.get('auto-submitted'),
    suppress: parsed.headers.get('x-auto-response-suppress'),
  };
};

describe('automatic mail headers', () => {
  it('an agent’s reply carries none', async () => {
    expect(await headersOf(payload({}))).toEqual({ autoSubmitted: undefined, suppress: undefined });
  });

  it('an acknowledgement is auto-replied', async () => {
    expect(await headersOf(payload({ automatic: true }))).toEqual({
      autoSubmitted: 'auto-replied',
      suppress: 'All',
    });
  });

  it('a notification, which answers no message, is auto-generated', async () => {
    expect(await headersOf(payload({ automatic: true, about: 'ticket.assigned' }))).toEqual({
      autoSubmitted: 'auto-generated',
      suppress: 'All',
    });
  });
});
