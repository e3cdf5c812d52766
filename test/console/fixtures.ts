// What console tests set up through the API: a mailbox that sends to the SMTP simulator, customer
// mail arriving through it (the real inbound pipeline makes the ticket), agents who can sign in.
import type { BrowserContext, Page } from 'playwright-core';
import { expect } from 'vitest';
import type { SmtpSimulator } from '../../simulators/smtp.ts';
import { SESSION_COOKIE } from '../../src/platform/http/auth.ts';
import type { SignInOptions, TestSession } from '../app.ts';
import type { ConsoleBrowser } from './browser.ts';
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
  await postRawMail(
    server,
    mailbox,
    [...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), ...body].join('\r\n'),
  );
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

export interface Agent {
  personId: string;
  email: string;
  password: string;
  /** The agent's own API session, for setting things up as them. */
  call: Awaited<ReturnType<ConsoleServer['signIn']>>['call'];
}

/** Raw mail into the mailbox, as a provider would hand it over (the inbound worker takes it from there). */
export async function postRawMail(
  server: ConsoleServer,
  mailbox: { id: string },
  raw: string,
): Promise<void> {
  const res = await server.app.inject({
    method: 'POST',
    url: `/api/v1/mailboxes/${mailbox.id}/messages`,
    headers: { authorization: `Bearer ${server.a.adminToken.token}`, 'content-type': 'message/rfc822' },
    payload: Buffer.from(raw),
  });
  expect(res.statusCode, res.body).toBe(202);
}

/** A new agent of tenant A (or the one given) with a password, and an API session of theirs. */
export async function makeAgent(
  server: ConsoleServer,
  options: Parameters<ConsoleServer['signIn']>[0] = {},
): Promise<Agent> {
  const s = await server.signIn(options);
  return { personId: s.personId, email: s.email, password: s.password, call: s.call };
}

/**
 * A page in a fresh browser context, signed in as a new person of tenant A with this role: their
 * session's cookie is set (signing in through the sign-in page is signin.test.ts's subject).
 */
export async function signedIn(
  server: ConsoleServer,
  chrome: ConsoleBrowser,
  { role = 'admin', width = 1280 }: { role?: SignInOptions['role']; width?: number } = {},
): Promise<{ page: Page; context: BrowserContext; session: TestSession }> {
  const session = await server.signIn({ role });
  const { page, context } = await chrome.newPage({ width });
  await context.addCookies([{ name: SESSION_COOKIE, value: session.secret, url: server.url }]);
  return { page, context, session };
}

/**
 * Opens the console's `path` at this width in the page: a new document laid out at that width from
 * the start, as a phone opening it sees it, in the same session. (A fresh context per width cost
 * the browser about two seconds of CPU each.)
 */
export async function openAtWidth(page: Page, width: number, url: string): Promise<void> {
  await page.setViewportSize({ width, height: 800 });
  await page.goto(url);
}

/** An element with this role and name shows (the first, when there are several). */
export const visible = (page: Page, role: Parameters<Page['getByRole']>[0], name: string | RegExp) =>
  expect.poll(() => page.getByRole(role, { name }).first().isVisible(), { timeout: 10_000 }).toBe(true);

/** Signs in through the sign-in page and waits for the screen it leads to. */
export async function signInWithPassword(
  page: Page,
  server: ConsoleServer,
  agent: { email: string; password: string },
  options: { path?: string; tenant?: string; expect?: RegExp } = {},
): Promise<void> {
  await page.goto(server.consoleUrl(options.path ?? 'login'));
  await page.getByLabel('Email').fill(agent.email);
  await page.getByLabel('Password').fill(agent.password);
  if (options.tenant) {
    if (!(await page.getByLabel('Workspace').isVisible()))
      await page.getByRole('button', { name: 'Choose a workspace' }).click();
    await page.getByLabel('Workspace').fill(options.tenant);
  }
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: options.expect ?? 'Inbox' }).waitFor();
}

/** The first link to the console in a mail the SMTP simulator received. */
export function consoleLinkIn(raw: Buffer): string {
  // Quoted-printable soft breaks and =3D are undone before looking.
  const text = raw
    .toString('utf8')
    .replace(/=\r?\n/g, '')
    .replace(/=3D/g, '=');
  const link = /https?:\/\/[^\s"<>]+\/console\/[a-z]+\?token=[A-Za-z0-9_-]+/.exec(text)?.[0];
  if (!link) throw new Error(`no console link in the mail:\n${text.slice(0, 2000)}`);
  return link;
}
