// The console's browser for tests: Debian's Chromium driven by playwright-core (never a browser
// download). When /usr/bin/chromium is missing, it is installed with apt when the tests run as root,
// otherwise the tests stop with what to run. Also: the console's build (made when missing or older than
// its sources), axe-core in the page (serious and critical findings fail), and screenshots of each
// screen in .relaydesk-test/screenshots/ for a reviewer.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import axe from 'axe-core';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { ensureDebianPackage } from '../debian-packages.ts';
import { atFileEnd } from '../file-end.ts';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const ROOT = path.resolve(import.meta.dirname, '../..');
export const SCREENSHOTS = path.join(ROOT, '.relaydesk-test', 'screenshots');

/**
 * Installs Debian's chromium package when the browser is missing (root only; otherwise it says what
 * to install), once per machine: console test files start side by side, and one installs under the
 * apt lock while the others wait.
 */
export function ensureChromium(): void {
  ensureDebianPackage('chromium', CHROMIUM, { recommends: false });
}

const newest = (dir: string): number =>
  readdirSync(dir, { withFileTypes: true }).reduce((latest, entry) => {
    const full = path.join(dir, entry.name);
    return Math.max(latest, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }, 0);

/**
 * Builds the console (Vite only: the types are the lint's business) when console/dist is missing or
 * older than a file of console/src or console/index.html. Several test files may ask at once: the
 * first takes a lock directory and the others wait for its build.
 */
export function ensureConsoleBuilt(): void {
  const page = path.join(ROOT, 'console', 'dist', 'index.html');
  const sourcesChanged = () =>
    !existsSync(page) ||
    statSync(page).mtimeMs <
      Math.max(
        newest(path.join(ROOT, 'console', 'src')),
        statSync(path.join(ROOT, 'console', 'index.html')).mtimeMs,
      );
  if (!sourcesChanged()) return;
  const lock = path.join(ROOT, '.relaydesk-test', 'console-build.lock');
  mkdirSync(path.dirname(lock), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // Another file builds; a lock older than two minutes is a leftover of a killed run.
      if (Date.now() - statSync(lock, { throwIfNoEntry: false })!.mtimeMs > 120_000)
        rmSync(lock, { recursive: true, force: true });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    }
  }
  try {
    if (sourcesChanged())
      execFileSync(
        path.join(ROOT, 'node_modules', '.bin', 'vite'),
        ['build', '--config', 'console/vite.config.ts', '--logLevel', 'warn'],
        {
          cwd: ROOT,
          stdio: 'inherit',
        },
      );
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export interface ConsoleBrowser {
  browser: Browser;
  /** A fresh context (its own cookies) with a page at this width: 1280 (desktop) or 390 (phone). */
  newPage(options?: { width?: number; height?: number }): Promise<{ context: BrowserContext; page: Page }>;
}

/** Starts Chromium for the test file (closed after it); pages report script errors and CSP violations. */
export async function useBrowser(): Promise<ConsoleBrowser> {
  ensureChromium();
  ensureConsoleBuilt();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  atFileEnd(async () => {
    await browser.close();
  });
  return {
    browser,
    async newPage({ width = 1280, height = 800 } = {}) {
      const context = await browser.newContext({
        viewport: { width, height },
        locale: 'en-GB',
        timezoneId: 'UTC',
      });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
      page.on('console', (msg) => {
        // A refused request shows as a console error too; CSP violations and script errors are what we catch.
        if (msg.type() === 'error' && /Content Security Policy|Uncaught/i.test(msg.text()))
          problems.push(msg.text());
      });
      (page as Page & { problems?: string[] }).problems = problems;
      // The page's API requests still unanswered (the live stream, which never ends, left out).
      const inFlight = new Set<unknown>();
      page.on('request', (r) => {
        if (r.url().includes('/api/v1/') && !r.url().includes('/api/v1/stream')) inFlight.add(r);
      });
      page.on('requestfinished', (r) => inFlight.delete(r));
      page.on('requestfailed', (r) => inFlight.delete(r));
      (page as Page & { inFlight?: Set<unknown> }).inFlight = inFlight;
      return { context, page };
    },
  };
}

/**
 * Waits until the page's live stream is connected and none of its API requests is unanswered: what
 * the screen asked for is in, and a change made now (the server's clock moved) meets the next
 * request, not one already under way.
 */
export async function settled(page: Page): Promise<void> {
  await page.locator('[data-live="on"]').waitFor();
  await expect.poll(() => (page as Page & { inFlight?: Set<unknown> }).inFlight?.size ?? 0).toBe(0);
}

/** Script errors and Content-Security-Policy violations the page reported so far. */
export const pageProblems = (page: Page): string[] => (page as Page & { problems?: string[] }).problems ?? [];

/** What the accessibility check runs: WCAG 2.0 and 2.1 A/AA, and axe's best practices. */
const AXE_OPTIONS = {
  runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  // Only the violations are read: axe need not describe every node that passed.
  resultTypes: ['violations'],
  // The only frames are the ones that show mail HTML, left out below.
  iframes: false,
} satisfies axe.RunOptions;

/**
 * Runs axe-core on the page as it is now and fails on any serious or critical finding, listing each
 * with the elements it concerns. The frames that show mail HTML are left out: they run no script
 * (axe cannot enter them), and their content is the sender's. axe-core's own API (`axe.source`,
 * `axe.run`), put into the page once per document: the console is one document whose screens change
 * without loading another, and compiling axe's half megabyte of script again for every check cost
 * more than the check itself.
 */
export async function expectAccessible(page: Page, screen: string): Promise<void> {
  if (!(await page.evaluate(() => 'axe' in globalThis))) await page.evaluate(axe.source);
  const results = await page.evaluate(
    (options) =>
      (globalThis as unknown as { axe: typeof axe }).axe.run({ exclude: ['iframe.mail-frame'] }, options),
    AXE_OPTIONS,
  );
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const report = bad.map(
    (v) =>
      `${v.impact} ${v.id}: ${v.help}\n${v.nodes.map((n) => `    ${n.target.join(' ')}: ${n.failureSummary ?? ''}`).join('\n')}`,
  );
  expect(report, `axe findings on the ${screen} screen`).toEqual([]);
}

/** Saves a full-page screenshot as .relaydesk-test/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  // From the top: a full-page capture of a scrolled page draws the sticky top bar mid-page.
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
