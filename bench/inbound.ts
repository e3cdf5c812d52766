// Inbound benchmark: `npm run bench -- inbound`.
// 1. A generated corpus of 10,000 messages (70% small text/HTML, 25% with 50–500 KB attachments, 5%
//    over 1 MB; 30% replies; 10% exact duplicates) through the raw-MIME API, from a separate process,
//    while the same Relaydesk process's workers consume: messages/s from the first POST until the
//    last message's ticket or comment is committed.
// 2. The same for small messages only.
// 3. What a user feels: messages of the mixed corpus offered at a steady BENCH_INBOUND_RATE (100)
//    per second for BENCH_INBOUND_STEADY_SECONDS (30; 0 leaves it out), and for each one the time
//    from its 202 to its ticket or comment committed (inbound-latency.ts says how that is measured).
// 4. Graph webhook ingress, 10 notifications per POST at 50 connections, saturated and at 1,200
//    notifications/s offered: once against this all-roles process (its inbound workers paused), once
//    against a separate `relaydesk start --role api` process on the same database (the scale-out
//    layout: ingress nodes apart from worker nodes). Beside them a bare INSERT of the same rows, the
//    ceiling, with the ratio.
// Each measurement waits for a quiet machine first and reports the cores each party kept busy:
// server (this process: Relaydesk and the benchmark), PG (the embedded PostgreSQL), client (the load
// generator), other (everything else on the machine; above ~0.2 the figure is disturbed).
// At the end, the server process's peak resident memory against its goal (1.2 GiB).
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startRelaydesk } from '../src/app.ts';
import { recordGraphSubscription } from '../src/modules/inbound/mailboxes.ts';
import { withTenant } from '../src/platform/db/tx.ts';
import { createLogger } from '../src/platform/logging.ts';
import { uuidv7 } from '../src/platform/ids.ts';
import { watchCommits } from './inbound-latency.ts';
import {
  benchConfig,
  defer,
  fmt,
  freePort,
  heading,
  line,
  machineBusySeconds,
  NODE,
  postmasterPid,
  ROOT,
  runJsonChild,
  sleep,
  table,
  tempDir,
  treeCpu,
  treeCpuDelta,
  verdict,
  waitForQuietMachine,
  ownerPool,
} from './lib.ts';

const TOTAL = Number(process.env['BENCH_INBOUND_MESSAGES'] ?? 10_000);
const SMALL = Number(process.env['BENCH_INBOUND_SMALL'] ?? 3_000);
const RATE = Number(process.env['BENCH_INBOUND_RATE'] ?? 100);
const STEADY_SECONDS = Number(process.env['BENCH_INBOUND_STEADY_SECONDS'] ?? 30);
/** Goals: accepted → committed p99 at the steady rate; the server process's peak RSS. */
const STEADY_P99_MS = 1000;
const PEAK_RSS_MIB = 1.2 * 1024;

const child = (spec: object) => runJsonChild('inbound-load.ts', spec);

/** Cores busy during a measurement, by party. */
interface Cores {
  server: number;
  pg: number;
  client: number;
  /** A separate API process, when one served the measurement. */
  api?: number;
  other: number;
}

/** CPU counters at the start of a measurement; `end` turns them into cores busy since then. */
async function cpuMeter(pgPid: number | undefined, apiPid?: number) {
  const wall = Date.now();
  const machine = await machineBusySeconds();
  const self = process.cpuUsage();
  const pg = pgPid ? await treeCpu(pgPid) : undefined;
  const api = apiPid ? await treeCpu(apiPid) : undefined;
  return {
    /** `clientSeconds`: CPU the load generator reported for itself. */
    async end(clientSeconds: number): Promise<Cores> {
      const seconds = (Date.now() - wall) / 1000;
      const own = process.cpuUsage(self);
      const server = (own.user + own.system) / 1e6;
      const pgCpu = pg && pgPid ? treeCpuDelta(pg, await treeCpu(pgPid)) : 0;
      const apiCpu = api && apiPid ? treeCpuDelta(api, await treeCpu(apiPid)) : 0;
      const all = (await machineBusySeconds()) - machine;
      const per = (v: number) => Math.round((100 * v) / seconds) / 100;
      return {
        server: per(server),
        pg: per(pgCpu),
        client: per(clientSeconds),
        ...(apiPid ? { api: per(apiCpu) } : {}),
        other: per(Math.max(0, all - server - pgCpu - clientSeconds - apiCpu)),
      };
    },
  };
}

