// The operations screens in Chromium: mailboxes (connect through the Graph simulator's OAuth, the
// re-authorisation state and banner, test, renew), deliveries (a failed one retried from the screen
// and sent), dead letters (a job that failed for good re-driven and re-queued) and tokens (minted,
// copied, revoked). axe on every screen; screenshots at 1280 and 390 px.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GraphSimulator, startGraphSimulator } from '../../simulators/graph.ts';
import { type SmtpSimulator, startSmtpSimulator } from '../../simulators/smtp.ts';
import { makeTicket } from '../app.ts';
import {
  type ConsoleBrowser,
  expectAccessible,
  pageProblems,
  screenshot,
  settled,
  useBrowser,
} from './browser.ts';
import { signedIn as signedInAs } from './fixtures.ts';
import { type ConsoleServer, useConsoleServer } from './server.ts';

let server: ConsoleServer;
let chrome: ConsoleBrowser;
let graph: GraphSimulator;
let smtp: SmtpSimulator;
let admin: string;

beforeAll(async () => {
  graph = await startGraphSimulator();
  smtp = await startSmtpSimulator();
  server = await useConsoleServer({
    oauth: {
      microsoft: { clientId: graph.credentials.clientId, clientSecret: graph.credentials.clientSecret },
    },
    // The OAuth callback and the subscriptions' notification URLs are on the listening server.
    publicUrlIsSelf: true,
  });
  admin = server.a.adminToken.token;
  chrome = await useBrowser();
});

afterAll(async () => {
  await graph?.close();
  await smtp?.close();
});

/** A browser page signed in to the console as a new person of tenant A with this role. */
const signedIn = (role: 'admin' | 'agent' = 'admin', width = 1280) =>
  signedInAs(server, chrome, { role, width });

/** The page that shows the screens at 390 px: one for the file (signed in as an admin), closed with the browser. */
let phonePage: Promise<Page> | undefined;
const phone = () => (phonePage ??= signedIn('admin', 390).then((opened) => opened.page));

/** Opens a screen and waits for its heading. */
async function open(page: Page, path: string, heading: string): Promise<void> {
  await page.goto(server.consoleUrl(path));
  await expect.poll(() => page.getByRole('heading', { name: heading, level: 1 }).isVisible()).toBe(true);
}

/** axe and a screenshot at both widths, the 390 px one in the phone's page. */
async function checkScreen(page: Page, path: string, heading: string, name: string, ready: string) {
  await expectAccessible(page, name);
  await screenshot(page, `${name}-1280`);
  const small = await phone();
  await open(small, path, heading);
  await small.locator(ready).first().waitFor();
  await expectAccessible(small, `${name} (390 px)`);
  await screenshot(small, `${name}-390`);
  expect(pageProblems(small)).toEqual([]);
}

