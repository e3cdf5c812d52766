// `npm run bench -- api`: HTTP throughput and latency of the ticket routes, against a bare Fastify
// route that runs `SELECT 1` on its own pg Pool on the same database (the ceiling of this machine).
// Servers run in this process; the load generator (autocannon) runs in a child process.
//
// Besides the single-tenant routes, a multi-tenant mix: POST and GET spread evenly (round robin,
// bench/load.ts) over 100 tenants, each request with its tenant's admin token.
//
// Knobs (environment): BENCH_CONNECTIONS (50), BENCH_DURATION (10 s), BENCH_WARMUP (3 s),
// BENCH_ONLY (comma list of: post, post-tenants, list-stale, list, post-mix, list-mix, select1,
// healthz), BENCH_RETRIES (2), BENCH_QUIET_WAIT (30 s), BENCH_BUDGET (210 s: no more waiting or
// repeating after that),
// RELAYDESK_POOL_SIZE (Relaydesk's pool, also used for the SELECT 1 pool; default 20), BENCH_ROLE
// (the role of the Relaydesk under test: all, the default, or api to leave out workers and scheduler).
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import pg from 'pg';
import { startRelaydesk } from '../src/app.ts';
import { createTenant, deleteTenant } from '../src/modules/tenants/service.ts';
import type { Config } from '../src/platform/config.ts';
import type { Pool } from '../src/platform/db/pool.ts';
import { withTenant } from '../src/platform/db/tx.ts';
import { createLogger } from '../src/platform/logging.ts';
import {
  benchConfig,
  defer,
  fmt,
  freePort,
  heading,
  line,
  machineBusySeconds,
  NODE,
  ownerPool,
  postmasterPid,
  ROOT,
  table,
  tempDir,
  treeCpu,
  treeCpuDelta,
  usingExternalDatabase,
  verdict,
  waitForQuietMachine,
} from './lib.ts';
import type { LoadResult, LoadSpec } from './load.ts';

const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 50);
const DURATION = Number(process.env['BENCH_DURATION'] ?? 10);
const WARMUP = Number(process.env['BENCH_WARMUP'] ?? 3);
const ONLY = process.env['BENCH_ONLY']?.split(',').map((s) => s.trim());
const EMAILS = 1000;
const MIN_TICKETS = 3000;
const EXTRA_TENANTS = 4;
/** The multi-tenant mix: this many tenants, each with at least MIX_MIN_TICKETS before its list is read. */
const MIX_TENANTS = 100;
const MIX_MIN_TICKETS = 50;

const TARGETS = {
  post: { rps: 1000, p99: 50 },
  list: { rps: 2000, p99: 50 },
};

interface Measured extends LoadResult {
  label: string;
  /** CPU used during the measurement, in cores busy (1.0 = one core the whole time). */
  cores: { machine: number; server: number; client: number; postgres: number | null; other: number };
  plan?: string;
  /** The multi-tenant POST: how many tickets each tenant got, fewest and most. */
  ticketsAddedPerTenant?: { min: number; max: number };
}

/** Rows of the results table, by key of `results`. */
const ROW_ORDER = ['post', 'postTenants', 'postMix', 'listStale', 'list', 'listMix', 'select1', 'healthz'];

const wanted = (key: string) => !ONLY || ONLY.includes(key);

