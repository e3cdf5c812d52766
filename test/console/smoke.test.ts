// The console loads in Chromium under its Content-Security-Policy: the sign-in page, accessible, at
// desktop and phone widths.
import { beforeAll, describe, expect, it } from 'vitest';
import { type ConsoleBrowser, expectAccessible, pageProblems, screenshot, useBrowser } from './browser.ts';
import { type ConsoleServer, useConsoleServer } from './server.ts';

let server: ConsoleServer;
let chrome: ConsoleBrowser;

beforeAll(async () => {
  server = await useConsoleServer({ workers: false });
  chrome = await useBrowser();
});

describe('the console in a browser', () => {
  it('shows the sign-in page without script errors or policy violations', async () => {
    for (const width of [1280, 390]) {
      const { page, context } = await chrome.newPage({ width });
      await page.goto(server.consoleUrl('login'));
      await expect.poll(() => page.getByRole('heading', { name: 'Sign in' }).isVisible()).toBe(true);
      await expectAccessible(page, 'sign-in');
      await screenshot(page, `login-${width}`);
      expect(pageProblems(page)).toEqual([]);
      await context.close();
    }
  });
});
