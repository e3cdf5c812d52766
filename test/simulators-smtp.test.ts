// The SMTP simulator's own behaviour (no database), through nodemailer as a real SMTP client:
// cleartext, STARTTLS and implicit TLS, AUTH, SIZE, each fault code, seeded probability faults,
// headers as sent, and a pooled transport sending many messages.
import { smtpDialogue } from './smtp-dialogue.ts';
import nodemailer from 'nodemailer';
import { afterEach, describe, expect, it } from 'vitest';
import { type SmtpSimulator, type SmtpSimulatorOptions, startSmtpSimulator } from '../simulators/smtp.ts';

const FROM = 'desk@relaydesk.test';
const TO = 'customer@fabrikam.test';

const started: SmtpSimulator[] = [];
const transports: { close(): void }[] = [];

async function simulator(options: SmtpSimulatorOptions = {}) {
  const sim = await startSmtpSimulator(options);
  started.push(sim);
  return sim;
}

/** A nodemailer SMTP transport pointed at the simulator; closed after each test. */
function transport(sim: SmtpSimulator, extra: Record<string, unknown> = {}) {
  const t = nodemailer.createTransport({
    host: sim.host,
    port: sim.port,
    secure: sim.secure,
    ...(sim.ca ? { tls: { ca: sim.ca } } : {}),
    // The simulator answers at once; a hung test should fail quickly.
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 10_000,
    ...extra,
  });
  transports.push(t);
  return t;
}

const mail = (extra: Record<string, unknown> = {}) => ({
  from: FROM,
  to: TO,
  subject: 'Your ticket #42',
  text: 'We are on it.',
  ...extra,
});

/** The SMTP reply code nodemailer reports for a failed send. */
async function failure(p: Promise<unknown>): Promise<{ responseCode: number; response: string }> {
  try {
    await p;
  } catch (err) {
    return err as { responseCode: number; response: string };
  }
  throw new Error('the send succeeded');
}

/** Each reply to `commands` (multi-line replies joined), the greeting first (test/smtp-dialogue.ts). */
async function dialogue(sim: SmtpSimulator, commands: string[]): Promise<string[]> {
  const session = await smtpDialogue(sim.port, sim.host);
  try {
    const replies = [session.greeting];
    for (const command of commands) replies.push(await session.say(command));
    return replies;
  } finally {
    session.close();
  }
}

afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  await Promise.all(started.splice(0).map((s) => s.close()));
});

describe('transport', () => {
  it('captures a plain cleartext message with its envelope', async () => {
    const sim = await simulator();
    const info = await transport(sim).sendMail(mail({ cc: 'boss@fabrikam.test' }));
    expect(info.accepted).toEqual([TO, 'boss@fabrikam.test']);
    const [m] = await sim.waitFor(1);
    expect(m!.from).toBe(FROM);
    expect(m!.to).toEqual([TO, 'boss@fabrikam.test']);
    expect(m!.secure).toBe(false);
    expect(m!.authUser).toBeUndefined();
    expect(m!.messageId).toBe(info.messageId);
    expect(m!.raw.toString()).toContain('We are on it.');
    expect(sim.counts()).toEqual({ connections: 1, messages: 1, rejected: 0 });
  });

  it('does not offer STARTTLS in cleartext mode', async () => {
    const sim = await simulator();
    const err = await failure(transport(sim, { requireTLS: true }).sendMail(mail()));
    expect(String(err)).toMatch(/STARTTLS/);
    expect(sim.messages()).toHaveLength(0);
  });

  it('upgrades with STARTTLS, trusting the exposed certificate', async () => {
    const sim = await simulator({ tls: 'starttls' });
    expect(sim.ca).toMatch(/BEGIN CERTIFICATE/);
    await transport(sim, { requireTLS: true }).sendMail(mail());
    const [m] = await sim.waitFor(1);
    expect(m!.secure).toBe(true);
  });

  it('refuses a client that does not trust the certificate', async () => {
    const sim = await simulator({ tls: 'starttls' });
    const err = await failure(transport(sim, { requireTLS: true, tls: {} }).sendMail(mail()));
    expect(String(err)).toMatch(/self-signed|certificate/i);
  });

  it('speaks TLS from the first byte in implicit mode, valid for localhost too', async () => {
    const sim = await simulator({ tls: 'implicit' });
    expect(sim.secure).toBe(true);
    await transport(sim).sendMail(mail());
    await transport(sim, { host: 'localhost' }).sendMail(mail());
    const messages = await sim.waitFor(2);
    expect(messages.map((m) => m.secure)).toEqual([true, true]);
  });
});

