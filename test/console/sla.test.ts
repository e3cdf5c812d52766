// The SLA screen in Chromium: policies (targets, thresholds, escalations) shown and created through
// the form; calendars shown as a week of opening hours (and as a table for screen readers) with
// their holidays, and edited. axe and screenshots at 1280 and 390 px.
import { beforeAll, describe, expect, it } from 'vitest';
import { type ConsoleBrowser, expectAccessible, pageProblems, screenshot, useBrowser } from './browser.ts';
import { openAtWidth, signedIn as signedInAs, visible } from './fixtures.ts';
import { type ConsoleServer, useConsoleServer } from './server.ts';

let server: ConsoleServer;
let chrome: ConsoleBrowser;
let calendarId: string;

beforeAll(async () => {
  server = await useConsoleServer({ workers: false });
  chrome = await useBrowser();
  const token = server.a.adminToken.token;
  const calendar = await server.call(token, 'POST', '/api/v1/calendars', {
    name: 'Berlin office',
    timeZone: 'Europe/Berlin',
    weekly: {
      mon: [
        ['09:00', '12:00'],
        ['13:00', '17:00'],
      ],
      tue: [['09:00', '17:00']],
      wed: [['09:00', '17:00']],
      thu: [['09:00', '17:00']],
      fri: [['22:00', '06:00']],
    },
    holidays: ['2026-10-03'],
    recurringHolidays: ['12-25'],
  });
  expect(calendar.status).toBe(201);
  calendarId = calendar.body.id;
  const policy = await server.call(token, 'POST', '/api/v1/sla-policies', {
    name: 'Standard',
    position: 10,
    calendarId,
    targets: {
      urgent: { firstResponse: 1800, resolution: 4 * 3600 },
      normal: { firstResponse: 4 * 3600, resolution: 2 * 86_400 + 3600 },
    },
    escalations: [{ percent: 120, actions: [{ type: 'notify', role: 'admin' }] }],
  });
  expect(policy.status).toBe(201);
  // Another tenant's policy never shows.
  await server.call(server.b.adminToken.token, 'POST', '/api/v1/sla-policies', {
    name: 'Tenant B policy',
    position: 1,
    calendarId: null,
    targets: { low: { resolution: 3600 } },
  });
});

const signedIn = () => signedInAs(server, chrome);

