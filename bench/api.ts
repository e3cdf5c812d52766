// `npm run bench -- api`: HTTP throughput and latency of the ticket routes, against a bare Fastify
// route that runs `SELECT 1` on its own pg Pool on the same database (the ceiling of this machine).
// Servers run in this process; the load generator (autocannon) runs in a child process.
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import pg from 'pg';
import { startRelaydesk } from '../src/app.ts';
import { withTenant } from '../src/platform/db/tx.ts';
import { createLogger } from '../src/platform/logging.ts';
import { createTenant, deleteTenant } from '../src/modules/tenants/service.ts';
import type { LoadResult, LoadSpec } from './load.ts';
import {
  benchConfig,
  defer,
  fmt,
  freePort,
  heading,
  line,
  NODE,
  postmasterPid,
  ROOT,
  table,
  tempDir,
  treeCpuSeconds,
  usingExternalDatabase,
  verdict,
} from './lib.ts';

const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 50);
const DURATION = Number(process.env['BENCH_DURATION'] ?? 10);
const WARMUP = Number(process.env['BENCH_WARMUP'] ?? 3);
const EMAILS = 1000;
const MIN_TICKETS = 3000;

const TARGETS = {
  post: { rps: 1000, p99: 50 },
  list: { rps: 2000, p99: 50 },
};

interface Measured extends LoadResult {
  label: string;
  /** CPU used during the measurement, in cores (1.0 = one core busy the whole time). */
  cores: { server: number; postgres: number | null; client: number };
}

