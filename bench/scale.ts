// `npm run bench -- scale`: POST /tickets throughput of the scale-out layout against one process.
//   - direct: one `relaydesk start --role api` process on PostgreSQL directly;
//   - pgbouncer: two `--role api` processes through PgBouncer in transaction pooling mode (LISTEN on
//     a direct connection), the load split evenly between them.
// Both on the same embedded PostgreSQL and tenant mix (BENCH_TENANTS tenants, requests round robin
// over their tokens, requesters cycling over 1,000 addresses); the load generator (autocannon) runs
// in child processes. The figure: the second at least the first.
//
// Knobs (environment): BENCH_CONNECTIONS (50, split between the processes), BENCH_DURATION (10 s),
// BENCH_WARMUP (3 s), BENCH_TENANTS (20), RELAYDESK_POOL_SIZE (each process's pool, 20).
import { randomBytes } from 'node:crypto';
import { Cluster } from '../test/cluster.ts';
import { startPgBouncer } from '../test/pgbouncer.ts';
import { createTenant } from '../src/modules/tenants/service.ts';
import { migrateAll, openDatabase } from '../src/platform/db/database.ts';
import { APP_ROLE } from '../src/platform/db/tx.ts';
import { createLogger } from '../src/platform/logging.ts';
import { benchConfig, defer, fmt, heading, line, runJsonChild, table, tempDir, verdict } from './lib.ts';
import type { LoadResult, LoadSpec } from './load.ts';

const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 50);
const DURATION = Number(process.env['BENCH_DURATION'] ?? 10);
const WARMUP = Number(process.env['BENCH_WARMUP'] ?? 3);
const TENANTS = Number(process.env['BENCH_TENANTS'] ?? 20);

/** The same load spread over the given processes (one generator each), summed. */
async function load(
  urls: string[],
  tokens: string[],
  duration: number,
): Promise<LoadResult & { parts: LoadResult[] }> {
  const parts: LoadResult[] = await Promise.all(
    urls.map((url) =>
      runJsonChild('load.ts', {
        url: `${url}/api/v1/tickets`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        connections: Math.max(1, Math.round(CONNECTIONS / urls.length)),
        duration,
        ticketEmails: 1000,
        tokens,
      } satisfies LoadSpec),
    ),
  );
  const sum = (f: (r: LoadResult) => number) => parts.reduce((s, r) => s + f(r), 0);
  return {
    parts,
    requestsPerSecond: sum((r) => r.requestsPerSecond),
    total: sum((r) => r.total),
    durationSeconds: Math.max(...parts.map((r) => r.durationSeconds)),
    latencyMs: {
      // The worse of the parts: each saw its own process.
      p50: Math.max(...parts.map((r) => r.latencyMs.p50)),
      p90: Math.max(...parts.map((r) => r.latencyMs.p90)),
      p99: Math.max(...parts.map((r) => r.latencyMs.p99)),
      average:
        sum((r) => r.latencyMs.average * r.total) /
        Math.max(
          1,
          sum((r) => r.total),
        ),
      max: Math.max(...parts.map((r) => r.latencyMs.max)),
    },
    ok2xx: sum((r) => r.ok2xx),
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    clientCpuSeconds: sum((r) => r.clientCpuSeconds),
  };
}

export async function benchScale(): Promise<Record<string, unknown>> {
  heading(`Scale-out: POST /tickets, 1 api process direct vs 2 through PgBouncer (${TENANTS} tenants)`);
  if (process.env['DATABASE_URL'])
    throw new Error('bench scale runs on its own embedded PostgreSQL: unset DATABASE_URL');
  const dataDir = await tempDir('scale');
  const logger = createLogger('warn');
  const db = await openDatabase(benchConfig(dataDir), logger, { purpose: 'server', poolSize: 4 });
  defer('close the database', () => db.close());
  await migrateAll(db);
  const tokens: string[] = [];
  for (let i = 0; i < TENANTS; i++)
    tokens.push((await createTenant(db.pool, { name: `Scale ${i}` })).adminToken.token);
  const appPassword = decodeURIComponent(new URL(db.url).password);
  const bouncer = await startPgBouncer({
    serverUrl: db.url,
    users: [{ name: APP_ROLE, password: appPassword }],
    poolSize: 20,
  });
  defer('stop PgBouncer', () => bouncer.stop());
  const secretKey = randomBytes(32).toString('base64');

  const results: Record<string, LoadResult> = {};
  for (const layout of ['direct', 'pgbouncer'] as const) {
    const cluster = await Cluster.create({
      databaseUrl: layout === 'direct' ? db.url : bouncer.through(db.url),
      directDatabaseUrl: layout === 'direct' ? undefined : db.url,
      secretKey,
      env: { LOG_LEVEL: 'error' },
    });
    try {
      const apis = await Promise.all((layout === 'direct' ? [1] : [1, 2]).map(() => cluster.add('api')));
      const urls = apis.map((p) => p.url!);
      await load(urls, tokens, WARMUP);
      results[layout] = await load(urls, tokens, DURATION);
    } finally {
      await cluster.stopAll({ remove: true });
    }
  }
  const direct = results['direct']!;
  const pooled = results['pgbouncer']!;
  table([
    ['layout', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors'],
    ...(['direct', 'pgbouncer'] as const).map((k) => {
      const r = results[k]!;
      return [
        k === 'direct' ? '1 api, direct' : '2 api, PgBouncer',
        fmt(r.requestsPerSecond),
        fmt(r.latencyMs.p50, 1),
        fmt(r.latencyMs.p99, 1),
        r.non2xx,
        r.errors + r.timeouts,
      ];
    }),
  ]);
  const met =
    pooled.requestsPerSecond >= direct.requestsPerSecond && pooled.non2xx === 0 && direct.non2xx === 0;
  line(`2 api processes through PgBouncer at least 1 direct: ${verdict(met)}`);
  return {
    benchmark: 'scale',
    tenants: TENANTS,
    connections: CONNECTIONS,
    durationSeconds: DURATION,
    direct: { rps: Math.round(direct.requestsPerSecond), p99: direct.latencyMs.p99, non2xx: direct.non2xx },
    pgbouncer: {
      rps: Math.round(pooled.requestsPerSecond),
      p99: pooled.latencyMs.p99,
      non2xx: pooled.non2xx,
    },
    met,
  };
}
