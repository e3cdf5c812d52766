// Writes the OpenAPI document of the HTTP API to a file (default: console/openapi.json), without a
// database: the server is built with the real route modules and a pool that never connects (pg pools
// connect on their first query, and registering routes runs none). The console's API types are
// generated from this file, so a changed route breaks the console's build, not its pages.
//   node scripts/openapi.ts [out.json]
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { HOOK_ROUTES, ROUTES } from '../src/app.ts';
import { systemClock } from '../src/platform/clock.ts';
import { createPool } from '../src/platform/db/pool.ts';
import { AppError } from '../src/platform/errors.ts';
import { buildServer } from '../src/platform/http/server.ts';
import { createLogger } from '../src/platform/logging.ts';

export async function openApiDocument(): Promise<unknown> {
  // An address nothing listens on: a route that queried at registration would fail loudly here.
  const pool = createPool({ connectionString: 'postgres://openapi@127.0.0.1:1/none', max: 1 });
  const app = await buildServer(
    {
      config: { bodyLimit: 1024 * 1024, docs: true },
      pool,
      logger: createLogger('silent'),
      secretKey: randomBytes(32),
      clock: systemClock,
      authenticate: async () => {
        throw new AppError('unauthorized', 'no authentication while writing the OpenAPI document');
      },
    },
    ROUTES,
    HOOK_ROUTES,
  );
  try {
    await app.ready();
    return (app as unknown as { swagger(): unknown }).swagger();
  } finally {
    await app.close();
    await pool.end();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = path.resolve(process.argv[2] ?? 'console/openapi.json');
  const doc = await openApiDocument();
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(doc, null, 2)}\n`);
  console.log(`OpenAPI document written to ${path.relative(process.cwd(), out)}`);
}
