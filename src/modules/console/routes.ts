// Serves the operator console (console/, built by `npm run build` into console/dist) at /console/:
// its files, index.html for every other /console/ path (the console routes in the browser), and
// `GET /` sends a browser there. Hashed assets are cached for good; index.html is revalidated each
// time, so a new build shows at the next load. Every answer carries the console's security headers.
import fastifyStatic from '@fastify/static';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { problem, sendProblem } from '../../platform/http/problem.ts';
import type { RouteModule } from '../../platform/http/server.ts';

/** Where `npm run build` puts the console. */
export const CONSOLE_DIST = fileURLToPath(new URL('../../../console/dist', import.meta.url));

/**
 * No script but the bundle's own files (no inline script, no eval). Styles may be inline: the
 * component library positions popovers through style attributes. Mail HTML is shown in a sandboxed
 * frame without scripts and inherits this policy, so its remote images and fonts do not load either.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self'",
  "frame-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
};

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Relaydesk console not built</title></head>
<body><main><h1>The console has not been built</h1>
<p>This Relaydesk installation has no built console. Run <code>npm run build</code> in its directory
(<code>npm install</code> does it too) and reload this page. The API at <code>/api/v1</code> works meanwhile.</p>
</main></body></html>
`;

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** The console's routes, serving the build in `distDir` (another directory in tests). */
export function consoleRoutesFrom(distDir: string): RouteModule {
  const root = path.resolve(distDir);
  return async (app) => {
    // Only reply.sendFile: this module decides which file answers which path. The build leaves a
    // brotli and a gzip copy of each asset (scripts/compress-console.ts), sent to browsers that
    // accept them.
    await app.register(fastifyStatic, { root, serve: false, preCompressed: true });

    app.addHook('onRequest', async (_request, reply) => {
      reply.headers(SECURITY_HEADERS);
    });

    app.get('/', { config: { public: true }, schema: { hide: true } }, async (_request, reply) =>
      reply.redirect('/console/', 302),
    );
    app.get('/console', { config: { public: true }, schema: { hide: true } }, async (_request, reply) =>
      reply.redirect('/console/', 301),
    );

    app.get<{ Params: { '*': string } }>(
      '/console/*',
      { config: { public: true }, schema: { hide: true } },
      async (request, reply) => {
        if (!(await isFile(path.join(root, 'index.html')))) {
          const p = problem('console_not_built', 'The console has not been built: run `npm run build`');
          if (request.headers.accept?.includes('text/html')) {
            return reply
              .code(p.status)
              .header('cache-control', 'no-store')
              .type('text/html')
              .send(NOT_BUILT_PAGE);
          }
          return sendProblem(reply.header('cache-control', 'no-store'), p);
        }
        const wanted = request.params['*'];
        // path.join normalises "..": whatever climbs out of the build is not one of its files.
        const file = path.join(root, wanted);
        const inside = file.startsWith(root + path.sep);
        if (inside && wanted !== 'index.html' && (await isFile(file))) {
          const hashed = wanted.startsWith('assets/');
          return reply.sendFile(path.relative(root, file), {
            cacheControl: true,
            maxAge: hashed ? '365d' : '1h',
            immutable: hashed,
            dotfiles: 'deny',
          });
        }
        // A missing asset is a 404, not the page (a stale page asking for an old bundle must see it).
        if (wanted.startsWith('assets/')) {
          return sendProblem(reply, problem('not_found', `No console file ${wanted}`));
        }
        return reply.header('cache-control', 'no-cache').sendFile('index.html', { cacheControl: false });
      },
    );
  };
}

export const consoleRoutes: RouteModule = consoleRoutesFrom(CONSOLE_DIST);