const coresText = (c: Cores) =>
  `server ${fmt(c.server, 2)}${c.api === undefined ? '' : `, api process ${fmt(c.api, 2)}`}, PG ${fmt(c.pg, 2)}, client ${fmt(c.client, 2)}, other ${fmt(c.other, 2)}`;

/**
 * The mime load generator, started and done building its corpus (which it does before anything is
 * measured); `go` starts the uploads and resolves to what the generator measured. Lines it prints
 * on the way (a paced upload's accepted messages) go to `onMessage` as they come.
 */
function preparedUpload(
  spec: object,
  onMessage: (message: any) => void = () => undefined,
): Promise<{ go: () => Promise<any> }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(NODE, [path.join(ROOT, 'bench', 'inbound-load.ts'), JSON.stringify(spec)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let partial = '';
    let last: any;
    let finished: (result: any) => void = () => undefined;
    let failed: (err: Error) => void = reject;
    const done = new Promise<any>((res, rej) => {
      finished = res;
      failed = rej;
    });
    proc.stdout.setEncoding('utf8').on('data', (d: string) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop()!;
      for (const text of lines) {
        if (text.trim() === '') continue;
        last = JSON.parse(text);
        if (last.ready === true)
          resolve({
            go: () => {
              proc.stdin.end('go\n');
              return done;
            },
          });
        else onMessage(last);
      }
    });
    // 'close', not 'exit': every line it printed has been read by then.
    proc.on('close', (code) => {
      if (code !== 0) {
        const err = new Error(`inbound-load.ts exited with ${code}`);
        reject(err);
        failed(err);
      } else finished(last);
    });
  });
}

