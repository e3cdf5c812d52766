// Signing in to the console in Chromium: with a password (and the workspace when the address is in
// several), the authenticator step, enrolment when the workspace requires it, the mailed invitation
// and reset links, sign-out everywhere, an expired session sending the agent to sign in and back, and
// the CSRF check refusing a write without the session's token. Each screen is checked with axe.
import * as OTPAuth from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OidcSimulator, startOidcSimulator } from '../../simulators/oidc.ts';
import { type SmtpSimulator, startSmtpSimulator } from '../../simulators/smtp.ts';
import {
  type ConsoleBrowser,
  expectAccessible,
  pageProblems,
  screenshot,
  settled,
  useBrowser,
} from './browser.ts';
import { consoleLinkIn, makeAgent, makeMailbox, signInWithPassword } from './fixtures.ts';
import { type ConsoleServer, useConsoleServer } from './server.ts';

let server: ConsoleServer;
let chrome: ConsoleBrowser;
let smtp: SmtpSimulator;
let oidc: OidcSimulator;

const codeAt = (secret: string, at: Date) =>
  new OTPAuth.TOTP({
    secret: OTPAuth.Secret.fromBase32(secret),
    algorithm: 'SHA1',
    digits: 6,
    period: 30,
  }).generate({
    timestamp: at.getTime(),
  });

beforeAll(async () => {
  server = await useConsoleServer();
  chrome = await useBrowser();
  smtp = await startSmtpSimulator({ tls: 'none' });
  await makeMailbox(server, smtp);
  oidc = await startOidcSimulator();
});
afterAll(async () => {
  await smtp?.close();
  await oidc?.close();
});

