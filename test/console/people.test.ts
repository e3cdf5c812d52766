// The People screen in Chromium: the directory and a person's page, merging two people (the
// confirmation says what moves; the tickets of one then show under the other), inviting an agent,
// and the triage of unmapped identities (link and dismiss). axe and screenshots at 1280 and 390 px.
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { recordUnmapped } from '../../src/modules/people/unmapped.ts';
import { makePerson, makeTicket } from '../app.ts';
import { type ConsoleBrowser, expectAccessible, pageProblems, screenshot, useBrowser } from './browser.ts';
import { openAtWidth, signedIn as signedInAs, visible } from './fixtures.ts';
import { type ConsoleServer, useConsoleServer } from './server.ts';

let server: ConsoleServer;
let chrome: ConsoleBrowser;

beforeAll(async () => {
  server = await useConsoleServer({ workers: false });
  chrome = await useBrowser();
});

/** A page signed in as a new agent of tenant a with this role. */
const signedIn = (role: 'admin' | 'agent' | 'viewer', width = 1280) =>
  signedInAs(server, chrome, { role, width });

/** A status message (role status or alert) with this text shows. */
const shows = (page: Page, text: string | RegExp) =>
  expect
    .poll(() => page.locator('[role=status], [role=alert]').filter({ hasText: text }).first().isVisible(), {
      timeout: 10_000,
    })
    .toBe(true);