describe('the SLA screen', { timeout: 120_000 }, () => {
  it('shows policies and calendars, accessible, at both widths', async () => {
    const { page, context } = await signedIn();
    for (const width of [1280, 390]) {
      await openAtWidth(page, width, server.consoleUrl('sla'));
      await visible(page, 'heading', /Standard/);
      // The policy names its calendar once the calendars have loaded too.
      await expect
        .poll(async () => (await page.locator('main').textContent()) ?? '')
        .toContain('Berlin office');
      const text = (await page.locator('main').textContent()) ?? '';
      expect(text).toContain('2d 1h');
      expect(text).toContain('At 120 %: notify every admin');
      expect(text).not.toContain('Tenant B policy');
      await expectAccessible(page, 'SLA policies');
      await screenshot(page, `sla-policies-${width}`);

      await page.getByRole('tab', { name: 'Calendars' }).click();
      await visible(page, 'heading', 'Berlin office');
      const table = page.getByRole('table', { name: 'Opening hours of Berlin office' });
      expect(await table.getByRole('row', { name: /Monday/ }).textContent()).toContain(
        '09:00–12:00, 13:00–17:00',
      );
      expect(await table.getByRole('row', { name: /Friday/ }).textContent()).toContain(
        '22:00–06:00 (into the next day)',
      );
      expect(await table.getByRole('row', { name: /Sunday/ }).textContent()).toContain('Closed');
      // Drawn: Monday two windows; Friday's overnight window spills into Saturday.
      const columns = page.locator('.week-column');
      expect(await columns.nth(0).locator('.week-open').count()).toBe(2);
      expect(await columns.nth(5).locator('.week-open').count()).toBe(1);
      const main = (await page.locator('main').textContent()) ?? '';
      expect(main).toContain('Every 25 December');
      expect(main).toContain('3 October 2026');
      await expectAccessible(page, 'SLA calendars');
      await screenshot(page, `sla-calendars-${width}`);
      expect(pageProblems(page)).toEqual([]);
    }
    await context.close();
  });

  it('creates a policy with targets and an escalation through the form', async () => {
    const agent = await server.call(server.a.adminToken.token, 'POST', '/api/v1/people', {
      displayName: 'Escalation Lead',
      kind: 'agent',
      email: 'lead@console.test',
    });
    const { page, context } = await signedIn();
    await page.goto(server.consoleUrl('sla'));
    await page.getByRole('button', { name: 'New policy' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('VIP');
    await dialog.getByLabel('Position').fill('5');
    await dialog.getByLabel('Business hours').selectOption({ label: 'Berlin office' });
    await dialog.getByRole('checkbox', { name: 'Urgent' }).check();
    await dialog.getByLabel('Urgent first response').fill('bogus');
    await dialog.getByRole('button', { name: 'Create policy' }).click();
    await expect.poll(() => dialog.getByRole('alert').textContent()).toContain('is not a duration');
    await dialog.getByLabel('Urgent first response').fill('15m');
    await dialog.getByLabel('Urgent resolution').fill('1d 2h');
    await dialog.getByLabel('Warnings at (percent)').fill('80, 100');
    await dialog.getByRole('button', { name: 'Add an escalation' }).click();
    await dialog.getByRole('spinbutton', { name: /At/ }).fill('150');
    await dialog.getByLabel('Escalation 1, action 1', { exact: true }).selectOption('reassign');
    await dialog
      .getByLabel('Escalation 1, action 1: whom or what')
      .selectOption({ label: 'Escalation Lead' });
    await expectAccessible(page, 'SLA policy form');
    await screenshot(page, 'sla-policy-form-1280');
    await dialog.getByRole('button', { name: 'Create policy' }).click();
    await visible(page, 'heading', /VIP/);

    const list = await server.call(server.a.adminToken.token, 'GET', '/api/v1/sla-policies');
    const vip = list.body.items.find((p: { name: string }) => p.name === 'VIP');
    expect(vip).toMatchObject({
      position: 5,
      calendarId,
      conditions: { priorities: ['urgent'] },
      targets: { urgent: { firstResponse: 900, resolution: 26 * 3600 } },
      thresholds: [80, 100],
      escalations: [{ percent: 150, actions: [{ type: 'reassign', personId: agent.body.id }] }],
    });
    expect(pageProblems(page)).toEqual([]);
    await context.close();
  });

  it('edits a calendar: a new window and a holiday show in the week and the list', async () => {
    const { page, context } = await signedIn();
    await page.goto(server.consoleUrl('sla?tab=calendars'));
    await page.getByRole('button', { name: 'Edit Berlin office' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Sunday').fill('10:00-14:00');
    await dialog.getByRole('textbox', { name: 'Holidays' }).fill('2026-10-03\n2026-12-31');
    await expectAccessible(page, 'calendar form');
    await dialog.getByRole('button', { name: 'Save calendar' }).click();
    const table = page.getByRole('table', { name: 'Opening hours of Berlin office' });
    await expect
      .poll(() => table.getByRole('row', { name: /Sunday/ }).textContent())
      .toContain('10:00–14:00');
    expect(await page.locator('main').textContent()).toContain('31 December 2026');
    const stored = await server.call(server.a.adminToken.token, 'GET', `/api/v1/calendars/${calendarId}`);
    expect(stored.body.calendar.weekly.sun).toEqual([['10:00', '14:00']]);
    expect(stored.body.calendar.holidays).toEqual(['2026-10-03', '2026-12-31']);
    await context.close();
  });
});