function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [path.join(ROOT, 'bench', 'load.ts'), JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    defer('kill load generator', kill);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with ${code}`));
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as LoadResult);
      } catch {
        reject(new Error(`load generator printed no result: ${out}`));
      }
    });
  });
}

async function measure(
  label: string,
  spec: Omit<LoadSpec, 'connections' | 'duration'>,
  pgPid: number | undefined,
): Promise<Measured> {
  line(`${label}: warm-up ${WARMUP} s ...`);
  await runLoad({ ...spec, connections: CONNECTIONS, duration: WARMUP });
  line(`${label}: measuring ${DURATION} s at ${CONNECTIONS} connections ...`);
  const serverBefore = process.cpuUsage();
  const pgBefore = pgPid ? await treeCpuSeconds(pgPid) : undefined;
  const result = await runLoad({ ...spec, connections: CONNECTIONS, duration: DURATION });
  const server = process.cpuUsage(serverBefore);
  const pgAfter = pgPid ? await treeCpuSeconds(pgPid) : undefined;
  const seconds = result.durationSeconds;
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    ...result,
    label,
    cores: {
      server: round((server.user + server.system) / 1e6 / seconds),
      postgres:
        pgBefore !== undefined && pgAfter !== undefined ? round((pgAfter - pgBefore) / seconds) : null,
      client: round(result.clientCpuSeconds / seconds),
    },
  };
}

export async function benchApi(): Promise<Record<string, unknown>> {
  heading('api: HTTP throughput and latency');
  const dataDir = await tempDir('api');
  const port = await freePort();
  const config = benchConfig(dataDir, { port });
  const logger = createLogger(config.logLevel);
  line(
    `starting Relaydesk (role all, ${usingExternalDatabase() ? 'DATABASE_URL' : `embedded PostgreSQL in ${dataDir}`}) ...`,
  );
  const startedAt = Date.now();
  const running = await startRelaydesk({ config, logger });
  defer('stop Relaydesk', () => running.stop());
  line(
    `Relaydesk ready at ${running.url} in ${fmt((Date.now() - startedAt) / 1000, 1)} s; pool size ${config.poolSize}`,
  );

  let tenantId: string;
  let token: string;
  if (running.bootstrap) {
    tenantId = running.bootstrap.tenant.id;
    token = running.bootstrap.adminToken.token;
  } else {
    // An external database that already has tenants: benchmark in a throw-away tenant.
    const created = await createTenant(running.db.pool, { name: `bench-${Date.now()}` });
    tenantId = created.tenant.id;
    token = created.adminToken.token;
    defer('delete the bench tenant', () => deleteTenant(running.db.pool, tenantId));
  }

  const { rows: versionRows } = await running.db.pool.query<{ server_version: string }>(
    'SHOW server_version',
  );
  const postgresVersion = versionRows[0]?.server_version ?? 'unknown';

  // The ceiling: a bare Fastify route, one query on its own pool of the same size.
  const ceilingPool = new pg.Pool({ connectionString: running.db.url, max: config.poolSize });
  ceilingPool.on('error', () => undefined);
  const bare = Fastify({ logger: false });
  bare.get('/select1', async () => {
    const { rows } = await ceilingPool.query('SELECT 1 AS one');
    return rows[0];
  });
  const barePort = await freePort();
  await bare.listen({ host: '127.0.0.1', port: barePort });
  defer('stop the bare server', async () => {
    await bare.close();
    await ceilingPool.end();
  });

  const pgPid = usingExternalDatabase() ? undefined : await postmasterPid(dataDir);
  const auth = { authorization: `Bearer ${token}` };
  const base = running.url!;

  const post = await measure(
    'POST /api/v1/tickets',
    { url: `${base}/api/v1/tickets`, method: 'POST', headers: auth, ticketEmails: EMAILS },
    pgPid,
  );

  const countTickets = async () =>
    withTenant(running.db.pool, tenantId, async (tx) => {
      const { rows } = await tx.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM tickets WHERE tenant_id = $1',
        [tenantId],
      );
      return rows[0]!.n;
    });
  let tickets = await countTickets();
  if (tickets < MIN_TICKETS) {
    line(`topping up to ${MIN_TICKETS} tickets (have ${tickets}) ...`);
    await runLoad({
      url: `${base}/api/v1/tickets`,
      method: 'POST',
      headers: auth,
      ticketEmails: EMAILS,
      connections: CONNECTIONS,
      duration: 60,
      amount: Math.max(CONNECTIONS, MIN_TICKETS - tickets),
    });
    tickets = await countTickets();
  }
  const { rows: peopleRows } = await running.db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM people WHERE tenant_id = $1 AND kind = 'contact'`,
    [tenantId],
  );
  line(`${fmt(tickets)} tickets, ${fmt(peopleRows[0]?.n ?? 0)} requesters in the tenant`);

  const list = await measure(
    'GET /api/v1/tickets?limit=50',
    { url: `${base}/api/v1/tickets?limit=50`, method: 'GET', headers: auth },
    pgPid,
  );
  const select1 = await measure(
    'GET /select1 (bare)',
    { url: `http://127.0.0.1:${barePort}/select1`, method: 'GET' },
    pgPid,
  );
  // Diagnostic: the Relaydesk stack without the database (routing, hooks, serialisation, client).
  const healthz = await measure('GET /healthz (no DB)', { url: `${base}/healthz`, method: 'GET' }, pgPid);

  const all = [post, list, select1, healthz];
  line();
  line(
    `Results (${CONNECTIONS} connections, ${DURATION} s each, after ${WARMUP} s warm-up; CPU in cores busy, of ${os.availableParallelism()})`,
  );
  table([
    [
      'route',
      'req/s',
      'p50 ms',
      'p99 ms',
      'non-2xx',
      'errors',
      'vs SELECT 1',
      'server CPU',
      'PG CPU',
      'client CPU',
    ],
    ...all.map((m) => [
      m.label,
      fmt(m.requestsPerSecond),
      fmt(m.latencyMs.p50, 1),
      fmt(m.latencyMs.p99, 1),
      fmt(m.non2xx),
      fmt(m.errors + m.timeouts),
      `${fmt((m.requestsPerSecond / select1.requestsPerSecond) * 100, 1)} %`,
      fmt(m.cores.server, 2),
      m.cores.postgres === null ? 'n/a' : fmt(m.cores.postgres, 2),
      fmt(m.cores.client, 2),
    ]),
  ]);

  const check = (m: Measured, target: { rps: number; p99: number }) => {
    const met =
      m.requestsPerSecond >= target.rps && m.latencyMs.p99 <= target.p99 && m.non2xx === 0 && m.errors === 0;
    return {
      met,
      text: `${verdict(met)} (target >= ${fmt(target.rps)} req/s, p99 <= ${target.p99} ms, no errors)`,
    };
  };
  const postCheck = check(post, TARGETS.post);
  const listCheck = check(list, TARGETS.list);
  line();
  line(
    `POST /api/v1/tickets: ${fmt(post.requestsPerSecond)} req/s, p99 ${fmt(post.latencyMs.p99, 1)} ms -> ${postCheck.text}`,
  );
  line(
    `GET  /api/v1/tickets: ${fmt(list.requestsPerSecond)} req/s, p99 ${fmt(list.latencyMs.p99, 1)} ms -> ${listCheck.text}`,
  );

  const summary = (m: Measured) => ({
    rps: Math.round(m.requestsPerSecond),
    p50Ms: m.latencyMs.p50,
    p90Ms: m.latencyMs.p90,
    p99Ms: m.latencyMs.p99,
    maxMs: m.latencyMs.max,
    total: m.total,
    non2xx: m.non2xx,
    errors: m.errors,
    timeouts: m.timeouts,
    cores: m.cores,
  });
  return {
    benchmark: 'api',
    connections: CONNECTIONS,
    durationSeconds: DURATION,
    database: usingExternalDatabase() ? 'external' : 'embedded',
    postgresVersion,
    poolSize: config.poolSize,
    ticketsBeforeList: tickets,
    post: summary(post),
    list: summary(list),
    select1: summary(select1),
    healthz: summary(healthz),
    ratioToSelect1: {
      post: Math.round((post.requestsPerSecond / select1.requestsPerSecond) * 1000) / 1000,
      list: Math.round((list.requestsPerSecond / select1.requestsPerSecond) * 1000) / 1000,
    },
    targets: { post: { ...TARGETS.post, met: postCheck.met }, list: { ...TARGETS.list, met: listCheck.met } },
  };
}
