// A ticket in Chromium: a reply that reaches the customer through the SMTP simulator and whose
// delivery turns `sent` on screen, an internal note that sends nothing, Cc and an attachment, a
// canned reply typed in with its variables filled, collision (who else is here, and the warning
// before sending over a message that arrived meanwhile), the automatic-mail marker, and an SLA
// breach showing up live in the ticket and the inbox. Checked with axe at 1280 and 390 px.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SmtpSimulator, startSmtpSimulator } from '../../simulators/smtp.ts';
import { type ConsoleBrowser, expectAccessible, pageProblems, screenshot, useBrowser } from './browser.ts';
import { type Agent, mailIn, makeAgent, makeMailbox, postRawMail, signInWithPassword } from './fixtures.ts';
import { type ConsoleServer, useConsoleServer } from './server.ts';

let server: ConsoleServer;
let chrome: ConsoleBrowser;
let smtp: SmtpSimulator;
let mailbox: { id: string; address: string };
let agent: Agent;

const admin = () => server.a.adminToken.token;

beforeAll(async () => {
  server = await useConsoleServer({ slaScheduler: true });
  chrome = await useBrowser();
  smtp = await startSmtpSimulator({ tls: 'none' });
  mailbox = await makeMailbox(server, smtp);
  agent = await makeAgent(server, { role: 'agent' });
});
afterAll(async () => {
  await smtp?.close();
});

async function openTicket(ticket: { id: string; subject: string }, width = 1280) {
  const { page, context } = await chrome.newPage({ width });
  await signInWithPassword(page, server, agent, {
    path: `tickets/${ticket.id}`,
    expect: new RegExp(ticket.subject),
  });
  // The conversation has loaded and the live feed is open before the test acts.
  await page.locator('article.message').first().waitFor();
  await page.locator('[data-live="on"]').waitFor();
  return { page, context };
}