function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [path.join(ROOT, 'bench', 'load.ts'), JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    defer('kill the load generator', () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
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

let pgPid: number | undefined;

const RETRIES = Number(process.env['BENCH_RETRIES'] ?? 2);
const NOISY_CORES = 0.25;
/** Waiting for a quiet machine and repeating noisy measurements stop once this budget is spent. */
const BUDGET_SECONDS = Number(process.env['BENCH_BUDGET'] ?? 210);
const MEASUREMENT_SECONDS = WARMUP + DURATION + 2;
const PLANNED = [
  'post',
  'post-tenants',
  'list-stale',
  'list',
  'post-mix',
  'list-mix',
  'select1',
  'healthz',
].filter(wanted).length;
let deadline = Date.now() + BUDGET_SECONDS * 1000;
let measurementsDone = 0;

/** Seconds of the budget not needed by the measurements still to come (the current one included). */
const slackSeconds = () =>
  (deadline - Date.now()) / 1000 - Math.max(1, PLANNED - measurementsDone) * MEASUREMENT_SECONDS;

/**
 * One measurement: warm-up, then the timed run, with CPU accounting. On a shared machine it first
 * waits for other processes to go quiet, and repeats a run they disturbed (up to BENCH_RETRIES times)
 * while the time budget allows; the quietest run counts.
 */
async function measure(label: string, spec: Omit<LoadSpec, 'connections' | 'duration'>): Promise<Measured> {
  let best: Measured | undefined;
  for (let attempt = 0; ; attempt++) {
    const measured = await measureOnce(label, spec);
    if (!best || measured.cores.other < best.cores.other) best = measured;
    if (measured.cores.postgres === null || measured.cores.other <= NOISY_CORES) break;
    const again = attempt < RETRIES && slackSeconds() > MEASUREMENT_SECONDS;
    line(
      `  warning: other processes used ${fmt(measured.cores.other, 2)} cores during this measurement${again ? '; repeating it' : ''}`,
    );
    if (!again) break;
  }
  measurementsDone++;
  return best!;
}

async function measureOnce(
  label: string,
  spec: Omit<LoadSpec, 'connections' | 'duration'>,
): Promise<Measured> {
  await waitForQuietMachine(pgPid, slackSeconds() / 2);
  line(`${label}: warm-up ${WARMUP} s, then ${DURATION} s at ${CONNECTIONS} connections ...`);
  if (WARMUP > 0) await runLoad({ ...spec, connections: CONNECTIONS, duration: WARMUP });
  const serverBefore = process.cpuUsage();
  const machineBefore = await machineBusySeconds();
  const pgBefore = pgPid ? await treeCpu(pgPid) : undefined;
  const result = await runLoad({ ...spec, connections: CONNECTIONS, duration: DURATION });
  const serverUsage = process.cpuUsage(serverBefore);
  const machine = (await machineBusySeconds()) - machineBefore;
  const postgres = pgPid && pgBefore ? treeCpuDelta(pgBefore, await treeCpu(pgPid)) : undefined;
  const seconds = result.durationSeconds;
  const round = (n: number) => Math.round(n * 100) / 100;
  const server = (serverUsage.user + serverUsage.system) / 1e6;
  const other = Math.max(0, machine - server - result.clientCpuSeconds - (postgres ?? 0));
  return {
    ...result,
    label,
    cores: {
      machine: round(machine / seconds),
      server: round(server / seconds),
      client: round(result.clientCpuSeconds / seconds),
      postgres: postgres === undefined ? null : round(postgres / seconds),
      other: round(other / seconds),
    },
  };
}

/** The plan PostgreSQL picks for the list query, as a request runs it (app role, tenant pinned), in one line. */
async function listPlan(pool: Pool, tenantId: string): Promise<string> {
  return withTenant(pool, tenantId, async (tx) => {
    const { rows } = await tx.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN SELECT id, number, subject, status, priority, requester_id, assignee_id, created_at, updated_at
         FROM tickets WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`,
      [tenantId, 51],
    );
    return rows
      .map((r) => r['QUERY PLAN'].trim().replace(/^->\s*/, ''))
      .filter((l) => /Scan|Sort(?! Key)/.test(l))
      .map((l) => l.replace(/\s+\(cost=.*$/, ''))
      .join(' <- ');
  });
}

/** The tenants of the multi-tenant mix, each with its admin token (deleted afterwards on an external database). */
async function createMixTenants(pool: Pool): Promise<{ tenantIds: string[]; tokens: string[] }> {
  line(`creating ${MIX_TENANTS} tenants ...`);
  const tenantIds: string[] = [];
  const tokens: string[] = [];
  const stamp = Date.now();
  for (let i = 0; i < MIX_TENANTS; i++) {
    const created = await createTenant(pool, { name: `bench-mix-${i}-${stamp}` });
    tenantIds.push(created.tenant.id);
    tokens.push(created.adminToken.token);
    if (usingExternalDatabase()) defer('delete a bench tenant', () => deleteTenant(pool, created.tenant.id));
  }
  return { tenantIds, tokens };
}

/** Tickets per tenant, in the order of `tenantIds` (as the benchmark's own role: across tenants). */
async function mixTicketCounts(pool: Pool, tenantIds: string[]): Promise<number[]> {
  const { rows } = await pool.query<{ tenant_id: string; n: number }>(
    'SELECT tenant_id, count(*)::int AS n FROM tickets WHERE tenant_id = ANY($1::uuid[]) GROUP BY tenant_id',
    [tenantIds],
  );
  const byTenant = new Map(rows.map((r) => [r.tenant_id, r.n]));
  return tenantIds.map((id) => byTenant.get(id) ?? 0);
}

export async function benchApi(): Promise<Record<string, unknown>> {
  heading('api: HTTP throughput and latency');
  deadline = Date.now() + BUDGET_SECONDS * 1000;
  measurementsDone = 0;
  const dataDir = await tempDir('api');
  const port = await freePort();
  const config = benchConfig(dataDir, {
    port,
    role: (process.env['BENCH_ROLE'] as Config['role'] | undefined) ?? 'all',
  });
  const logger = createLogger(config.logLevel);
  line(
    `starting Relaydesk (role all, ${usingExternalDatabase() ? 'DATABASE_URL' : `embedded PostgreSQL in ${dataDir}`}) ...`,
  );
  const startedAt = Date.now();
  const running = await startRelaydesk({ config, logger });
  defer('stop Relaydesk', () => running.stop());
  const pool = running.db.pool;
  const owner = ownerPool(running.db);
  pgPid = usingExternalDatabase() ? undefined : await postmasterPid(dataDir);
  line(
    `Relaydesk ready at ${running.url} in ${fmt((Date.now() - startedAt) / 1000, 1)} s; pool size ${config.poolSize}`,
  );

  let tenantId: string;
  let token: string;
  if (running.bootstrap) {
    tenantId = running.bootstrap.tenant.id;
    token = running.bootstrap.adminToken.token;
    // An external database that was empty: leave it as we found it (without the bootstrapped tenant).
    if (usingExternalDatabase()) defer('delete the bootstrapped tenant', () => deleteTenant(pool, tenantId));
  } else {
    // An external database that already has tenants: benchmark in a throw-away tenant.
    const created = await createTenant(pool, { name: `bench-${Date.now()}` });
    tenantId = created.tenant.id;
    token = created.adminToken.token;
    defer('delete the bench tenant', () => deleteTenant(pool, created.tenant.id));
  }

  const { rows: versionRows } = await pool.query<{ server_version: string }>('SHOW server_version');
  const postgresVersion = versionRows[0]?.server_version ?? 'unknown';
  const { rows: settingRows } = await pool.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'jit', 'shared_buffers', 'max_connections')`,
  );
  const settings = Object.fromEntries(settingRows.map((r) => [r.name, r.setting]));
  line(`PostgreSQL ${postgresVersion}; ${settingRows.map((r) => `${r.name}=${r.setting}`).join(', ')}`);

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

  const auth = { authorization: `Bearer ${token}` };
  const base = running.url!;
  const tickets = `${base}/api/v1/tickets`;
  const results: Record<string, Measured> = {};

  // (a) POST, all in one tenant (the default tenant, as the targets assume).
  if (wanted('post')) {
    results['post'] = await measure('POST /api/v1/tickets', {
      url: tickets,
      method: 'POST',
      headers: auth,
      ticketEmails: EMAILS,
    });
  }

  // Diagnostic: the same, spread over several tenants (each has its own ticket-number counter row).
  if (wanted('post-tenants')) {
    const tokens = [token];
    for (let i = 0; i < EXTRA_TENANTS; i++) {
      const created = await createTenant(pool, { name: `bench-extra-${i}-${Date.now()}` });
      tokens.push(created.adminToken.token);
      if (usingExternalDatabase())
        defer('delete a bench tenant', () => deleteTenant(pool, created.tenant.id));
    }
    results['postTenants'] = await measure(`POST /api/v1/tickets, ${tokens.length} tenants`, {
      url: tickets,
      method: 'POST',
      tokens,
      ticketEmails: EMAILS,
    });
  }

  const countTickets = async () =>
    withTenant(pool, tenantId, async (tx) => {
      const { rows } = await tx.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM tickets WHERE tenant_id = $1',
        [tenantId],
      );
      return rows[0]!.n;
    });
  let ticketCount = await countTickets();
  if (ticketCount < MIN_TICKETS && (wanted('list-stale') || wanted('list'))) {
    line(`topping up to ${MIN_TICKETS} tickets (have ${ticketCount}) ...`);
    await runLoad({
      url: tickets,
      method: 'POST',
      headers: auth,
      ticketEmails: EMAILS,
      connections: CONNECTIONS,
      duration: 120,
      amount: Math.max(CONNECTIONS, MIN_TICKETS - ticketCount),
    });
    ticketCount = await countTickets();
  }
  const { rows: peopleRows } = await owner.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM people WHERE tenant_id = $1 AND kind = 'contact'`,
    [tenantId],
  );
  line(`the tenant has ${fmt(ticketCount)} tickets and ${fmt(peopleRows[0]?.n ?? 0)} requesters`);

  const listSpec = { url: `${tickets}?limit=50`, method: 'GET' as const, headers: auth };
  // Diagnostic: right after a burst of inserts autovacuum has not analysed the table yet (it looks
  // once a minute), so the planner still believes the table is (nearly) empty.
  if (wanted('list-stale')) {
    const plan = await listPlan(pool, tenantId);
    line(`list plan before ANALYZE: ${plan}`);
    results['listStale'] = {
      ...(await measure(
        `GET /api/v1/tickets?limit=50, before ANALYZE (${/Sort/.test(plan) ? 'stale stats' : 'stats were current'})`,
        listSpec,
      )),
      plan,
    };
  }
  // (b) GET with current statistics: what autovacuum's analyse gives within a minute.
  if (wanted('list')) {
    await owner.query('ANALYZE');
    const plan = await listPlan(pool, tenantId);
    line(`list plan after ANALYZE: ${plan}`);
    results['list'] = { ...(await measure('GET /api/v1/tickets?limit=50', listSpec)), plan };
  }
  // (c) the multi-tenant mix: the same routes with every request in the next of 100 tenants.
  let mixTickets: { min: number; max: number } | undefined;
  if (wanted('post-mix') || wanted('list-mix')) {
    const mix = await createMixTenants(pool);
    const perTenant = () => mixTicketCounts(owner, mix.tenantIds);
    if (wanted('post-mix')) {
      const before = await perTenant();
      results['postMix'] = await measure(`POST /api/v1/tickets, ${MIX_TENANTS} tenants`, {
        url: tickets,
        method: 'POST',
        tokens: mix.tokens,
        ticketEmails: EMAILS,
      });
      // What the round robin gave each tenant (warm-up and measured run): an uneven spread would
      // make this a few-tenant measurement under another name.
      const after = await perTenant();
      const added = after.map((n, i) => n - before[i]!);
      results['postMix'].ticketsAddedPerTenant = { min: Math.min(...added), max: Math.max(...added) };
      line(`  tickets added per tenant: ${fmt(Math.min(...added))} to ${fmt(Math.max(...added))}`);
    }
    if (wanted('list-mix')) {
      // Every tenant's page must be full (limit=50), or the mix would read shorter pages than the
      // single-tenant list.
      let counts = await perTenant();
      const least = Math.min(...counts);
      if (least < MIX_MIN_TICKETS) {
        const short = mix.tokens.filter((_, i) => counts[i]! < MIX_MIN_TICKETS);
        line(
          `topping up ${short.length} tenants to at least ${MIX_MIN_TICKETS} tickets (least has ${least}) ...`,
        );
        // Round robin over the short tenants: each gets the largest deficit (or one more).
        await runLoad({
          url: tickets,
          method: 'POST',
          tokens: short,
          ticketEmails: EMAILS,
          connections: CONNECTIONS,
          duration: 120,
          amount: Math.max(CONNECTIONS, (MIX_MIN_TICKETS - least) * short.length),
        });
        counts = await perTenant();
      }
      mixTickets = { min: Math.min(...counts), max: Math.max(...counts) };
      line(`the ${MIX_TENANTS} tenants have ${fmt(mixTickets.min)} to ${fmt(mixTickets.max)} tickets each`);
      await owner.query('ANALYZE');
      const plan = await listPlan(pool, mix.tenantIds[0]!);
      line(`list plan (one of the ${MIX_TENANTS} tenants): ${plan}`);
      results['listMix'] = {
        ...(await measure(`GET /api/v1/tickets?limit=50, ${MIX_TENANTS} tenants`, {
          url: `${tickets}?limit=50`,
          method: 'GET',
          tokens: mix.tokens,
        })),
        plan,
      };
    }
  }
  // (d) the ceiling, and a diagnostic without the database.
  if (wanted('select1')) {
    results['select1'] = await measure('GET /select1 (bare Fastify + pg)', {
      url: `http://127.0.0.1:${barePort}/select1`,
      method: 'GET',
    });
  }
  if (wanted('healthz')) {
    results['healthz'] = await measure('GET /healthz (Relaydesk, no DB)', {
      url: `${base}/healthz`,
      method: 'GET',
    });
  }

  const ceiling = results['select1']?.requestsPerSecond;
  const ratio = (m: Measured | undefined) =>
    m && ceiling ? Math.round((m.requestsPerSecond / ceiling) * 1000) / 1000 : null;
  line();
  line(
    `Results: ${CONNECTIONS} connections, ${DURATION} s each after ${WARMUP} s warm-up. CPU in cores busy (machine has ${os.availableParallelism()}): ` +
      'server = this process (Relaydesk + bare server), client = autocannon, PG = the embedded PostgreSQL, other = anything else.',
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
      'server',
      'client',
      'PG',
      'other',
    ],
    // POSTs together, then lists, whatever order they were measured in.
    ...ROW_ORDER.flatMap((key) => (results[key] ? [results[key]] : [])).map((m) => [
      m.label,
      fmt(m.requestsPerSecond),
      fmt(m.latencyMs.p50, 1),
      fmt(m.latencyMs.p99, 1),
      fmt(m.non2xx),
      fmt(m.errors + m.timeouts),
      ceiling ? `${fmt((m.requestsPerSecond / ceiling) * 100, 1)} %` : 'n/a',
      fmt(m.cores.server, 2),
      fmt(m.cores.client, 2),
      m.cores.postgres === null ? 'n/a' : fmt(m.cores.postgres, 2),
      fmt(m.cores.other, 2),
    ]),
  ]);

  const check = (m: Measured | undefined, target: { rps: number; p99: number }) => {
    if (!m) return { met: null, text: 'not measured' };
    const met =
      m.requestsPerSecond >= target.rps && m.latencyMs.p99 <= target.p99 && m.non2xx === 0 && m.errors === 0;
    return {
      met,
      text: `${fmt(m.requestsPerSecond)} req/s, p99 ${fmt(m.latencyMs.p99, 1)} ms -> ${verdict(met)} (target >= ${fmt(target.rps)} req/s, p99 <= ${target.p99} ms, no errors)`,
    };
  };
  const postCheck = check(results['post'], TARGETS.post);
  const listCheck = check(results['list'], TARGETS.list);
  const postMixCheck = check(results['postMix'], TARGETS.post);
  const listMixCheck = check(results['listMix'], TARGETS.list);
  line();
  line(`POST /api/v1/tickets:                       ${postCheck.text}`);
  line(`POST /api/v1/tickets, ${MIX_TENANTS} tenants:          ${postMixCheck.text}`);
  line(`GET  /api/v1/tickets?limit=50:              ${listCheck.text}`);
  line(`GET  /api/v1/tickets?limit=50, ${MIX_TENANTS} tenants: ${listMixCheck.text}`);

  const summary = (m: Measured | undefined) =>
    m && {
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
      ...(m.plan ? { plan: m.plan } : {}),
      ...(m.ticketsAddedPerTenant ? { ticketsAddedPerTenant: m.ticketsAddedPerTenant } : {}),
    };
  return {
    benchmark: 'api',
    connections: CONNECTIONS,
    durationSeconds: DURATION,
    warmupSeconds: WARMUP,
    database: usingExternalDatabase() ? 'external' : 'embedded',
    postgresVersion,
    postgresSettings: settings,
    poolSize: config.poolSize,
    ticketsBeforeList: ticketCount,
    post: summary(results['post']),
    postTenants: summary(results['postTenants']),
    listStale: summary(results['listStale']),
    list: summary(results['list']),
    mixTenants: MIX_TENANTS,
    mixTicketsPerTenantBeforeList: mixTickets ?? null,
    postMix: summary(results['postMix']),
    listMix: summary(results['listMix']),
    select1: summary(results['select1']),
    healthz: summary(results['healthz']),
    ratioToSelect1: {
      post: ratio(results['post']),
      list: ratio(results['list']),
      postMix: ratio(results['postMix']),
      listMix: ratio(results['listMix']),
    },
    targets: {
      post: { ...TARGETS.post, met: postCheck.met },
      list: { ...TARGETS.list, met: listCheck.met },
      postMix: { ...TARGETS.post, met: postMixCheck.met },
      listMix: { ...TARGETS.list, met: listMixCheck.met },
    },
  };
}