describe('AUTH', () => {
  const auth = { username: 'relaydesk', password: 's3cret' };

  it.each(['PLAIN', 'LOGIN'])('accepts the right credentials with %s', async (method) => {
    const sim = await simulator({ auth });
    await transport(sim, { auth: { user: auth.username, pass: auth.password }, authMethod: method }).sendMail(
      mail(),
    );
    const [m] = await sim.waitFor(1);
    expect(m!.authUser).toBe('relaydesk');
  });

  it('answers a wrong password with 535', async () => {
    const sim = await simulator({ auth });
    const err = await failure(
      transport(sim, { auth: { user: auth.username, pass: 'wrong' } }).sendMail(mail()),
    );
    expect(err.responseCode).toBe(535);
    expect(sim.messages()).toHaveLength(0);
  });

  it('answers MAIL without AUTH with 530', async () => {
    const sim = await simulator({ auth });
    const err = await failure(transport(sim).sendMail(mail()));
    expect(err.responseCode).toBe(530);
  });

  it('wants STARTTLS before AUTH in starttls mode, then accepts it', async () => {
    const sim = await simulator({ auth, tls: 'starttls' });
    const err = await failure(
      transport(sim, { auth: { user: auth.username, pass: auth.password }, ignoreTLS: true }).sendMail(
        mail(),
      ),
    );
    expect(err.responseCode).toBe(538);
    await transport(sim, { auth: { user: auth.username, pass: auth.password } }).sendMail(mail());
    const [m] = await sim.waitFor(1);
    expect(m).toMatchObject({ secure: true, authUser: 'relaydesk' });
  });
});

describe('SIZE', () => {
  it('advertises and enforces the limit with 552', async () => {
    const sim = await simulator({ maxSize: 10_000 });
    const big = 'x'.repeat(20_000);
    const err = await failure(transport(sim).sendMail(mail({ text: big })));
    expect(err.responseCode).toBe(552);
    // A client that declares the size (RFC 1870) is refused at MAIL, before sending the data.
    const replies = await dialogue(sim, ['EHLO client.test', `MAIL FROM:<${FROM}> SIZE=20500`, 'QUIT']);
    expect(replies[1]).toMatch(/^250[- ]SIZE 10000$/m);
    expect(replies[2]).toMatch(/^552 /);
    await transport(sim).sendMail(mail({ text: 'small' }));
    expect(sim.messages()).toHaveLength(1);
    expect(sim.counts().rejected).toBe(1);
  });

  it('defaults to 25 MiB', async () => {
    const sim = await simulator();
    expect(sim.maxSize).toBe(25 * 1024 * 1024);
  });
});

