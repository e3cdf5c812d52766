// Mail in over SMTP, over real SMTP: nodemailer sends to the listener, which stores what it accepts
// like the MIME API before it answers 250.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCertificate } from '../../../simulators/tls.ts';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { smtpDialogue } from '../../../test/smtp-dialogue.ts';
import { createPool } from '../../platform/db/pool.ts';
import { createLogger } from '../../platform/logging.ts';
import { processInbound } from './process.ts';
import { type SmtpIngress, startSmtpIngress } from './smtp-ingress.ts';

let t: TestApp;
let ingress: SmtpIngress;
const logger = createLogger('silent');

const transport = (port: number) =>
  nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    connectionTimeout: 10_000,
  });

const send = (port: number, mail: Record<string, unknown>) =>
  transport(port).sendMail({ from: 'Customer <customer@example.org>', text: 'Hello', ...mail });

const records = async (mailboxId: string) =>
  (
    await t.db.admin.query(
      'SELECT id, tenant_id, status FROM inbound_messages WHERE mailbox_id = $1 ORDER BY id',
      [mailboxId],
    )
  ).rows as { id: string; tenant_id: string; status: string }[];

async function mailbox(
  token: string,
  address: string,
  settings: Record<string, unknown> = {},
): Promise<string> {
  const res = await t.call(token, 'POST', '/api/v1/mailboxes', { kind: 'mime', address, settings });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

let support: string;

beforeAll(async () => {
  t = await useTestApp();
  await t.queue.boss.createQueue('inbound.process');
  support = await mailbox(t.a.adminToken.token, 'support@smtp.test');
  ingress = await startSmtpIngress({ pool: t.db.pool, queue: t.queue, logger, host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await ingress?.close();
});

describe('SMTP ingress', () => {
  it("accepts mail for a mailbox's address, answering 250 after it is stored, and it becomes a ticket", async () => {
    const info = await send(ingress.address.port, { to: 'support@smtp.test', subject: 'Sent over SMTP' });
    expect(info.accepted).toEqual(['support@smtp.test']);
    expect(info.response).toMatch(/^250 /);
    // Stored and queued before the 250: the record is there now.
    const [record] = await records(support);
    expect(record).toMatchObject({ tenant_id: t.a.tenant.id, status: 'queued' });
    const outcome = await processInbound(t.inboundDeps(), {
      tenantId: t.a.tenant.id,
      inboundId: record!.id,
      lastAttempt: false,
    });
    expect(outcome.status).toBe('created');
    const tickets = await t.call(t.a.adminToken.token, 'GET', '/api/v1/tickets?q=Sent%20over%20SMTP');
    expect(tickets.body.items.map((x: { subject: string }) => x.subject)).toEqual(['Sent over SMTP']);
  });

  it('refuses any other recipient with 550, and takes the known one of the same message', async () => {
    await expect(
      send(ingress.address.port, { to: 'nobody@smtp.test', subject: 'Lost' }),
    ).rejects.toMatchObject({
      responseCode: 550,
    });
    const before = (await records(support)).length;
    const info = await send(ingress.address.port, {
      to: ['support@smtp.test', 'nobody@smtp.test'],
      subject: 'Half known',
    });
    expect(info.accepted).toEqual(['support@smtp.test']);
    expect(info.rejected).toEqual(['nobody@smtp.test']);
    expect(await records(support)).toHaveLength(before + 1);
  });

  it('reaches the mailbox of a plus address (support+T-12@), case-insensitively', async () => {
    const before = (await records(support)).length;
    const info = await send(ingress.address.port, { to: 'Support+T-12@SMTP.test', subject: 'Tagged' });
    expect(info.accepted).toHaveLength(1);
    expect(await records(support)).toHaveLength(before + 1);
  });

  it("refuses an address two tenants both name (delivering to either could leak one tenant's mail to the other)", async () => {
    const a = await mailbox(t.a.adminToken.token, 'shared@smtp.test');
    const b = await mailbox(t.b.adminToken.token, 'shared@smtp.test');
    await expect(
      send(ingress.address.port, { to: 'shared@smtp.test', subject: 'Whose?' }),
    ).rejects.toMatchObject({
      responseCode: 550,
    });
    expect(await records(a)).toEqual([]);
    expect(await records(b)).toEqual([]);
  });

  it("refuses a plus address another tenant named, rather than hand it the answers to this tenant's tickets", async () => {
    const taken = await mailbox(t.b.adminToken.token, 'support+T-99@smtp.test');
    const before = (await records(support)).length;
    await expect(
      send(ingress.address.port, { to: 'support+T-99@smtp.test', subject: 'Re: [#T-99] Printer' }),
    ).rejects.toMatchObject({ responseCode: 550 });
    expect(await records(taken)).toEqual([]);
    expect(await records(support)).toHaveLength(before);
  });

  it("enforces the mailbox's size limit (552), declared or not", async () => {
    const small = await mailbox(t.a.adminToken.token, 'small@smtp.test', { maxMessageBytes: 1024 });
    await expect(
      send(ingress.address.port, { to: 'small@smtp.test', subject: 'Too big', text: 'x'.repeat(4000) }),
    ).rejects.toMatchObject({ responseCode: 552 });
    expect(await records(small)).toEqual([]);
    const info = await send(ingress.address.port, { to: 'small@smtp.test', subject: 'Fits', text: 'short' });
    expect(info.accepted).toHaveLength(1);
  });

  it('offers STARTTLS with a configured certificate, and takes mail over it', async () => {
    const { cert, key } = await selfSignedCertificate();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'smtp-tls-'));
    await writeFile(path.join(dir, 'cert.pem'), cert);
    await writeFile(path.join(dir, 'key.pem'), key, { mode: 0o600 });
    const tls = await startSmtpIngress({
      pool: t.db.pool,
      queue: t.queue,
      logger,
      host: '127.0.0.1',
      port: 0,
      tls: { certFile: path.join(dir, 'cert.pem'), keyFile: path.join(dir, 'key.pem') },
    });
    try {
      const before = (await records(support)).length;
      const info = await nodemailer
        .createTransport({
          host: '127.0.0.1',
          port: tls.address.port,
          secure: false,
          requireTLS: true,
          tls: { ca: cert },
        })
        .sendMail({ from: 'customer@example.org', to: 'support@smtp.test', subject: 'Over TLS', text: 'Hi' });
      expect(info.response).toMatch(/^250 /);
      expect(await records(support)).toHaveLength(before + 1);
      // Without a certificate no STARTTLS is offered: a client that requires it gives up.
      await expect(
        nodemailer
          .createTransport({ host: '127.0.0.1', port: ingress.address.port, secure: false, requireTLS: true })
          .sendMail({
            from: 'customer@example.org',
            to: 'support@smtp.test',
            subject: 'Must be TLS',
            text: 'Hi',
          }),
      ).rejects.toThrow(/STARTTLS/);
    } finally {
      await tls.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses for good (550) a message whose only mailbox was removed between RCPT TO and DATA', async () => {
    const doomed = await mailbox(t.a.adminToken.token, 'doomed@smtp.test');
    const kept = await mailbox(t.a.adminToken.token, 'kept@smtp.test');
    const session = await smtpDialogue(ingress.address.port);
    expect(session.greeting).toMatch(/^220/);
    try {
      expect(await session.say('EHLO client.test')).toMatch(/^250/);
      expect(await session.say('MAIL FROM:<customer@example.org>')).toMatch(/^250/);
      expect(await session.say('RCPT TO:<doomed@smtp.test>')).toMatch(/^250/);
      const removed = await t.call(t.a.adminToken.token, 'DELETE', `/api/v1/mailboxes/${doomed}`);
      expect(removed.status).toBe(204);
      expect(await session.say('DATA')).toMatch(/^354/);
      const body =
        'From: customer@example.org\r\nSubject: Gone\r\nMessage-ID: <gone.1@example.org>\r\n\r\nHi\r\n.';
      expect(await session.say(body)).toMatch(/^550 /);
      // With two, the one still there takes it and the message is accepted.
      expect(await session.say('MAIL FROM:<customer@example.org>')).toMatch(/^250/);
      const other = await mailbox(t.a.adminToken.token, 'doomed2@smtp.test');
      expect(await session.say('RCPT TO:<doomed2@smtp.test>')).toMatch(/^250/);
      expect(await session.say('RCPT TO:<kept@smtp.test>')).toMatch(/^250/);
      expect((await t.call(t.a.adminToken.token, 'DELETE', `/api/v1/mailboxes/${other}`)).status).toBe(204);
      expect(await session.say('DATA')).toMatch(/^354/);
      expect(await session.say(body.replace('gone.1', 'gone.2'))).toMatch(/^250 /);
      expect(await records(kept)).toHaveLength(1);
    } finally {
      session.close();
    }
  });

  it('answers 451 when the database cannot be reached, so the sending server tries again', async () => {
    const unreachable = createPool({
      connectionString: 'postgres://relaydesk_app:x@127.0.0.1:9/none',
      max: 1,
    });
    const down = await startSmtpIngress({
      pool: unreachable,
      queue: t.queue,
      logger,
      host: '127.0.0.1',
      port: 0,
    });
    try {
      await expect(
        send(down.address.port, { to: 'support@smtp.test', subject: 'Later' }),
      ).rejects.toMatchObject({
        responseCode: 451,
      });
    } finally {
      await down.close();
      await unreachable.end();
    }
  });
});
