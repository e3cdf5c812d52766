// The console's files as a browser gets them: the page for every console path, hashed assets cached
// for good and the page never, security headers on all of it, `/` sent to the console, a clear 503
// when nothing was built, and no file outside the build.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { brotliCompressSync, brotliDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../platform/clock.ts';
import { createPool } from '../../platform/db/pool.ts';
import { unauthorized } from '../../platform/errors.ts';
import { type App, buildServer } from '../../platform/http/server.ts';
import { createLogger } from '../../platform/logging.ts';
import { CONSOLE_CSP, consoleRoutesFrom } from './routes.ts';

const PAGE = '<!doctype html><html lang="en"><title>console</title><div id="root"></div></html>';
let dir: string;
let built: App;
let notBuilt: App;
const pool = createPool({ connectionString: 'postgres://nobody@127.0.0.1:1/none', max: 1 });

async function server(distDir: string): Promise<App> {
  const app = await buildServer(
    {
      config: { bodyLimit: 1024 },
      pool,
      logger: createLogger('silent'),
      clock: systemClock,
      authenticate: async () => {
        throw unauthorized();
      },
    },
    [],
    [consoleRoutesFrom(distDir)],
  );
  await app.ready();
  return app;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-console-'));
  await mkdir(path.join(dir, 'dist', 'assets'), { recursive: true });
  await writeFile(path.join(dir, 'dist', 'index.html'), PAGE);
  await writeFile(path.join(dir, 'dist', 'assets', 'index-abc123.js'), 'console.log(1)');
  await writeFile(
    path.join(dir, 'dist', 'assets', 'index-abc123.js.br'),
    brotliCompressSync('console.log(1)'),
  );
  await writeFile(path.join(dir, 'dist', 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  await writeFile(path.join(dir, 'secret.txt'), 'not part of the build');
  built = await server(path.join(dir, 'dist'));
  notBuilt = await server(path.join(dir, 'missing'));
});

afterAll(async () => {
  await built?.close();
  await notBuilt?.close();
  await pool.end();
  await rm(dir, { recursive: true, force: true });
});

const expectSecurityHeaders = (headers: Record<string, unknown>) => {
  expect(headers['content-security-policy']).toBe(CONSOLE_CSP);
  expect(headers['x-frame-options']).toBe('DENY');
  expect(headers['referrer-policy']).toBe('same-origin');
  expect(headers['x-content-type-options']).toBe('nosniff');
};

describe('the console', () => {
  it('is where / sends a browser', async () => {
    const res = await built.inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(302);
    expect(res.headers.location).toBe('/console/');
    const bare = await built.inject({ method: 'GET', url: '/console' });
    expect(bare.headers.location).toBe('/console/');
  });

  it('answers the page, never cached, at its root and at every path the console routes itself', async () => {
    for (const url of [
      '/console/',
      '/console/index.html',
      '/console/tickets/123?x=1',
      '/console/accept?token=abc',
    ]) {
      const res = await built.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.body).toBe(PAGE);
      expectSecurityHeaders(res.headers);
    }
  });

  it('answers hashed assets cached for a year, other files for an hour', async () => {
    const js = await built.inject({ method: 'GET', url: '/console/assets/index-abc123.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toMatch(/javascript/);
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(js.body).toBe('console.log(1)');
    expectSecurityHeaders(js.headers);
    const icon = await built.inject({ method: 'GET', url: '/console/favicon.svg' });
    expect(icon.headers['cache-control']).toBe('public, max-age=3600');
  });

  it('sends the compressed copy the build left to a browser that accepts it, the file to others', async () => {
    const br = await built.inject({
      method: 'GET',
      url: '/console/assets/index-abc123.js',
      headers: { 'accept-encoding': 'gzip, deflate, br' },
    });
    expect(br.statusCode).toBe(200);
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers['content-type']).toMatch(/javascript/);
    expect(brotliDecompressSync(br.rawPayload).toString()).toBe('console.log(1)');
    // No gzip copy of it: a gzip-only browser gets the file as it is.
    const plain = await built.inject({
      method: 'GET',
      url: '/console/assets/index-abc123.js',
      headers: { 'accept-encoding': 'gzip' },
    });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body).toBe('console.log(1)');
  });

  it('answers 404 for a missing asset instead of the page', async () => {
    const res = await built.inject({ method: 'GET', url: '/console/assets/index-old.js' });
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('not_found');
  });

  it('serves nothing outside the build', async () => {
    for (const url of ['/console/../secret.txt', '/console/%2e%2e/secret.txt', '/console/..%2fsecret.txt']) {
      const res = await built.inject({ method: 'GET', url });
      expect(res.body, url).not.toContain('not part of the build');
    }
  });

  it('says clearly that the console was not built: a page for a browser, problem+json otherwise', async () => {
    const page = await notBuilt.inject({ method: 'GET', url: '/console/', headers: { accept: 'text/html' } });
    expect(page.statusCode).toBe(503);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('npm run build');
    expectSecurityHeaders(page.headers);
    const api = await notBuilt.inject({ method: 'GET', url: '/console/inbox' });
    expect(api.statusCode).toBe(503);
    expect(api.json()).toMatchObject({ code: 'console_not_built', status: 503 });
  });

  it('leaves the API without the console headers', async () => {
    const res = await built.inject({ method: 'GET', url: '/healthz' });
    expect(res.headers['content-security-policy']).toBeUndefined();
  });
});