describe('faults', () => {
  it('421 answers and closes the connection', async () => {
    const sim = await simulator();
    sim.fault({ command: 'MAIL', code: 421 });
    const t = transport(sim, { pool: true, maxConnections: 1 });
    const err = await failure(t.sendMail(mail()));
    expect(err.responseCode).toBe(421);
    expect(err.response).toMatch(/Service not available/);
    // The pool had to open a new connection for the next message.
    await t.sendMail(mail());
    expect(sim.counts()).toMatchObject({ connections: 2, messages: 1, rejected: 1 });
  });

  it('451 then success on retry', async () => {
    const sim = await simulator();
    sim.fault({ command: 'DATA', code: 451 });
    const t = transport(sim);
    const err = await failure(t.sendMail(mail()));
    expect(err.responseCode).toBe(451);
    expect(err.response).toMatch(/try again later/);
    await t.sendMail(mail());
    expect(sim.messages()).toHaveLength(1);
  });

  it('452 on RCPT', async () => {
    const sim = await simulator();
    sim.fault({ command: 'RCPT', code: 452 });
    const err = await failure(transport(sim).sendMail(mail()));
    expect(err.responseCode).toBe(452);
  });

  it('550 for one recipient while another is accepted', async () => {
    const sim = await simulator();
    sim.fault({ command: 'RCPT', address: 'Gone@Fabrikam.test', code: 550, times: Infinity });
    const info = await transport(sim).sendMail(mail({ to: [TO, 'gone@fabrikam.test'] }));
    expect(info.accepted).toEqual([TO]);
    expect(info.rejected).toEqual(['gone@fabrikam.test']);
    expect(info.rejectedErrors?.[0]).toMatchObject({ responseCode: 550 });
    const [m] = await sim.waitFor(1);
    expect(m!.to).toEqual([TO]);
  });

  it('552 on DATA with a custom text', async () => {
    const sim = await simulator();
    sim.fault({ command: 'DATA', code: 552, message: 'Mailbox full' });
    const err = await failure(transport(sim).sendMail(mail()));
    expect(err.responseCode).toBe(552);
    expect(err.response).toMatch(/Mailbox full/);
  });

  it('a MAIL fault for one sender spares the others', async () => {
    const sim = await simulator();
    sim.fault({ command: 'MAIL', address: 'spammer@evil.test', code: 554, times: Infinity });
    const err = await failure(transport(sim).sendMail(mail({ from: 'spammer@evil.test' })));
    expect(err.responseCode).toBe(554);
    await transport(sim).sendMail(mail());
    expect(sim.messages()).toHaveLength(1);
  });

  it('delays DATA to simulate a slow server', async () => {
    const sim = await simulator();
    sim.fault({ command: 'DATA', delayMs: 300 });
    const t0 = performance.now();
    await transport(sim).sendMail(mail());
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(sim.counts().rejected).toBe(0);
  });

  it('clearFaults() removes faults that have uses left', async () => {
    const sim = await simulator();
    sim.fault({ command: 'RCPT', code: 550, times: Infinity });
    sim.clearFaults();
    await transport(sim).sendMail(mail());
    expect(sim.messages()).toHaveLength(1);
  });

  it('probability faults hit the same messages for the same seed', async () => {
    const outcomes = async (seed: number) => {
      const sim = await simulator({ seed });
      sim.fault({ command: 'RCPT', code: 451, probability: 0.5, times: Infinity });
      // One reused connection: smtp-server holds every new one back 100 ms (its early-talker check).
      const t = transport(sim, { pool: true, maxConnections: 1 });
      const result: boolean[] = [];
      for (let i = 0; i < 20; i++)
        result.push(
          await t.sendMail(mail()).then(
            () => true,
            () => false,
          ),
        );
      expect(sim.counts().rejected).toBe(result.filter((ok) => !ok).length);
      return result;
    };
    const first = await outcomes(7);
    expect(await outcomes(7)).toEqual(first);
    expect(first).toContain(true);
    expect(first).toContain(false);
    expect(await outcomes(8)).not.toEqual(first);
  });

  it('rejects a probability outside 0..1', async () => {
    const sim = await simulator();
    expect(() => sim.fault({ command: 'DATA', code: 451, probability: 2 })).toThrow(/probability/);
  });
});

describe('captured messages', () => {
  it('keeps the threading headers and subject as sent', async () => {
    const sim = await simulator();
    const references = ['<a1@fabrikam.test>', '<b2@relaydesk.test>'];
    await transport(sim).sendMail(
      mail({
        messageId: '<reply-1@relaydesk.test>',
        inReplyTo: '<b2@relaydesk.test>',
        references,
        subject: 'Re: [#42] Printer on fire',
      }),
    );
    const [m] = await sim.waitFor(1);
    expect(m!.messageId).toBe('<reply-1@relaydesk.test>');
    expect(m!.headers['in-reply-to']).toEqual(['<b2@relaydesk.test>']);
    expect(m!.headers['references']).toEqual([references.join(' ')]);
    expect(m!.headers['subject']).toEqual(['Re: [#42] Printer on fire']);
    expect(m!.headers['from']).toEqual([FROM]);
  });

  it('waitFor() rejects when the messages do not come', async () => {
    const sim = await simulator();
    await expect(sim.waitFor(1, 50)).rejects.toThrow(/waited 50 ms for 1 messages, 0 arrived/);
  });

  it('clear() forgets the messages but not the counts', async () => {
    const sim = await simulator();
    await transport(sim).sendMail(mail());
    sim.clear();
    expect(sim.messages()).toEqual([]);
    expect(sim.counts().messages).toBe(1);
  });

  it('captures 200 messages over a pooled transport exactly once each', async () => {
    const sim = await simulator({ tls: 'starttls' });
    const t = transport(sim, { pool: true, maxConnections: 5, maxMessages: Infinity });
    const sent = await Promise.all(
      Array.from({ length: 200 }, (_, i) => t.sendMail(mail({ subject: `message ${i}` }))),
    );
    const messages = await sim.waitFor(200);
    expect(messages).toHaveLength(200);
    expect(new Set(messages.map((m) => m.messageId)).size).toBe(200);
    expect(new Set(messages.map((m) => m.messageId))).toEqual(new Set(sent.map((s) => s.messageId)));
    expect(sim.counts().connections).toBeLessThanOrEqual(5);
    expect(messages.every((m) => m.secure)).toBe(true);
  });
});
