// What console tests set up through the API: a mailbox that sends to the SMTP simulator, customer
// mail arriving through it (the real inbound pipeline makes the ticket), agents who can sign in.
import { expect } from 'vitest';
import type { SmtpSimulator } from '../../simulators/smtp.ts';
import type { ConsoleServer } from './server.ts';

let counter = 0;

/** A MIME mailbox whose replies leave through the SMTP simulator. */
export async function makeMailbox(server: ConsoleServer, smtp: SmtpSimulator, address = 'support@desk.test') {
  const res = await server.call(server.a.adminToken.token, 'POST', '/api/v1/mailboxes', {
    kind: 'mime',
    address,
    displayName: 'Support',
    settings: { smtp: { host: smtp.host, port: smtp.port, security: 'none' } },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; address: string };
}

/**
 * A customer's mail to the mailbox, through POST /mailboxes/:id/messages and the inbound worker;
 * resolves with the ticket it made (or the ticket it was threaded into).
 */
export async function mailIn(
  server: ConsoleServer,
  mailbox: { id: string; address: string },
  mail: {
    from?: string;
    subject?: string;
    text?: string;
    html?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<{ id: string; number: string; subject: string }> {
  counter++;
  const from = mail.from ?? `Customer ${counter} <customer${counter}@example.com>`;
  const subject = mail.subject ?? `Question ${counter}`;
  const boundary = `b${counter}x`;
  const headers = {
    From: from,
    To: mailbox.address,
    Subject: subject,
    'Message-ID': `<m${counter}.${Date.now()}@example.com>`,
    Date: new Date().toUTCString(),
    'MIME-Version': '1.0',
    ...mail.headers,
  };
  const body = mail.html
    ? [
        `Content-Type: multipart/alternative; boundary="${boundary}"`,
        '',
        `--${boundary}`,
        'Content-Type: text/plain; charset=utf-8',
        '',
        mail.text ?? 'Hello',
        `--${boundary}`,
        'Content-Type: text/html; charset=utf-8',
        '',
        mail.html,
        `--${boundary}--`,
        '',
      ]
    : ['Content-Type: text/plain; charset=utf-8', '', mail.text ?? 'Hello, something is broken.', ''];
  const raw = [...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), ...body].join('\r\n');
  const res = await server.app.inject({
    method: 'POST',
    url: `/api/v1/mailboxes/${mailbox.id}/messages`,
    headers: { authorization: `Bearer ${server.a.adminToken.token}`, 'content-type': 'message/rfc822' },
    payload: Buffer.from(raw),
  });
  expect(res.statusCode, res.body).toBe(202);
  const email = /<([^>]+)>/.exec(from)?.[1] ?? from;
  let ticket: { id: string; number: string; subject: string } | undefined;
  await expect
    .poll(async () => {
      const people = await server.call(
        server.a.adminToken.token,
        'GET',
        `/api/v1/people?q=${encodeURIComponent(email)}`,
      );
      const person = people.body.items?.[0];
      if (!person) return undefined;
      const list = await server.call(
        server.a.adminToken.token,
        'GET',
        `/api/v1/tickets?requesterId=${person.id}`,
      );
      ticket = list.body.items?.find(
        (t: { subject: string }) => subject.includes(t.subject) || t.subject.includes(subject),
      );
      return ticket?.id;
    })
    .toBeTruthy();
  return ticket!;
}
