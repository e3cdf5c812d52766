// The Audit log screen in Chromium: the tenant's writes with actor, target, outcome and payload
// hash, filtered by outcome, action and actor, another tenant's never shown. axe and screenshots at
// 1280 and 390 px.
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, makeTicket } from '../app.ts';
import { type ConsoleBrowser, expectAccessible, pageProblems, screenshot, useBrowser } from './browser.ts';
import { openAtWidth, signedIn as signedInAs } from './fixtures.ts';
import { type ConsoleServer, useConsoleServer } from './server.ts';

let server: ConsoleServer;
let chrome: ConsoleBrowser;
let ticketId: string;

beforeAll(async () => {
  server = await useConsoleServer({ workers: false });
  chrome = await useBrowser();
  const token = server.a.adminToken.token;
  ticketId = (await makeTicket(server, token, { subject: 'Audited ticket' })).id;
  const person = await makePerson(server, token, { kind: 'contact', displayName: 'Audited Person' });
  // A refused write is recorded too.
  const bad = await server.call(token, 'PATCH', `/api/v1/people/${person.id}`, { email: 'not an address' });
  expect(bad.status).toBe(400);
  // Another tenant's write never shows here.
  await makeTicket(server, server.b.adminToken.token, { subject: 'Tenant B ticket' });
});

const signedIn = () => signedInAs(server, chrome);
const rows = (page: Page) => page.locator('table[aria-label="Audit events"] tbody tr');

describe('the Audit log screen', { timeout: 120_000 }, () => {
  it('lists the writes with actor, target, outcome and hash, accessible at both widths', async () => {
    const b = await server.call(server.b.adminToken.token, 'GET', '/api/v1/audit-events');
    const bIds: string[] = b.body.items.map((e: { id: string }) => e.id);
    const { page, context } = await signedIn();
    for (const width of [1280, 390]) {
      await openAtWidth(page, width, server.consoleUrl('audit'));
      await expect.poll(() => rows(page).count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
      const text = (await page.locator('main').textContent()) ?? '';
      expect(text).toContain('tickets.create');
      expect(text).toContain('validation_failed');
      for (const id of bIds) expect(await page.locator(`[data-event="${id}"]`).count()).toBe(0);
      // The ticket's event links to the ticket; the admin token's person is the actor.
      const created = rows(page).filter({ hasText: 'tickets.create' }).first();
      expect(await created.getByRole('link').last().getAttribute('href')).toBe(
        `/console/tickets/${ticketId}`,
      );
      await expect.poll(() => created.getByRole('link').first().textContent()).not.toMatch(/^[0-9a-f]{8}$/);
      await created.locator('summary').click();
      const events = await server.call(
        server.a.adminToken.token,
        'GET',
        '/api/v1/audit-events?action=tickets.create',
      );
      expect(await created.textContent()).toContain(events.body.items[0].payloadHash);
      await expectAccessible(page, 'audit log');
      await screenshot(page, `audit-${width}`);
      expect(pageProblems(page)).toEqual([]);
    }
    await context.close();
  });

  it('filters by outcome and action, kept in the address', async () => {
    const { page, context } = await signedIn();
    await page.goto(server.consoleUrl('audit'));
    await page.getByLabel('Outcome').selectOption('failed');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => rows(page).count()).toBe(1);
    expect(await rows(page).first().textContent()).toContain('people.update');
    expect(page.url()).toContain('outcome=failed');

    await page.getByRole('button', { name: 'Clear' }).click();
    // The cleared filters are in the address and the list before anything is typed again (the form
    // follows the address, so text typed before it did would be cleared with it).
    await expect.poll(() => page.url()).not.toContain('outcome=');
    await expect.poll(() => rows(page).count()).toBeGreaterThan(1);
    await page.getByLabel('Action').fill('tickets.create');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => rows(page).count()).toBe(1);
    await page.reload();
    await expect.poll(() => rows(page).count()).toBe(1);
    expect(await page.getByLabel('Action').inputValue()).toBe('tickets.create');
    await page.goto(server.consoleUrl('audit?action=nothing.like.this'));
    await expect.poll(() => page.getByText('No event matches.').isVisible()).toBe(true);
    await context.close();
  });
});