describe('a ticket', { timeout: 120_000 }, () => {
  it('takes a reply that reaches the customer, and shows its delivery turn sent', async () => {
    const ticket = await mailIn(server, mailbox, {
      from: 'Carol Customer <carol@customer.test>',
      subject: 'Printer on fire',
      text: 'Hello, the printer is on fire.',
      html: '<p>Hello, the printer is <b>on fire</b>.</p><blockquote>an older message</blockquote>',
    });
    const { page, context } = await openTicket(ticket);
    await expectAccessible(page, 'ticket');
    await screenshot(page, 'ticket');
    // The customer's HTML is in a frame that runs nothing.
    const frame = page.locator('iframe.mail-frame').first();
    expect(await frame.getAttribute('sandbox')).toBe(
      'allow-same-origin allow-popups allow-popups-to-escape-sandbox',
    );
    expect(await page.frameLocator('iframe.mail-frame').first().locator('b').textContent()).toBe('on fire');

    smtp.clear();
    await page.keyboard.press('r');
    await expect.poll(() => page.evaluate('document.activeElement?.tagName')).toBe('TEXTAREA');
    await page.keyboard.type('We are on our way with a fire extinguisher.');
    await page.getByRole('button', { name: 'Send reply' }).click();
    const [mail] = await smtp.waitFor(1, 20_000);
    expect(mail!.to).toEqual(['carol@customer.test']);
    expect(mail!.raw.toString()).toContain('We are on our way with a fire extinguisher.');
    const reply = page.locator('article.message-outbound').last();
    await expect
      .poll(() => reply.locator('[data-delivery-status]').getAttribute('data-delivery-status'))
      .toBe('sent');
    expect(await reply.locator('.delivery').textContent()).toContain('Email: Sent');
    await screenshot(page, 'ticket-reply-sent');
    expect(pageProblems(page)).toEqual([]);
    await context.close();
  });

  it('keeps an internal note inside, and sends Cc and attachments with a reply', async () => {
    const ticket = await mailIn(server, mailbox, { from: 'dan@customer.test', subject: 'Invoice copy' });
    const { page, context } = await openTicket(ticket);
    smtp.clear();
    await page.keyboard.press('n');
    await page.keyboard.type('Checked with accounting: invoice 42 is the one.');
    await page.keyboard.press('Control+Enter');
    const note = page.locator('article.message-note');
    await note.waitFor();
    expect(await note.textContent()).toContain('Internal note');
    expect(await note.locator('[data-delivery-status]').count()).toBe(0);
    await expectAccessible(page, 'ticket with a note');

    await page.getByRole('button', { name: 'Reply', exact: true }).click();
    await page.getByLabel('Cc', { exact: true }).fill('boss@customer.test');
    await page.getByLabel('Reply to the requester').fill('Here is the copy of your invoice.');
    await page.getByLabel('Attachments').setInputFiles({
      name: 'invoice-42.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('INVOICE 42\n'),
    });
    await page.getByRole('button', { name: 'Send reply' }).click();
    const [mail] = await smtp.waitFor(1, 20_000);
    // The note went nowhere: the only mail is the reply.
    expect(smtp.messages()).toHaveLength(1);
    expect(mail!.to.sort()).toEqual(['boss@customer.test', 'dan@customer.test']);
    expect(mail!.headers['cc']?.join()).toContain('boss@customer.test');
    expect(mail!.raw.toString()).toContain('invoice-42.txt');
    const reply = page.locator('article.message-outbound').last();
    await expect.poll(() => reply.getByRole('link', { name: 'invoice-42.txt' }).count()).toBe(1);
    await context.close();
  });

  it('inserts a canned reply typed as /shortcut, with its variables filled', async () => {
    const created = await server.call(admin(), 'POST', '/api/v1/canned-replies', {
      shortcut: 'thanks',
      title: 'Thank the customer',
      body: 'Thank you {{ requester.name }}, we are looking into {{ ticket.number }}.',
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const ticket = await mailIn(server, mailbox, {
      from: 'Erin Example <erin@customer.test>',
      subject: 'Canned',
    });
    const { page, context } = await openTicket(ticket);
    await page.getByLabel('Reply to the requester').click();
    await page.keyboard.type('Hello! /tha');
    const options = page.getByRole('listbox', { name: 'Canned replies' });
    await options.waitFor();
    await expectAccessible(page, 'canned reply suggestions');
    await screenshot(page, 'ticket-canned-reply');
    await page.keyboard.press('Enter');
    await expect
      .poll(() => page.getByLabel('Reply to the requester').inputValue())
      .toBe(`Hello! Thank you Erin Example, we are looking into ${ticket.number}.`);
    // "::" works as well, anywhere after a space.
    await page.keyboard.type(' ::thanks');
    await options.waitFor();
    await page.keyboard.press('Tab');
    await expect
      .poll(() => page.getByLabel('Reply to the requester').inputValue())
      .toContain('. Thank you Erin Example');
    await context.close();
  });

  it('shows who else is here, and warns before sending over a message that arrived meanwhile', async () => {
    const ticket = await mailIn(server, mailbox, { from: 'fay@customer.test', subject: 'Collision' });
    const colleague = await makeAgent(server, { role: 'agent' });
    const colleagueName = (await server.call(admin(), 'GET', `/api/v1/people/${colleague.personId}`)).body
      .displayName;
    const { page, context } = await openTicket(ticket);

    // The colleague opens the ticket and starts replying: it shows at once.
    const put = await colleague.call('PUT', `/api/v1/tickets/${ticket.id}/presence`, { state: 'replying' });
    expect(put.status, JSON.stringify(put.body)).toBeLessThan(300);
    await expect
      .poll(() => page.locator('.presence').textContent())
      .toContain(`${colleagueName} is replying`);
    await expectAccessible(page, 'ticket with a colleague');
    await screenshot(page, 'ticket-presence');

    await page.getByLabel('Reply to the requester').fill('My answer, written before I saw theirs.');
    // This agent's own presence is 'replying' now, as the colleague sees it.
    await expect
      .poll(async () => (await colleague.call('GET', `/api/v1/tickets/${ticket.id}/presence`)).body.people)
      .toContainEqual(expect.objectContaining({ id: agent.personId, state: 'replying' }));
    // The colleague's reply lands first.
    const theirs = await colleague.call('POST', `/api/v1/tickets/${ticket.id}/messages`, {
      text: 'Their answer, sent first.',
      visibility: 'public',
    });
    expect(theirs.status).toBe(201);
    await expect.poll(() => page.locator('article.message').count()).toBe(2);
    await expect
      .poll(() => page.getByText('A new message arrived on this ticket while you were writing').isVisible())
      .toBe(true);

    await page.getByRole('button', { name: 'Send reply' }).click();
    const warning = page.getByRole('alert').filter({ hasText: 'The ticket changed while you were writing' });
    await warning.waitFor();
    await expectAccessible(page, 'ticket changed warning');
    await screenshot(page, 'ticket-changed');
    expect(await page.locator('article.message').count()).toBe(2);
    await warning.getByRole('button', { name: 'Send anyway' }).click();
    await expect.poll(() => page.locator('article.message').count()).toBe(3);
    expect(await page.locator('article.message').last().textContent()).toContain(
      'My answer, written before I saw theirs.',
    );

    // Leaving the ticket takes the presence back. The page numbered its requests: what stays is its
    // leave's marker, which the 'viewing' of the emptied reply box, if it arrives late, cannot undo.
    await context.close();
    await expect
      .poll(async () => (await colleague.call('GET', `/api/v1/tickets/${ticket.id}/presence`)).body.people)
      .toEqual([]);
    const { rows } = await server.db.admin.query(
      'SELECT state, page IS NOT NULL AND seq IS NOT NULL AS ordered FROM ticket_presence WHERE ticket_id = $1 AND person_id = $2',
      [ticket.id, agent.personId],
    );
    expect(rows).toEqual([{ state: 'left', ordered: true }]);
  });

  it('marks automatic mail', async () => {
    const ticket = await mailIn(server, mailbox, {
      from: 'ida@customer.test',
      subject: 'Broken screen',
      headers: { 'Message-ID': '<broken-screen@customer.test>' },
    });
    // Her mail server answers our acknowledgement with an out-of-office note, in the same thread.
    await postRawMail(
      server,
      mailbox,
      [
        'From: ida@customer.test',
        `To: ${mailbox.address}`,
        'Subject: Out of office: Broken screen',
        'Message-ID: <ooo-1@customer.test>',
        'In-Reply-To: <broken-screen@customer.test>',
        'Auto-Submitted: auto-replied',
        `Date: ${new Date().toUTCString()}`,
        'Content-Type: text/plain; charset=utf-8',
        '',
        'I am out of the office until Monday.',
        '',
      ].join('\r\n'),
    );
    await expect
      .poll(
        async () =>
          (await server.call(admin(), 'GET', `/api/v1/tickets/${ticket.id}/messages`)).body.items.length,
      )
      .toBe(2);
    const { page, context } = await openTicket(ticket);
    const auto = page.locator('article.message').filter({ hasText: 'out of the office' });
    expect(await auto.locator('.marker-auto').textContent()).toBe('Automatic mail');
    expect(await page.locator('article.message').first().locator('.marker-auto').count()).toBe(0);
    await context.close();
  });

  it('shows an SLA breach as it happens, in the ticket and in the inbox', async () => {
    const policy = await server.call(admin(), 'POST', '/api/v1/sla-policies', {
      name: 'Fast',
      position: 0,
      calendarId: null,
      targets: { urgent: { firstResponse: 600 } },
    });
    expect(policy.status, JSON.stringify(policy.body)).toBe(201);
    const ticket = await mailIn(server, mailbox, { from: 'gus@customer.test', subject: 'Urgent outage' });
    expect(
      (await server.call(admin(), 'PATCH', `/api/v1/tickets/${ticket.id}`, { priority: 'urgent' })).status,
    ).toBe(200);

    const { page, context } = await openTicket(ticket);
    const clock = page.locator('li.clock[data-metric="first_response"]');
    await expect.poll(() => clock.getAttribute('data-status')).toBe('active');
    expect(await clock.locator('.clock-due').textContent()).toMatch(/Due in (9|10) min/);
    await expectAccessible(page, 'ticket with SLA');
    await screenshot(page, 'ticket-sla');
    const inbox = await chrome.newPage();
    await signInWithPassword(inbox.page, server, agent, { path: 'inbox?view=breached' });
    await inbox.page.locator('[data-live="on"]').waitFor();
    expect(await inbox.page.locator(`tr[data-ticket="${ticket.number}"]`).count()).toBe(0);

    // Eleven minutes later, by the server's clock: the scheduler records the breach.
    server.clock.advance(11 * 60_000);
    await expect.poll(() => clock.getAttribute('data-status')).toBe('breached');
    expect(await clock.locator('.badge').textContent()).toBe('Breached');
    await screenshot(page, 'ticket-sla-breached');
    await expect.poll(() => inbox.page.locator(`tr[data-ticket="${ticket.number}"]`).count()).toBe(1);
    await screenshot(inbox.page, 'inbox-breached');
    await inbox.context.close();
    await context.close();
  });

  it('fits a phone screen', async () => {
    const ticket = await mailIn(server, mailbox, { from: 'hal@customer.test', subject: 'On the phone' });
    const { page, context } = await openTicket(ticket, 390);
    await expectAccessible(page, 'ticket at 390 px');
    await screenshot(page, 'ticket-390');
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await context.close();
  });
});