/** `relaydesk start --role api` on the benchmark's database, ready to serve. */
async function startApiProcess(
  databaseUrl: string,
  secretKey: Buffer,
  dataDir: string,
): Promise<ChildProcess & { port: number }> {
  const port = await freePort();
  const proc = spawn(
    NODE,
    [path.join(ROOT, 'bin', 'relaydesk.mjs'), 'start', '--role', 'api', '--port', String(port)],
    {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        RELAYDESK_SECRET_KEY: secretKey.toString('base64'),
        RELAYDESK_DATA_DIR: dataDir,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  defer('stop the api process', async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  for (let i = 0; i < 300; i++) {
    if (proc.exitCode !== null) throw new Error(`the api process exited with ${proc.exitCode}`);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return Object.assign(proc, { port });
    await sleep(100);
  }
  throw new Error('the api process did not become ready in 30 s');
}

export async function benchInbound(): Promise<Record<string, unknown>> {
  heading(
    `inbound: ${TOTAL} generated messages through the raw-MIME API; ${SMALL} small ones; Graph webhook ingress`,
  );
  line(
    `load average at the start: ${os
      .loadavg()
      .map((l) => fmt(l, 2))
      .join(' ')}`,
  );
  const dataDir = await tempDir('inbound');
  const port = await freePort();
  const config = benchConfig(dataDir, { port });
  const running = await startRelaydesk({ config, logger: createLogger(config.logLevel) });
  defer('stop relaydesk', () => running.stop());
  const pgPid = await postmasterPid(dataDir);
  const url = `http://127.0.0.1:${port}`;
  const token = running.bootstrap!.adminToken.token;
  const tenantId = running.bootstrap!.tenant.id;
  const pool = running.db.pool;
  const owner = ownerPool(running.db);
  const post = async (p: string, body: unknown) => {
    const res = await fetch(`${url}${p}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return (await res.json()) as any;
  };
  const mailbox = await post('/api/v1/mailboxes', { kind: 'mime', address: 'support@bench.test' });

  const finalCount = async () =>
    (
      await owner.query(
        "SELECT count(*)::int AS n FROM inbound_messages WHERE tenant_id = $1 AND status IN ('created','appended','duplicate','skipped','failed','quarantined')",
        [tenantId],
      )
    ).rows[0].n as number;
  // Each measurement starts with the writes of the one before flushed (the mixed corpus leaves ~3 GB
  // of blobs behind, whose checkpoint would otherwise land in the next measurement).
  const settle = async () => {
    await owner.query('CHECKPOINT');
    await waitForQuietMachine(pgPid);
  };
  const runCorpus = async (count: number, smallOnly: boolean, run: string) => {
    const upload = await preparedUpload({
      mode: 'mime',
      url,
      token,
      mailboxId: mailbox.id,
      count,
      concurrency: 16,
      smallOnly,
      run,
    });
    await settle();
    const before = await finalCount();
    const meter = await cpuMeter(pgPid);
    const started = Date.now();
    const load = upload.go();
    let done = before;
    while (done < before + count) {
      await sleep(100);
      done = await finalCount();
      if (Date.now() - started > 15 * 60_000)
        throw new Error(`only ${done - before} of ${count} messages finished in 15 minutes`);
    }
    const seconds = (Date.now() - started) / 1000;
    const submitted = await load;
    const cores = await meter.end(submitted.cpuSeconds ?? 0);
    return { seconds, perSecond: count / seconds, submitted, cores };
  };

  const full = await runCorpus(TOTAL, false, `full-${randomBytes(3).toString('hex')}`);
  const outcomes = Object.fromEntries(
    (
      await owner.query(
        'SELECT status, count(*)::int AS n FROM inbound_messages WHERE tenant_id = $1 GROUP BY status',
        [tenantId],
      )
    ).rows.map((r) => [r.status, r.n]),
  );
  line(
    `full corpus: ${fmt(full.perSecond, 1)} messages/s end to end (${fmt(full.seconds, 1)} s; accepted at ${fmt(full.submitted.acceptedPerSecond, 1)}/s, ${fmt(full.submitted.megabytes)} MiB); outcomes ${JSON.stringify(outcomes)}`,
  );
  line(`  cores busy: ${coresText(full.cores)}`);
  const small = await runCorpus(SMALL, true, `small-${randomBytes(3).toString('hex')}`);
  line(
    `small messages: ${fmt(small.perSecond, 1)} messages/s end to end (${fmt(small.seconds, 1)} s; accepted at ${fmt(small.submitted.acceptedPerSecond, 1)}/s)`,
  );
  line(`  cores busy: ${coresText(small.cores)}`);

  // What a user feels at a steady load below saturation (100/s is half the mixed corpus's throughput
  // target): the mixed corpus (its first RATE × STEADY_SECONDS messages, with their replies and
  // exact duplicates), evenly paced, under Message-IDs of this run only.
  const runSteady = async () => {
    const watcher = await watchCommits(running.db.url, tenantId);
    const upload = await preparedUpload(
      {
        mode: 'mime',
        url,
        token,
        mailboxId: mailbox.id,
        count: Math.round(RATE * STEADY_SECONDS),
        concurrency: 16,
        smallOnly: false,
        run: `steady-${randomBytes(3).toString('hex')}`,
        rate: RATE,
      },
      (message: { accepted?: string; at?: number }) => {
        if (message.accepted) watcher.accepted(message.accepted, message.at!);
      },
    );
    await settle();
    const meter = await cpuMeter(pgPid);
    const submitted = await upload.go();
    // Messages still pending this long after the last answer count as unfinished.
    const latency = await watcher.finish(120_000);
    const cores = await meter.end(submitted.cpuSeconds ?? 0);
    const met =
      latency.latencyMs.p99 <= STEADY_P99_MS &&
      latency.unfinished === 0 &&
      submitted.failed + submitted.errors === 0 &&
      submitted.offeredPerSecond >= 0.95 * RATE;
    return { ...latency, submitted, cores, met };
  };
  const steady = STEADY_SECONDS > 0 ? await runSteady() : undefined;
  if (steady) {
    const q = (l: { p50: number; p90: number; p99: number; max: number }) =>
      `p50 ${fmt(l.p50)} / p90 ${fmt(l.p90)} / p99 ${fmt(l.p99)} / max ${fmt(l.max)} ms`;
    line(
      `steady ${fmt(RATE)} msg/s for ${fmt(STEADY_SECONDS)} s: ${fmt(steady.submitted.submitted)} mixed messages ${JSON.stringify(steady.submitted.kinds)}, ` +
        `offered at ${fmt(steady.submitted.offeredPerSecond, 1)}/s (sends at most ${fmt(steady.submitted.maxSendLagMs)} ms late), ` +
        `${fmt(steady.messages)} accepted, ${fmt(steady.submitted.failed + steady.submitted.errors)} refused or failed`,
    );
    line(`  accepted → committed: ${q(steady.latencyMs)}; unfinished ${fmt(steady.unfinished)}`);
    line(
      `  (commit seen by polling every ~20 ms; lower bounds ${q(steady.lowerBoundMs)}; ` +
        `bracket mean ${fmt(steady.bracketMs.mean)}, max ${fmt(steady.bracketMs.max)} ms; polls ${fmt(steady.pollIntervalMs.mean)} ms apart on average, at most ${fmt(steady.pollIntervalMs.max)})`,
    );
    line(
      `  due → 202: p50 ${fmt(steady.submitted.acceptMs.p50)} / p99 ${fmt(steady.submitted.acceptMs.p99)} / max ${fmt(steady.submitted.acceptMs.max)} ms; outcomes ${JSON.stringify(steady.outcomes)}`,
    );
    line(`  cores busy: ${coresText(steady.cores)}`);
  }

  // Graph webhook ingress with the inbound workers paused: the notifications name messages nobody
  // will fetch, and what is measured is how fast a burst is made durable (workers drain it later).
  await running.queue.boss.offWork('inbound.process');
  const clientState = randomBytes(16).toString('hex');
  const graphBox = await post('/api/v1/mailboxes', { kind: 'graph', address: 'graph@bench.test' });
  await withTenant(pool, tenantId, (tx) =>
    recordGraphSubscription(tx, graphBox.id, {
      subscriptionId: 'bench',
      clientState,
      expiresAt: new Date(Date.now() + 86_400_000),
    }),
  );
  const graphRun = async (base: string, apiPid: number | undefined, rate?: number) => {
    await settle();
    const meter = await cpuMeter(pgPid, apiPid);
    const result = await child({
      mode: 'graph',
      url: base,
      mailboxId: graphBox.id,
      clientState,
      connections: 50,
      duration: 10,
      ...(rate ? { rate } : {}),
    });
    return { ...result, cores: await meter.end(result.cpuSeconds ?? 0) };
  };
  // This process (all roles): warm-up, saturation, then 120 POSTs/s = 1,200 notifications/s.
  await child({ mode: 'graph', url, mailboxId: graphBox.id, clientState, connections: 50, duration: 3 });
  const graph = await graphRun(url, undefined);
  const graphAtRate = await graphRun(url, undefined, 120);
  // A separate API-role process on the same database.
  const secretKey = Buffer.from((await readFile(path.join(dataDir, 'secret-key'), 'utf8')).trim(), 'base64');
  const api = await startApiProcess(running.db.url, secretKey, dataDir);
  const apiUrl = `http://127.0.0.1:${api.port}`;
  await child({
    mode: 'graph',
    url: apiUrl,
    mailboxId: graphBox.id,
    clientState,
    connections: 50,
    duration: 3,
  });
  const apiGraph = await graphRun(apiUrl, api.pid);
  const apiGraphAtRate = await graphRun(apiUrl, api.pid, 120);

  // The ceiling: the same rows (10 inbound records and their 10 jobs per transaction, as a webhook
  // POST writes them) by bare INSERTs, 50 transactions in flight.
  const ceilingSeconds = 5;
  let inserted = 0;
  const stopAt = Date.now() + ceilingSeconds * 1000;
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (Date.now() < stopAt) {
        const ids = Array.from({ length: 10 }, () => uuidv7());
        await owner.query(
          `WITH i AS (INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer)
                      SELECT $1, id, $2, 'graph', jsonb_build_object('messageId', id::text) FROM unnest($3::uuid[]) AS id)
           INSERT INTO pgboss.job (name, data)
           SELECT 'inbound.process', jsonb_build_object('tenantId', $1::text, 'inboundId', id::text) FROM unnest($3::uuid[]) AS id`,
          [tenantId, graphBox.id, ids],
        );
        inserted += 10;
      }
    }),
  );
  const ceiling = inserted / ceilingSeconds;
  await owner.query("DELETE FROM pgboss.job WHERE name = 'inbound.process' AND state = 'created'");

  const fullMet = full.perSecond >= 200;
  const smallMet = small.perSecond >= 500;
  const graphMet = (saturated: typeof graph, atRate: typeof graph) =>
    saturated.notificationsPerSecond >= 1000 &&
    atRate.notificationsPerSecond >= 1000 &&
    atRate.latencyMs.p99 <= 100 &&
    saturated.non2xx + atRate.non2xx === 0;
  const graphRows = (label: string, saturated: typeof graph, atRate: typeof graph) => [
    [
      `Graph webhook, ${label}, saturated (10 per POST, 50 conns)`,
      `${fmt(saturated.notificationsPerSecond)} notif/s`,
      '≥ 1,000',
      verdict(saturated.notificationsPerSecond >= 1000),
    ],
    ['  p50 / p99 when saturated', `${saturated.latencyMs.p50} / ${saturated.latencyMs.p99} ms`, '', ''],
    [
      `Graph webhook, ${label}, 1,200 notif/s offered`,
      `${fmt(atRate.notificationsPerSecond)} notif/s`,
      '≥ 1,000',
      verdict(atRate.notificationsPerSecond >= 1000),
    ],
    [
      '  p50 / p99 at that rate',
      `${atRate.latencyMs.p50} / ${atRate.latencyMs.p99} ms`,
      'p99 ≤ 100',
      verdict(atRate.latencyMs.p99 <= 100),
    ],
  ];
  // Peak resident memory of this process (the all-roles Relaydesk under test; the load generator is
  // its own process): what the garbage-collector tuning (src/platform/runtime.ts) trades CPU against.
  const peakRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
  const peakRssMet = peakRssMiB <= PEAK_RSS_MIB;
  table([
    ['measure', 'result', 'target', ''],
    [
      `${TOTAL} mixed messages, accepted → committed`,
      `${fmt(full.perSecond, 1)} msg/s`,
      '≥ 200',
      verdict(fullMet),
    ],
    [`${SMALL} small messages`, `${fmt(small.perSecond, 1)} msg/s`, '≥ 500', verdict(smallMet)],
    ...(steady
      ? [
          [
            `${fmt(RATE)} msg/s offered for ${fmt(STEADY_SECONDS)} s, accepted → committed p99`,
            `${fmt(steady.latencyMs.p99)} ms`,
            `≤ ${fmt(STEADY_P99_MS)}`,
            verdict(steady.met),
          ],
          [
            '  p50 / p90 / max',
            `${fmt(steady.latencyMs.p50)} / ${fmt(steady.latencyMs.p90)} / ${fmt(steady.latencyMs.max)} ms`,
            '',
            '',
          ],
        ]
      : []),
    ...graphRows('all roles in one process', graph, graphAtRate),
    ...graphRows('api-role process', apiGraph, apiGraphAtRate),
    ['bare INSERT of the same rows, 10 per tx (ceiling)', `${fmt(ceiling)} rows/s`, '', ''],
    [
      'webhook ÷ ceiling (all roles / api process)',
      `${fmt(graph.notificationsPerSecond / ceiling, 2)} / ${fmt(apiGraph.notificationsPerSecond / ceiling, 2)}`,
      '',
      '',
    ],
  ]);
  line('cores busy per measurement:');
  for (const [label, c] of [
    ['  mixed corpus', full.cores],
    ['  small messages', small.cores],
    ...(steady ? [['  steady rate', steady.cores] as const] : []),
    ['  Graph, all roles, saturated', graph.cores],
    ['  Graph, all roles, 1,200/s', graphAtRate.cores],
    ['  Graph, api process, saturated', apiGraph.cores],
    ['  Graph, api process, 1,200/s', apiGraphAtRate.cores],
  ] as const)
    line(`${label}: ${coresText(c)}`);
  line(
    `server process peak RSS: ${fmt(peakRssMiB)} MiB -> ${verdict(peakRssMet)} (goal <= 1.2 GiB = ${fmt(PEAK_RSS_MIB)} MiB)`,
  );
  const graphJson = (saturated: typeof graph, atRate: typeof graph) => ({
    saturated: {
      notificationsPerSecond: Math.round(saturated.notificationsPerSecond),
      p50Ms: saturated.latencyMs.p50,
      p99Ms: saturated.latencyMs.p99,
      cores: saturated.cores,
    },
    atRate: {
      notificationsPerSecond: Math.round(atRate.notificationsPerSecond),
      p50Ms: atRate.latencyMs.p50,
      p99Ms: atRate.latencyMs.p99,
      cores: atRate.cores,
    },
    non2xx: saturated.non2xx + atRate.non2xx,
    met: graphMet(saturated, atRate),
  });
  return {
    benchmark: 'inbound',
    loadAverage: os.loadavg(),
    full: {
      messages: TOTAL,
      perSecond: Math.round(full.perSecond),
      seconds: full.seconds,
      acceptedPerSecond: Math.round(full.submitted.acceptedPerSecond),
      outcomes,
      cores: full.cores,
      met: fullMet,
    },
    small: { messages: SMALL, perSecond: Math.round(small.perSecond), cores: small.cores, met: smallMet },
    graphWebhook: graphJson(graph, graphAtRate),
    graphWebhookApiProcess: graphJson(apiGraph, apiGraphAtRate),
    latency: steady
      ? {
          rate: RATE,
          seconds: STEADY_SECONDS,
          messages: steady.messages,
          offeredPerSecond: Number(steady.submitted.offeredPerSecond.toFixed(1)),
          maxSendLagMs: steady.submitted.maxSendLagMs,
          refused: steady.submitted.failed + steady.submitted.errors,
          unfinished: steady.unfinished,
          p50Ms: steady.latencyMs.p50,
          p90Ms: steady.latencyMs.p90,
          p99Ms: steady.latencyMs.p99,
          maxMs: steady.latencyMs.max,
          lowerBoundMs: steady.lowerBoundMs,
          bracketMs: steady.bracketMs,
          pollIntervalMs: steady.pollIntervalMs,
          acceptMs: steady.submitted.acceptMs,
          outcomes: steady.outcomes,
          cores: steady.cores,
          goalP99Ms: STEADY_P99_MS,
          met: steady.met,
        }
      : null,
    peakRssMiB,
    peakRssGoalMiB: Math.round(PEAK_RSS_MIB),
    peakRssMet,
    bareInsertRowsPerSecond: Math.round(ceiling),
    webhookToCeiling: Number((graph.notificationsPerSecond / ceiling).toFixed(2)),
    apiProcessWebhookToCeiling: Number((apiGraph.notificationsPerSecond / ceiling).toFixed(2)),
  };
}
