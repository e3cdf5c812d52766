// The inbox in Chromium: full-text search over message text, the views, bulk assignment, the
// keyboard (j/k, x, Enter, /, ?), and the layout at desktop and phone widths. Checked with axe.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SmtpSimulator, startSmtpSimulator } from '../../simulators/smtp.ts';
import {
  type ConsoleBrowser,
  expectAccessible,
  pageProblems,
  screenshot,
  settled,
  useBrowser,
} from './browser.ts';
import { type Agent, mailIn, makeAgent, makeMailbox, signInWithPassword } from './fixtures.ts';
import { type ConsoleServer, useConsoleServer } from './server.ts';

let server: ConsoleServer;
let chrome: ConsoleBrowser;
let smtp: SmtpSimulator;
let mailbox: { id: string; address: string };
let agent: Agent;

const rows = (page: import('playwright-core').Page) => page.locator('table.tickets tbody tr');

beforeAll(async () => {
  server = await useConsoleServer();
  chrome = await useBrowser();
  smtp = await startSmtpSimulator({ tls: 'none' });
  mailbox = await makeMailbox(server, smtp);
  agent = await makeAgent(server, { role: 'agent' });
});
afterAll(async () => {
  await smtp?.close();
});

describe('the inbox', { timeout: 120_000 }, () => {
  it('finds a ticket by a word of its message text', async () => {
    await mailIn(server, mailbox, { subject: 'Printer', text: 'The printer on floor two jams.' });
    const wanted = await mailIn(server, mailbox, {
      subject: 'Strange noise',
      text: 'The flux capacitor is leaking again.',
    });
    await mailIn(server, mailbox, { subject: 'Password', text: 'I forgot my password.' });

    const { page, context } = await chrome.newPage();
    await signInWithPassword(page, server, agent);
    await expect.poll(() => rows(page).count()).toBeGreaterThanOrEqual(3);
    await expectAccessible(page, 'inbox');
    await screenshot(page, 'inbox');

    await page.keyboard.press('/');
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('inbox-search');
    await page.keyboard.type('capacitor');
    await page.keyboard.press('Enter');
    await expect.poll(() => rows(page).count()).toBe(1);
    expect(await rows(page).first().textContent()).toContain(wanted.number);
    expect(new URL(page.url()).searchParams.get('search')).toBe('capacitor');
    await expectAccessible(page, 'inbox search');
    await screenshot(page, 'inbox-search');
    expect(pageProblems(page)).toEqual([]);
    await context.close();
  });

  it('assigns tickets in bulk, and the views follow', async () => {
    const one = await mailIn(server, mailbox, { subject: 'Bulk one' });
    const two = await mailIn(server, mailbox, { subject: 'Bulk two' });
    const { page, context } = await chrome.newPage();
    await signInWithPassword(page, server, agent, { path: 'inbox?view=unassigned' });
    for (const t of [one, two]) await page.getByLabel(`Select ${t.number}`).check();
    await page.getByRole('form', { name: 'Change the selected tickets' }).waitFor();
    await expectAccessible(page, 'inbox with a selection');
    const bulk = page.getByRole('form', { name: 'Change the selected tickets' });
    await bulk.getByLabel('Assign to').selectOption({ label: (await agentName(agent))! });
    await bulk.getByLabel('Status').selectOption('pending');
    await bulk.getByRole('button', { name: 'Apply' }).click();
    await expect
      .poll(() => page.getByRole('status').filter({ hasText: 'updated' }).textContent())
      .toContain('2 tickets updated');
    await expect.poll(() => page.locator(`tr[data-ticket="${one.number}"]`).count()).toBe(0);

    await page.getByRole('link', { name: 'Mine' }).click();
    await expect
      .poll(() => page.locator(`tr[data-ticket="${one.number}"], tr[data-ticket="${two.number}"]`).count())
      .toBe(2);
    const changed = await server.call(server.a.adminToken.token, 'GET', `/api/v1/tickets/${one.id}`);
    expect(changed.body).toMatchObject({ assigneeId: agent.personId, status: 'pending' });
    await context.close();
  });

  it('is worked with the keyboard: j/k to move, x to select, Enter to open, ? for help', async () => {
    await mailIn(server, mailbox, { subject: 'Keyboard one' });
    await mailIn(server, mailbox, { subject: 'Keyboard two' });
    const { page, context } = await chrome.newPage();
    await signInWithPassword(page, server, agent);
    await expect.poll(() => rows(page).count()).toBeGreaterThanOrEqual(2);
    await page.locator('main').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('j');
    await page.keyboard.press('j');
    await expect.poll(() => page.locator('tr.current').count()).toBe(1);
    const second = await rows(page).nth(1).getAttribute('data-ticket');
    expect(await page.locator('tr.current').getAttribute('data-ticket')).toBe(second);
    await page.keyboard.press('k');
    await page.keyboard.press('x');
    const first = await rows(page).nth(0).getAttribute('data-ticket');
    await expect.poll(() => page.getByLabel(`Select ${first}`).isChecked()).toBe(true);
    await page.keyboard.press('x');
    await expect.poll(() => page.getByLabel(`Select ${first}`).isChecked()).toBe(false);

    await page.keyboard.press('?');
    const help = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
    await help.waitFor();
    await expectAccessible(page, 'keyboard shortcuts');
    await screenshot(page, 'keyboard-shortcuts');
    await page.keyboard.press('Escape');
    await help.waitFor({ state: 'detached' });

    await rows(page).nth(0).getByRole('link').focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: new RegExp(first!) }).waitFor();
    await page.keyboard.press('u');
    await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    await page.keyboard.press('g');
    await page.keyboard.press('p');
    await page.getByRole('heading', { level: 1, name: 'People' }).waitFor();
    await context.close();
  });

  it('shows new mail and changes as they happen, without reloading', async () => {
    const { page, context } = await chrome.newPage();
    await signInWithPassword(page, server, agent, { path: 'inbox?view=unassigned' });
    // The list is in (its request answered) and the live stream connected, before counting.
    await settled(page);
    const before = await rows(page).count();
    const arrived = await mailIn(server, mailbox, { subject: 'Arrived while looking' });
    await expect.poll(() => page.locator(`tr[data-ticket="${arrived.number}"]`).count()).toBe(1);
    expect(await rows(page).count()).toBe(before + 1);
    // A colleague takes it: it leaves the unassigned view.
    const changed = await server.call(server.a.adminToken.token, 'PATCH', `/api/v1/tickets/${arrived.id}`, {
      assigneeId: agent.personId,
    });
    expect(changed.status).toBe(200);
    await expect.poll(() => page.locator(`tr[data-ticket="${arrived.number}"]`).count()).toBe(0);
    await context.close();
  });

  it('has a banner across the console only while a mailbox needs to be connected again', async () => {
    const admin = await makeAgent(server, { role: 'admin' });
    const { page, context } = await chrome.newPage();
    await signInWithPassword(page, server, admin);
    await page.locator('[data-live="on"]').waitFor();
    const banner = page.getByRole('alert').filter({ hasText: 'to be connected again' });
    // What the inbound module records when a mailbox's health changes, in one transaction as it
    // does: the event's notification goes out at commit, and the console then reads the new status
    // (in two, the console could read the old status after the event and keep it).
    const health = async (to: string) => {
      await server.db.admin.query(
        `WITH old AS (SELECT status FROM mailbox_health WHERE tenant_id = $1 AND mailbox_id = $2),
              event AS (INSERT INTO mailbox_health_events (tenant_id, id, mailbox_id, from_status, to_status, reason)
                        SELECT $1, gen_random_uuid(), $2, old.status, $3, 'test' FROM old)
         UPDATE mailbox_health SET status = $3 WHERE tenant_id = $1 AND mailbox_id = $2`,
        [server.a.tenant.id, mailbox.id, to],
      );
    };
    // A failed renewal that upkeep retries by itself is no reason for a banner.
    await health('degraded');
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    await page.locator('[data-live="on"]').waitFor();
    expect(await banner.count()).toBe(0);
    await health('needs_reauth');
    await expect.poll(() => banner.textContent()).toContain(mailbox.address);
    await expectAccessible(page, 'inbox with the mailbox banner');
    await screenshot(page, 'banner-needs-reauth');
    await health('healthy');
    await expect.poll(() => banner.count()).toBe(0);
    await context.close();
  });

  it('folds its navigation into a menu at a phone width', async () => {
    const { page, context } = await chrome.newPage({ width: 390, height: 844 });
    await signInWithPassword(page, server, agent);
    const nav = page.getByRole('navigation', { name: 'Main' });
    expect(await nav.isVisible()).toBe(false);
    await expectAccessible(page, 'inbox at 390 px');
    await screenshot(page, 'inbox-390');
    await page.getByRole('button', { name: 'Menu' }).click();
    expect(await nav.isVisible()).toBe(true);
    await screenshot(page, 'inbox-390-menu');
    await nav.getByRole('link', { name: 'People' }).click();
    await page.getByRole('heading', { level: 1, name: 'People' }).waitFor();
    expect(await nav.isVisible()).toBe(false);
    // The page is no wider than the screen.
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await context.close();
  });
});

async function agentName(a: Agent): Promise<string | undefined> {
  const res = await server.call(server.a.adminToken.token, 'GET', `/api/v1/people/${a.personId}`);
  return res.body.displayName;
}
