// `relaydesk start --smtp-port` as a user runs it: mail sent over SMTP to a mailbox's address becomes
// a ticket, through the real process with its workers.
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, RelaydeskProcess } from './relaydesk-process.ts';

let rd: RelaydeskProcess;

beforeAll(async () => {
  rd = await RelaydeskProcess.create('smtp-test');
});

afterAll(async () => {
  await rd.cleanup();
});

describe('relaydesk start with mail in over SMTP', { timeout: 120_000 }, () => {
  it('turns mail sent to a mailbox address over SMTP into a ticket, and refuses other addresses', async () => {
    const smtpPort = await freePort();
    rd.start({ RELAYDESK_SMTP_PORT: String(smtpPort) });
    await rd.waitReady(90_000);
    await rd.waitForOutput(/rd_[A-Za-z0-9_-]{43}/);
    const token = /(rd_[A-Za-z0-9_-]{43,})/.exec(rd.output)![1]!;
    const mailbox = await rd.api(token, 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: 'help@smtp-process.test',
    });
    expect(mailbox.status).toBe(201);

    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: smtpPort,
      secure: false,
      ignoreTLS: true,
    });
    const info = await transport.sendMail({
      from: 'Customer <customer@example.org>',
      to: 'help@smtp-process.test',
      subject: 'Forwarded over SMTP',
      text: 'The printer is on fire.',
    });
    expect(info.response).toMatch(/^250 /);
    await expect
      .poll(async () => (await rd.api(token, 'GET', '/api/v1/tickets?q=Forwarded')).body.items.length, {
        timeout: 30_000,
      })
      .toBe(1);
    await expect(
      transport.sendMail({
        from: 'x@example.org',
        to: 'elsewhere@example.net',
        subject: 'Relay?',
        text: 'no',
      }),
    ).rejects.toMatchObject({ responseCode: 550 });
  });
});