async function graphMailbox(address: string): Promise<string> {
  const res = await server.call(admin, 'POST', '/api/v1/mailboxes', {
    kind: 'graph',
    address,
    displayName: 'Contoso help desk',
    settings: {
      graph: {
        apiBaseUrl: graph.apiBaseUrl,
        tokenUrl: graph.tokenUrl,
        authorizeUrl: graph.authorizeUrl,
        delegatedTokenUrl: graph.delegatedTokenUrl,
      },
    },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

const healthOf = async (id: string) =>
  (await server.call(admin, 'GET', `/api/v1/mailboxes/${id}/health`)).body as { status: string };

describe('the mailboxes screen', () => {
  it('connects a mailbox through the OAuth simulator and shows it healthy, then mends a re-authorisation', async () => {
    const address = 'helpdesk@contoso.test';
    const id = await graphMailbox(address);
    const { page, context } = await signedIn();
    await open(page, 'mailboxes', 'Mailboxes');
    const row = page.locator(`tr[data-mailbox="${address}"]`);
    await expect.poll(() => row.getAttribute('data-state')).toBe('not_connected');
    expect(await row.getByText('Not connected').isVisible()).toBe(true);
    // Its health is needs_reauth ("not connected yet"), but it was never connected: no banner asks to
    // connect it again, and the row shows no error.
    expect(await healthOf(id)).toMatchObject({ status: 'needs_reauth' });
    await settled(page); // the banner's own read of the mailboxes has come back
    expect(await page.locator('.banner-warning').count()).toBe(0);
    expect(await row.getByText('not connected yet').count()).toBe(0);

    // Connect: the console asks for the authorization URL and goes there; the simulator consents at
    // once and sends the browser to the callback, which sends it back to the console.
    await row.getByRole('button', { name: `Connect ${address}` }).click();
    await expect
      .poll(() =>
        page
          .getByRole('status')
          .filter({ hasText: `${address} is connected.` })
          .count(),
      )
      .toBe(1);
    await expect.poll(() => row.getAttribute('data-state')).toBe('healthy');
    expect(await row.getByText('Healthy').isVisible()).toBe(true);
    expect(await row.getByText(/^in \d/).isVisible()).toBe(true); // the subscription's expiry
    expect(await healthOf(id)).toMatchObject({ status: 'healthy' });
    expect(await page.locator('.banner-warning').count()).toBe(0);
    await checkScreen(page, 'mailboxes', 'Mailboxes', 'mailboxes', 'tr[data-state="healthy"]');

    // Test: every step passes against the simulator.
    await row.getByRole('button', { name: `Test ${address}` }).click();
    const dialog = page.getByRole('dialog', { name: `Test of ${address}` });
    await expect.poll(() => dialog.getByText('Everything works.').isVisible()).toBe(true);
    await expectAccessible(page, 'mailbox test dialog');
    await dialog.getByRole('button', { name: 'Close' }).click();

    // Renew now: accepted, and the mailbox stays healthy.
    const renewals = graph.counts().renewed;
    await row.getByRole('button', { name: `Renew now ${address}` }).click();
    await expect.poll(() => page.getByText(`Renewing the subscription of ${address}`).isVisible()).toBe(true);
    await expect.poll(() => graph.counts().renewed).toBeGreaterThan(renewals);
    await expect.poll(() => row.getAttribute('data-state')).toBe('healthy');

    // The provider refuses the stored access (as upkeep records it): the row says so, with the action
    // beside it, and the banner appears across the console.
    await server.db.admin.query(
      `UPDATE mailbox_health SET status = 'needs_reauth', failure_reason = 'the refresh token was revoked',
              consecutive_failures = 3 WHERE mailbox_id = $1`,
      [id],
    );
    await open(page, 'mailboxes', 'Mailboxes');
    await expect.poll(() => row.getAttribute('data-state')).toBe('needs_reauth');
    expect(await row.getByText('Needs re-authorisation').isVisible()).toBe(true);
    expect(await row.getByText('the refresh token was revoked').isVisible()).toBe(true);
    const banner = page.locator('.banner-warning');
    await expect.poll(() => banner.textContent()).toContain(address);
    await expectAccessible(page, 'mailboxes needing re-authorisation');
    await screenshot(page, 'mailboxes-reauth-1280');

    await row.getByRole('button', { name: `Connect again ${address}` }).click();
    await expect
      .poll(() =>
        page
          .getByRole('status')
          .filter({ hasText: `${address} is connected.` })
          .count(),
      )
      .toBe(1);
    expect(new URL(page.url()).search).toBe('');
    await expect.poll(() => row.getAttribute('data-state')).toBe('healthy');
    await expect.poll(() => page.locator('.banner-warning').count()).toBe(0);
    expect(pageProblems(page)).toEqual([]);
    await context.close();
  }, 120_000);

  it('says so when consent is refused, and nothing is stored', async () => {
    const address = 'refused@contoso.test';
    const id = await graphMailbox(address);
    const { page, context } = await signedIn();
    await open(page, 'mailboxes', 'Mailboxes');
    graph.denyConsent();
    await page
      .locator(`tr[data-mailbox="${address}"]`)
      .getByRole('button', { name: `Connect ${address}` })
      .click();
    await expect
      .poll(() => page.getByRole('alert').filter({ hasText: 'consent was not given' }).isVisible())
      .toBe(true);
    expect((await server.call(admin, 'GET', `/api/v1/mailboxes/${id}`)).body.hasCredentials).toBe(false);
    await context.close();
  });
});

describe('the deliveries screen', () => {
  it('retries a failed delivery from the screen, and the new attempt is sent', async () => {
    const mailbox = await server.call(admin, 'POST', '/api/v1/mailboxes', {
      kind: 'mime',
      address: 'support@desk.test',
      settings: { smtp: { host: smtp.host, port: smtp.port, security: 'none' } },
    });
    expect(mailbox.status, JSON.stringify(mailbox.body)).toBe(201);
    const ticket = await makeTicket(server, admin, { requester: { email: 'carol@customer.test' } });
    smtp.fault({ command: 'RCPT', code: 550, message: 'No such user', times: 1 });
    const reply = await server.call(admin, 'POST', `/api/v1/tickets/${ticket.id}/messages`, {
      visibility: 'public',
      text: 'We are on it.',
      mailboxId: mailbox.body.id,
    });
    expect(reply.status, JSON.stringify(reply.body)).toBe(201);
    await expect
      .poll(
        async () =>
          (await server.call(admin, 'GET', `/api/v1/deliveries?ticketId=${ticket.id}`)).body.items[0]?.status,
      )
      .toBe('failed');

    // An agent may retry (deliveries:manage).
    const { page, context } = await signedIn('agent');
    await page.goto(server.consoleUrl('deliveries?status=failed'));
    await expect
      .poll(() => page.getByRole('heading', { name: 'Deliveries', level: 1 }).isVisible())
      .toBe(true);
    const failed = page.locator('tr[data-status="failed"]').filter({ hasText: 'carol@customer.test' });
    await failed.first().waitFor();
    expect(await failed.getByRole('link', { name: ticket.number }).getAttribute('href')).toBe(
      `/console/tickets/${ticket.id}`,
    );
    expect(await failed.getByText('invalid_recipient').isVisible()).toBe(true);
    await expectAccessible(page, 'deliveries');
    await screenshot(page, 'deliveries-1280');

    // The details of the attempt, then the retry from there.
    await failed.getByRole('button', { name: /^Details of the failed reply/ }).click();
    const dialog = page.getByRole('dialog', { name: 'Delivery attempt' });
    await expect.poll(() => dialog.getByText('No such user', { exact: false }).isVisible()).toBe(true);
    expect(new URL(page.url()).searchParams.get('open')).toBeTruthy();
    await expectAccessible(page, 'delivery details');
    await screenshot(page, 'deliveries-details-1280');
    await dialog.getByRole('button', { name: 'Retry' }).click();
    await expect
      .poll(() => page.getByText('Retry queued: attempt 2 to carol@customer.test.').isVisible())
      .toBe(true);

    // Filtered by the ticket's number, the new attempt shows up sent.
    await page.getByRole('combobox', { name: 'Status' }).selectOption('');
    await page.getByRole('textbox', { name: 'Ticket' }).fill(ticket.number);
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get('ticket')).toBe(ticket.number);
    const sent = page.locator('tr[data-status="sent"]').filter({ hasText: 'Attempt 2' });
    await expect.poll(() => sent.count(), { interval: 500 }).toBe(1);
    await expect.poll(() => page.locator('tbody tr').count()).toBe(2);
    expect(smtp.messages().filter((m) => m.to.includes('carol@customer.test'))).toHaveLength(1);
    // The failed attempt is retried already: no second retry is offered for it.
    expect(
      await page
        .locator('tr[data-status="failed"]')
        .getByRole('button', { name: /^Retry/ })
        .count(),
    ).toBe(0);
    expect(smtp.messages().filter((m) => m.to.includes('carol@customer.test'))).toHaveLength(1);
    expect(pageProblems(page)).toEqual([]);
    await checkScreen(
      page,
      `deliveries?ticket=${ticket.number}`,
      'Deliveries',
      'deliveries',
      'tr[data-status]',
    );
    await context.close();
  }, 90_000);
});

describe('the dead-letters screen', () => {
  it('re-drives a job that failed for good: gone from the list, waiting in its queue again', async () => {
    const queue = 'console.check';
    const boss = server.queue.boss;
    await boss.createQueue(`${queue}__dlq`);
    await boss.createQueue(queue, { retryLimit: 0, deadLetter: `${queue}__dlq` });
    await boss.send(queue, { tenantId: server.a.tenant.id, ticket: 'T-1' });
    // Another tenant's dead letter is neither shown nor re-driven.
    await boss.send(`${queue}__dlq`, { tenantId: server.b.tenant.id });
    const [job] = await boss.fetch<{ tenantId: string }>(queue);
    await boss.fail(queue, job!.id, { message: 'the receiver answered 500' });
    await expect
      .poll(
        async () => (await server.call(admin, 'GET', `/api/v1/queue/dlq?queue=${queue}`)).body.items.length,
      )
      .toBe(1);

    const { page, context } = await signedIn();
    await open(page, 'dead-letters', 'Dead letters');
    const group = page.locator(`section[data-queue="${queue}"]`);
    await expect.poll(() => group.locator('.dlq-error').textContent()).toBe('the receiver answered 500');
    await group.getByText('Payload and error').click();
    expect(await group.locator('pre').first().textContent()).toContain('"ticket": "T-1"');
    await expectAccessible(page, 'dead letters');
    await screenshot(page, 'dead-letters-1280');
    const small = await phone();
    await open(small, 'dead-letters', 'Dead letters');
    await small.locator(`section[data-queue="${queue}"]`).waitFor();
    await expectAccessible(small, 'dead letters (390 px)');
    await screenshot(small, 'dead-letters-390');

    await group.getByRole('button', { name: `Re-drive the dead letters of ${queue}` }).click();
    await expect
      .poll(() => page.getByText(`1 job went back to ${queue} to run again.`).isVisible())
      .toBe(true);
    await expect.poll(() => group.count()).toBe(0);
    const stats = page.locator(`.queue-stats tr[data-queue="${queue}"]`);
    await expect.poll(() => stats.locator('[data-count="ready"]').textContent()).toBe('1');
    expect(await stats.locator('[data-count="dead"]').textContent()).toBe('0');
    const waiting = await boss.fetch<{ tenantId: string; ticket: string }>(queue);
    expect(waiting.map((j) => j.data)).toEqual([{ tenantId: server.a.tenant.id, ticket: 'T-1' }]);
    expect(
      (await server.call(server.b.adminToken.token, 'GET', `/api/v1/queue/dlq?queue=${queue}`)).body.items,
    ).toHaveLength(1);
    await screenshot(page, 'dead-letters-redriven-1280');
    expect(pageProblems(page)).toEqual([]);
    await context.close();
  }, 90_000);
});

describe('the tokens screen', () => {
  it('mints a token shown once with a copy button, and revokes it', async () => {
    const { page, context } = await signedIn();
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    await open(page, 'tokens', 'Tokens');
    await page.getByRole('textbox', { name: /^Label/ }).fill('CRM sync');
    await page.getByRole('combobox', { name: 'Role' }).selectOption('integration');
    await page.getByRole('button', { name: /^Create integration token/ }).click();
    const plaintext = page.getByRole('textbox', { name: 'The new token' });
    await plaintext.waitFor();
    const token = await plaintext.inputValue();
    expect(token).toMatch(/^rd_/);
    await page.getByRole('button', { name: 'Copy' }).click();
    await expect.poll(() => page.getByText('Copied to the clipboard.').isVisible()).toBe(true);
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(token);
    expect((await server.call(token, 'GET', '/api/v1/me')).status).toBe(200);
    await expectAccessible(page, 'tokens with a new token');
    await screenshot(page, 'tokens-new-1280');

    // Dismissed, the plaintext is gone for good: the list shows only its last four characters.
    await page.getByRole('button', { name: 'I have stored it' }).click();
    await expect.poll(() => page.getByRole('textbox', { name: 'The new token' }).count()).toBe(0);
    expect(await page.content()).not.toContain(token);
    const row = page.locator(`tr[data-token="${token.slice(-4)}"]`);
    await expect.poll(() => row.getByText('CRM sync').isVisible()).toBe(true);
    await expectAccessible(page, 'tokens');
    await checkScreen(page, 'tokens', 'Tokens', 'tokens', 'tr[data-token]');

    await row.getByRole('button', { name: `Revoke the token ending in ${token.slice(-4)}` }).click();
    const confirm = page.getByRole('alertdialog', { name: 'Revoke this token?' });
    await confirm.waitFor();
    await expectAccessible(page, 'revoke dialog');
    await confirm.getByRole('button', { name: 'Revoke' }).click();
    await expect.poll(() => page.getByText(/is revoked\.$/).isVisible()).toBe(true);
    expect((await server.call(token, 'GET', '/api/v1/me')).status).toBe(401);
    await expect.poll(() => row.count()).toBe(0);
    await page.getByRole('checkbox', { name: /Show revoked tokens/ }).check();
    await expect.poll(() => row.getAttribute('data-state')).toBe('revoked');
    expect(pageProblems(page)).toEqual([]);
    await context.close();
  }, 90_000);

  it('is not offered to an agent, nor are the other admin screens', async () => {
    const { page, context } = await signedIn('agent');
    await open(page, 'inbox', 'Inbox');
    const nav = page.getByRole('navigation', { name: 'Main' });
    expect(await nav.getByRole('link', { name: 'Deliveries' }).count()).toBe(1);
    for (const name of ['Tokens', 'Mailboxes', 'Dead letters'])
      expect(await nav.getByRole('link', { name }).count(), name).toBe(0);
    await context.close();
  });
});
