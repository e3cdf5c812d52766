// The Notification rules screen in Chromium: the tenant's rules (the defaults of a new tenant), the
// channels' state, switching a rule off, a new rule through the form, a sample sent through a rule,
// and deleting one after confirming. axe and screenshots at 1280 and 390 px.
import { beforeAll, describe, expect, it } from 'vitest';
import { type ConsoleBrowser, expectAccessible, pageProblems, screenshot, useBrowser } from './browser.ts';
import { openAtWidth, signedIn as signedInAs, visible } from './fixtures.ts';
import { type ConsoleServer, useConsoleServer } from './server.ts';

let server: ConsoleServer;
let chrome: ConsoleBrowser;

beforeAll(async () => {
  server = await useConsoleServer({ workers: false });
  chrome = await useBrowser();
});

const signedIn = () => signedInAs(server, chrome);
const rules = async (token = server.a.adminToken.token) =>
  (await server.call(token, 'GET', '/api/v1/notification-rules?limit=200')).body.items as {
    id: string;
    event: string;
    enabled: boolean;
    channel: string;
    recipients: unknown[];
    fallback: string[];
    conditions: unknown;
  }[];

describe('the Notification rules screen', { timeout: 120_000 }, () => {
  it('lists the rules and the channels, accessible, at both widths', async () => {
    const { page, context } = await signedIn();
    for (const width of [1280, 390]) {
      await openAtWidth(page, width, server.consoleUrl('notification-rules'));
      await visible(page, 'heading', 'A ticket is assigned');
      await visible(page, 'heading', 'Channels');
      await expect.poll(() => page.locator('.channels').textContent()).toContain('No endpoint');
      expect(await page.locator('.channels').textContent()).toContain('Not connected');
      await expectAccessible(page, 'notification rules');
      await screenshot(page, `notification-rules-${width}`);
      expect(pageProblems(page)).toEqual([]);
    }
    await context.close();
  });

  it('switches a rule off, creates one, sends a sample through it and deletes one', async () => {
    const token = server.a.adminToken.token;
    const assigned = (await rules()).find((r) => r.event === 'ticket.assigned')!;
    const { page, context } = await signedIn();
    await page.goto(server.consoleUrl('notification-rules'));
    const toggle = page.getByRole('switch', { name: 'A ticket is assigned: on' });
    await expect.poll(() => toggle.isChecked()).toBe(true);
    await toggle.click({ force: true });
    await expect.poll(async () => (await rules()).find((r) => r.id === assigned.id)?.enabled).toBe(false);
    await expect.poll(() => toggle.isChecked()).toBe(false);

    await page.getByRole('button', { name: 'New rule' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('When').selectOption({ label: 'An SLA escalation fires' });
    await dialog.getByLabel('Send on').selectOption('email');
    await dialog.getByRole('checkbox', { name: 'Every active admin' }).check();
    await dialog.getByRole('checkbox', { name: 'Microsoft Teams' }).check();
    await dialog.getByRole('checkbox', { name: 'Urgent' }).check();
    await expectAccessible(page, 'notification rule form');
    await screenshot(page, 'notification-rule-form-1280');
    await dialog.getByRole('button', { name: 'Create rule' }).click();
    await visible(page, 'heading', 'An SLA escalation fires');
    const created = (await rules()).find((r) => r.event === 'sla.escalated')!;
    expect(created).toMatchObject({
      channel: 'email',
      recipients: [{ type: 'role', role: 'admin' }],
      fallback: ['teams'],
      conditions: { priority: ['urgent'] },
      enabled: true,
    });

    await page.getByRole('button', { name: 'Send a test of An SLA escalation fires' }).click();
    await expect
      .poll(() => page.getByText('A sample is on its way to the people this rule reaches.').isVisible())
      .toBe(true);
    const audit = await server.call(token, 'GET', `/api/v1/audit-events?targetId=${created.id}`);
    expect(
      audit.body.items.map((e: { action: string; outcome: string }) => [e.action, e.outcome]),
    ).toContainEqual(['notification_rules.test', 'success']);

    await page.getByRole('button', { name: 'Delete An SLA escalation fires' }).click();
    await expectAccessible(page, 'delete confirmation');
    await page.getByRole('alertdialog').getByRole('button', { name: 'Delete' }).click();
    await expect.poll(async () => (await rules()).some((r) => r.id === created.id)).toBe(false);
    await expect.poll(() => page.getByRole('heading', { name: 'An SLA escalation fires' }).count()).toBe(0);
    // Tenant b's rules were not touched.
    expect((await rules(server.b.adminToken.token)).every((r) => r.enabled)).toBe(true);
    expect(pageProblems(page)).toEqual([]);
    await context.close();
  });
});