describe('signing in', { timeout: 120_000 }, () => {
  it('with a password leads to the inbox; a wrong password is refused with a plain message', async () => {
    const agent = await makeAgent(server);
    const { page, context } = await chrome.newPage();
    await page.goto(server.url);
    // / → /console/ → the sign-in page, since nobody is signed in.
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/console/login');
    await expectAccessible(page, 'sign-in');
    await screenshot(page, 'sign-in');

    await page.getByLabel('Email').fill(agent.email);
    await page.getByLabel('Password').fill('not the password at all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toContain('The email address or the password is not right');
    await expectAccessible(page, 'sign-in with an error');

    await page.getByLabel('Password').fill(agent.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/console/inbox');
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'rd_session');
    expect(session?.httpOnly).toBe(true);
    expect(session?.sameSite).toBe('Lax');
    expect(pageProblems(page)).toEqual([]);
    await context.close();
  });

  it('through single sign-on with the OpenID Connect simulator, and says so when it fails', async () => {
    const agent = await makeAgent(server);
    const configured = await server.call(server.a.adminToken.token, 'PUT', '/api/v1/integrations/oidc/oidc', {
      issuer: oidc.issuer,
      clientId: oidc.client.clientId,
      clientSecret: oidc.client.clientSecret,
      label: 'Contoso ID',
    });
    expect(configured.status, JSON.stringify(configured.body)).toBe(200);
    oidc.nextUser = {
      sub: `sso-${agent.personId}`,
      email: agent.email,
      email_verified: true,
      name: 'From SSO',
    };

    const { page, context } = await chrome.newPage();
    await page.goto(server.consoleUrl(`login?returnTo=${encodeURIComponent('/inbox?view=mine')}`));
    await page.getByRole('button', { name: 'Choose a workspace' }).click();
    await page.getByLabel('Workspace').fill(server.a.tenant.name);
    const button = page.getByRole('link', { name: 'Sign in with Contoso ID' });
    await button.waitFor();
    await expectAccessible(page, 'sign-in with single sign-on');
    await screenshot(page, 'sign-in-sso');
    await button.click();
    await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    expect(new URL(page.url()).search).toBe('?view=mine');
    const me = await page.evaluate(async () => (await fetch('/api/v1/session')).json());
    expect(me).toMatchObject({ session: { method: 'oidc', person: { id: agent.personId } } });

    await page.getByRole('button', { name: /^Account:/ }).click();
    await page.getByRole('menuitem', { name: 'Sign out', exact: true }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    oidc.denyNext();
    await page.getByRole('button', { name: 'Choose a workspace' }).click();
    await page.getByLabel('Workspace').fill(server.a.tenant.name);
    await button.click();
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toContain('Single sign-on did not sign you in');
    expect(new URL(page.url()).searchParams.get('error')).toBe('sso_failed');
    await context.close();
  });

  it('asks for the workspace when the address and password are good in two of them', async () => {
    const password = 'the same password in both';
    const a = await makeAgent(server, { password });
    await makeAgent(server, { password, tenant: server.b });
    // The agent of B gets A's agent's address.
    const b = await server.signIn({ tenant: server.b, password });
    const changed = await server.call(server.b.adminToken.token, 'PATCH', `/api/v1/people/${b.personId}`, {
      email: a.email,
      emails: [a.email],
    });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);

    const { page, context } = await chrome.newPage();
    await page.goto(server.consoleUrl('login'));
    await page.getByLabel('Email').fill(a.email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('several workspaces');
    await page.getByLabel('Workspace').fill(server.b.tenant.name);
    await screenshot(page, 'sign-in-workspace');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    await expect.poll(() => page.locator('.tenant').textContent()).toBe(server.b.tenant.name);
    await context.close();
  });

  it('asks for the authenticator code of an account with two-factor sign-in', async () => {
    const agent = await makeAgent(server);
    const started = await agent.call('POST', '/api/v1/session/totp');
    expect(started.status).toBe(200);
    const confirmed = await agent.call('POST', '/api/v1/session/totp/confirm', {
      code: codeAt(started.body.secret, server.clock.now()),
    });
    expect(confirmed.status).toBe(200);

    const { page, context } = await chrome.newPage();
    await page.goto(server.consoleUrl('login'));
    await page.getByLabel('Email').fill(agent.email);
    await page.getByLabel('Password').fill(agent.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Two-factor sign-in' }).waitFor();
    await expectAccessible(page, 'sign-in code');
    await screenshot(page, 'sign-in-code');
    await page.getByLabel('Authenticator code').fill('000000');
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('That code is not right');
    // The next 30-second step: a code not used for enrolment.
    server.clock.advance(30_000);
    await page.getByLabel('Authenticator code').fill(codeAt(started.body.secret, server.clock.now()));
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();

    // A recovery code works in its place, once.
    const other = await chrome.newPage();
    await other.page.goto(server.consoleUrl('login'));
    await other.page.getByLabel('Email').fill(agent.email);
    await other.page.getByLabel('Password').fill(agent.password);
    await other.page.getByRole('button', { name: 'Sign in' }).click();
    await other.page.getByRole('button', { name: 'Use a recovery code' }).click();
    await other.page.getByLabel('Recovery code').fill(confirmed.body.recoveryCodes[0]);
    await other.page.getByRole('button', { name: 'Continue' }).click();
    await other.page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    await other.context.close();
    await context.close();
  });

  it('sends an agent of a workspace that requires two-factor sign-in to enrol first', async () => {
    const agent = await makeAgent(server, { tenant: server.b });
    const settings = await server.call(server.b.adminToken.token, 'GET', '/api/v1/auth-settings');
    const put = await server.call(server.b.adminToken.token, 'PUT', '/api/v1/auth-settings', {
      ...settings.body,
      requireTotp: true,
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    try {
      const { page, context } = await chrome.newPage();
      await signInWithPassword(page, server, agent, {
        tenant: server.b.tenant.name,
        expect: /Two-factor sign-in/,
      });
      expect(new URL(page.url()).pathname).toBe('/console/account/two-factor');
      // Nothing else is offered until it is done.
      expect(await page.getByRole('navigation', { name: 'Main' }).getByRole('link').count()).toBe(0);
      await page.getByRole('button', { name: 'Set up two-factor sign-in' }).click();
      const secret = (await page.getByTestId('totp-secret').textContent())!;
      expect(await page.getByTestId('totp-uri').textContent()).toMatch(/^otpauth:\/\/totp\//);
      await expectAccessible(page, 'two-factor enrolment');
      await screenshot(page, 'two-factor-enrolment');
      await page.getByLabel('The code the app shows now').fill(codeAt(secret, server.clock.now()));
      await page.getByRole('button', { name: 'Turn on two-factor sign-in' }).click();
      await page.getByRole('heading', { name: 'Your recovery codes' }).waitFor();
      expect(await page.locator('.recovery-codes li').count()).toBe(10);
      await screenshot(page, 'two-factor-recovery-codes');
      await page.getByRole('link', { name: 'Continue to the inbox' }).click();
      await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
      await context.close();
    } finally {
      await server.call(server.b.adminToken.token, 'PUT', '/api/v1/auth-settings', {
        ...settings.body,
        requireTotp: false,
      });
    }
  });

  it('accepts a mailed invitation: the agent chooses a password and is signed in', async () => {
    const person = await server.call(server.a.adminToken.token, 'POST', '/api/v1/people', {
      displayName: 'Ivy Invited',
      kind: 'agent',
      email: 'ivy@desk.test',
      status: 'invited',
    });
    expect(person.status, JSON.stringify(person.body)).toBe(201);
    smtp.clear();
    const invited = await server.call(
      server.a.adminToken.token,
      'POST',
      `/api/v1/people/${person.body.id}/invitation`,
    );
    expect(invited.status, JSON.stringify(invited.body)).toBe(202);
    const [mail] = await smtp.waitFor(1, 20_000);
    const link = consoleLinkIn(mail!.raw);
    expect(link.startsWith(`${server.url}/console/accept?token=`)).toBe(true);

    const { page, context } = await chrome.newPage({ width: 390 });
    await page.goto(link);
    await page.getByRole('heading', { name: 'Welcome to Relaydesk' }).waitFor();
    await expectAccessible(page, 'invitation');
    await screenshot(page, 'invitation-390');
    await page.getByLabel('New password').fill('short');
    await page.getByLabel('The same password again').fill('short');
    await page.getByRole('button', { name: 'Set the password and sign in' }).click();
    await expect.poll(() => page.locator('.field-error').textContent()).toContain('At least 12 characters');
    await page.getByLabel('New password').fill('a long enough password');
    await page.getByLabel('The same password again').fill('a long enough password');
    await page.getByRole('button', { name: 'Set the password and sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    const after = await server.call(server.a.adminToken.token, 'GET', `/api/v1/people/${person.body.id}`);
    expect(after.body.status).toBe('active');

    // The link worked once.
    await page.goto(link);
    await page.getByLabel('New password').fill('another long password');
    await page.getByLabel('The same password again').fill('another long password');
    await page.getByRole('button', { name: 'Set the password and sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('does not work any more');
    await context.close();
  });

  it('resets a forgotten password through the mailed link', async () => {
    const agent = await makeAgent(server);
    const { page, context } = await chrome.newPage();
    await page.goto(server.consoleUrl('login'));
    await page.getByRole('button', { name: 'Forgot your password?' }).click();
    smtp.clear();
    await page.getByLabel('Email').fill(agent.email);
    await page.getByRole('button', { name: 'Send the link' }).click();
    await page.getByRole('heading', { name: 'Check your email' }).waitFor();
    const [mail] = await smtp.waitFor(1, 20_000);
    const link = consoleLinkIn(mail!.raw);
    expect(link.startsWith(`${server.url}/console/reset?token=`)).toBe(true);
    await page.goto(link);
    await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
    await expectAccessible(page, 'password reset');
    await screenshot(page, 'password-reset');
    await page.getByLabel('New password').fill('my brand new password');
    await page.getByLabel('The same password again').fill('my brand new password');
    await page.getByRole('button', { name: 'Save and sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    await context.close();
    const fresh = await chrome.newPage();
    await signInWithPassword(fresh.page, server, { email: agent.email, password: 'my brand new password' });
    await fresh.context.close();
  });
});

describe('a session', { timeout: 120_000 }, () => {
  it('that expired sends the agent to sign in, and back to where they were', async () => {
    const agent = await makeAgent(server);
    const { page, context } = await chrome.newPage();
    await signInWithPassword(page, server, agent);
    await page.goto(server.consoleUrl('inbox?view=mine'));
    await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    await page.getByText('No tickets here.').waitFor();
    // The inbox's requests answered first: one still under way would find the session ended and
    // send the agent to sign in from here, before the click.
    await settled(page);
    // Past the idle timeout (8 hours by default).
    server.clock.advance(9 * 3600_000);
    await page.getByRole('link', { name: 'Unassigned' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await expect
      .poll(() => page.getByRole('status').first().textContent())
      .toContain('Your session has ended');
    const url = new URL(page.url());
    expect(url.pathname).toBe('/console/login');
    expect(url.searchParams.get('returnTo')).toBe('/inbox?view=unassigned');
    await screenshot(page, 'session-expired');
    await page.getByLabel('Email').fill(agent.email);
    await page.getByLabel('Password').fill(agent.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    expect(new URL(page.url()).search).toBe('?view=unassigned');
    await context.close();
  });

  it('refuses a write without its CSRF token, and takes it with', async () => {
    const agent = await makeAgent(server);
    const { page, context } = await chrome.newPage();
    await signInWithPassword(page, server, agent);
    const answers = await page.evaluate(async () => {
      const session = (await (await fetch('/api/v1/session')).json()) as { session: { csrfToken: string } };
      const body = JSON.stringify({ subject: 'From the page', requester: { email: 'csrf@example.com' } });
      const bare = await fetch('/api/v1/tickets', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      const wrong = await fetch('/api/v1/tickets', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': 'not-the-token' },
        body,
      });
      const right = await fetch('/api/v1/tickets', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': session.session.csrfToken },
        body,
      });
      return [
        { status: bare.status, code: ((await bare.json()) as { code: string }).code },
        { status: wrong.status, code: ((await wrong.json()) as { code: string }).code },
        { status: right.status },
      ];
    });
    expect(answers).toEqual([
      { status: 403, code: 'csrf_failed' },
      { status: 403, code: 'csrf_failed' },
      { status: 201 },
    ]);
    await context.close();
  });

  it('signs out here, or everywhere', async () => {
    const agent = await makeAgent(server);
    const first = await chrome.newPage();
    const second = await chrome.newPage();
    await signInWithPassword(first.page, server, agent);
    await signInWithPassword(second.page, server, agent);

    await first.page.getByRole('button', { name: /^Account:/ }).click();
    await expectAccessible(first.page, 'account menu');
    await first.page.getByRole('menuitem', { name: 'Sign out everywhere' }).click();
    await first.page.getByRole('heading', { name: 'Sign in' }).waitFor();
    // The other browser's session ended too: its next request sends it to sign in.
    await second.page.getByRole('link', { name: 'Mine' }).click();
    await second.page.getByRole('heading', { name: 'Sign in' }).waitFor();

    await signInWithPassword(first.page, server, agent);
    await first.page.getByRole('button', { name: /^Account:/ }).click();
    await first.page.getByRole('menuitem', { name: 'Sign out', exact: true }).click();
    await first.page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect((await first.context.cookies()).find((c) => c.name === 'rd_session')).toBeUndefined();
    await first.context.close();
    await second.context.close();
  });
});