describe('the People screen', { timeout: 120_000 }, () => {
  it('merges two people: the confirmation says what moves, and the tickets of one show under the other', async () => {
    const token = server.a.adminToken.token;
    const keep = await makePerson(server, token, {
      kind: 'contact',
      displayName: 'Dana Keep',
      email: 'dana@example.com',
    });
    const dup = await makePerson(server, token, {
      kind: 'contact',
      displayName: 'Dana Duplicate',
      email: 'dana.private@example.net',
    });
    await server.call(token, 'POST', `/api/v1/people/${dup.id}/identities`, {
      kind: 'slack',
      externalId: 'U0DANA',
    });
    const t1 = await makeTicket(server, token, {
      subject: 'Printer on fire',
      requester: { personId: dup.id },
    });
    await makeTicket(server, token, { subject: 'Invoice question', requester: { personId: dup.id } });
    await makeTicket(server, token, { subject: 'Kept ticket', requester: { personId: keep.id } });

    const { page, context } = await signedIn('admin');
    await page.goto(server.consoleUrl('people'));
    await visible(page, 'heading', 'People');
    await page.getByRole('searchbox', { name: 'Search people' }).fill('dana');
    await page.getByRole('button', { name: 'Search' }).click();
    await visible(page, 'link', 'Dana Duplicate');
    await expectAccessible(page, 'people directory');
    await screenshot(page, 'people-1280');

    await page.getByRole('link', { name: 'Dana Keep' }).click();
    await visible(page, 'heading', 'Dana Keep');
    await visible(page, 'link', /Kept ticket/);
    await expect.poll(() => page.getByRole('link', { name: /Printer on fire/ }).count()).toBe(0);
    await expectAccessible(page, 'person');
    await screenshot(page, 'person-1280');

    await page.getByRole('button', { name: 'Merge another person into this one' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('combobox', { name: 'Person to merge' }).fill('Dana Dup');
    await page.getByRole('option', { name: /Dana Duplicate/ }).click();
    await expect.poll(() => dialog.textContent()).toContain('2 tickets they requested');
    const preview = (await dialog.textContent()) ?? '';
    expect(preview).toContain('Dana Duplicate will be deleted');
    expect(preview).toContain('dana.private@example.net (as aliases)');
    expect(preview).toContain('slack U0DANA');
    await expectAccessible(page, 'merge dialog');
    await screenshot(page, 'people-merge-1280');
    await dialog.getByRole('button', { name: 'Merge and delete the other' }).click();
    await shows(page, 'Dana Duplicate was merged into Dana Keep.');

    // The merged person's tickets are the kept one's now, and so are the address and identity.
    await visible(page, 'link', /Printer on fire/);
    await visible(page, 'link', /Invoice question/);
    await visible(page, 'link', /Kept ticket/);
    expect(await page.locator('code', { hasText: 'dana.private@example.net' }).isVisible()).toBe(true);
    expect(await page.locator('code', { hasText: 'U0DANA' }).isVisible()).toBe(true);
    const ticket = await server.call(token, 'GET', `/api/v1/tickets/${t1.id}`);
    expect(ticket.body.requesterId).toBe(keep.id);
    expect((await server.call(token, 'GET', `/api/v1/people/${dup.id}`)).status).toBe(404);
    expect(pageProblems(page)).toEqual([]);
    await context.close();
  });

  it('creates and invites an agent, suspends and reactivates them, at phone width', async () => {
    const { page, context } = await signedIn('admin', 390);
    await page.goto(server.consoleUrl('people'));
    await visible(page, 'heading', 'People');
    await expectAccessible(page, 'people directory (phone)');
    await screenshot(page, 'people-390');
    await page.getByRole('button', { name: 'New person' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('Iris Invited');
    await dialog.getByLabel('Email address').fill('iris@console.test');
    await dialog.getByRole('button', { name: 'Create and invite' }).click();
    // No mailbox in this tenant: the link is shown to hand over.
    await expect
      .poll(() => dialog.getByLabel('Invitation link').inputValue())
      .toMatch(/\/console\/accept\?token=/);
    await expectAccessible(page, 'invitation result');
    await dialog.getByRole('button', { name: 'Open their page' }).click();
    await visible(page, 'heading', 'Iris Invited');
    const person = await server.call(
      server.a.adminToken.token,
      'GET',
      `/api/v1/people/resolve?email=iris%40console.test`,
    );
    expect(person.body).toMatchObject({ kind: 'agent', status: 'invited', role: 'agent' });

    await page.getByRole('button', { name: 'Suspend' }).click();
    await page.getByRole('alertdialog').getByRole('button', { name: 'Suspend' }).click();
    await visible(page, 'button', 'Reactivate');
    expect(
      (await server.call(server.a.adminToken.token, 'GET', `/api/v1/people/${person.body.id}`)).body.status,
    ).toBe('suspended');
    await expectAccessible(page, 'person (phone)');
    await screenshot(page, 'person-390');
    await page.getByRole('button', { name: 'Reactivate' }).click();
    await visible(page, 'button', 'Suspend');
    expect(pageProblems(page)).toEqual([]);
    await context.close();
  });

  it('links an unmapped identity to a suggested person and dismisses another', async () => {
    const token = server.a.adminToken.token;
    const olga = await makePerson(server, token, { kind: 'agent', displayName: 'Olga Teams' });
    await recordUnmapped(server.db.pool, server.a.tenant.id, {
      kind: 'teams',
      externalId: '29:olga-aad',
      eventType: 'message',
      context: 'Can someone look at ticket 12?',
      displayName: 'Olga Teams',
    });
    await recordUnmapped(server.db.pool, server.a.tenant.id, {
      kind: 'slack',
      externalId: 'UBOT999',
      displayName: 'Some bot',
    });
    // Another tenant's sighting never shows here.
    await recordUnmapped(server.db.pool, server.b.tenant.id, {
      kind: 'slack',
      externalId: 'UOTHERTENANT',
      displayName: 'Other tenant',
    });

    const { page, context } = await signedIn('agent');
    for (const width of [390, 1280]) {
      await openAtWidth(page, width, server.consoleUrl('people?tab=unmapped'));
      await visible(page, 'heading', /Some bot/);
      expect(await page.getByText('UOTHERTENANT').count()).toBe(0);
      await expectAccessible(page, 'unmapped identities');
      await screenshot(page, `people-unmapped-${width}`);
    }

    // Back at 1280: linking one and dismissing another.
    await page.goto(server.consoleUrl('people?tab=unmapped'));
    await page.getByRole('button', { name: 'Link to Olga Teams' }).click();
    await shows(page, /teams 29:olga-aad is linked to Olga Teams/);
    const linked = await server.call(token, 'GET', `/api/v1/people/${olga.id}`);
    expect(linked.body.identities).toContainEqual({ kind: 'teams', externalId: '29:olga-aad' });
    await page.getByRole('button', { name: 'Dismiss slack UBOT999' }).click();
    await shows(page, /slack UBOT999 is dismissed/);
    await shows(page, 'Nothing to triage.');
    expect(pageProblems(page)).toEqual([]);
    await context.close();
  });

  it('hides the changes a viewer may not make', async () => {
    const token = server.a.adminToken.token;
    const someone = await makePerson(server, token, { kind: 'contact', displayName: 'Viewed Person' });
    const { page, context } = await signedIn('viewer');
    await page.goto(server.consoleUrl(`people?person=${someone.id}`));
    await visible(page, 'heading', 'Viewed Person');
    expect(await page.getByRole('button', { name: /Merge/ }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Save profile' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'New person' }).count()).toBe(0);
    await context.close();
  });
});
