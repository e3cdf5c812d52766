// Outbound benchmark: `npm run bench -- outbound`.
// A whole Relaydesk (API, workers and scheduler in this process, `startRelaydesk`, embedded
// PostgreSQL) sends agents' replies through MIME mailboxes whose settings.smtp point at the SMTP
// simulator, which runs in a process of its own (outbound-peer.ts) together with the agents posting
// the replies. 20 tenants with a mailbox each (BENCH_OUTBOUND_TENANTS; 1 is the extreme: one mailbox,
// one SMTP pool of 5 connections), 2,000 tickets spread over them:
// 1. Reply latency: replies POSTed at a steady rate (BENCH_OUTBOUND_RATES, default 200 then 50 per
//    second: the target's rate, then one below saturation) for BENCH_OUTBOUND_SECONDS (20), open
//    loop, spread over the tickets of every tenant. Per reply, the simulator's arrival time minus the
//    delivery row's created_at (clock_timestamp() of its INSERT in the reply's transaction, which
//    commits right after: the commit, early by the rest of that transaction, so the figure errs
//    long); also minus the moment the agent read the 201 (after the commit: errs short).
// 2. Throughput with the ledger: BENCH_OUTBOUND_MAILS (10,000) replies POSTed through the API with
//    the outbound.send worker off (`offWork`), then the worker started: mails/s taken by the SMTP
//    server while the backlog drains, overall (worker start → last mail) and sustained (10 % → 90 %
//    of the mails). Beside it what a send costs: CPU of Relaydesk and PostgreSQL per mail, database
//    transactions per mail, pg-boss batches (size, fetch → completed), the ledger's own times.
// 3. Bare nodemailer: the same mails (the drained replies' payloads and Message-IDs), each composed
//    by the product's composeMail and sent by one pooled nodemailer transport (maxConnections 5, as
//    each mailbox's) straight to the same simulator, 100 in flight: no ledger, no queue, no database.
// Each measurement waits for a quiet machine first and reports the cores busy: server (this
// process: Relaydesk, and the bare client), PG, peer (simulator and agents), other.
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { startRelaydesk } from '../src/app.ts';
import { outboundSendJob } from '../src/modules/outbound/job-refs.ts';
import { createTenant } from '../src/modules/tenants/service.ts';
import { createLogger } from '../src/platform/logging.ts';
import { bareNodemailer } from './outbound-bare.ts';
import {
  coresText,
  cpuMeter,
  type Drain,
  type DatabaseCounters,
  drainFigures,
  subtractCounters,
  type Latency,
  latencyFigures,
} from './outbound-figures.ts';
import type { PostCommand, PostResult, PostTarget, Received } from './outbound-peer.ts';
import {
  benchConfig,
  defer,
  fmt,
  freePort,
  heading,
  line,
  NODE,
  ownerPool,
  postmasterPid,
  ROOT,
  sleep,
  table,
  tempDir,
  verdict,
  waitForQuietMachine,
} from './lib.ts';

const TENANTS = Number(process.env['BENCH_OUTBOUND_TENANTS'] ?? 20);
/** Steady reply rates; the first is the one the target is set for, the others show latency below saturation. */
const RATES = (process.env['BENCH_OUTBOUND_RATES'] ?? '200,50')
  .split(',')
  .map(Number)
  .filter((r) => r > 0);
const SECONDS = Number(process.env['BENCH_OUTBOUND_SECONDS'] ?? 20);
const MAILS = Number(process.env['BENCH_OUTBOUND_MAILS'] ?? 10_000);
/** Tickets the replies go to, spread over the tenants of a scenario. */
const TICKETS = 2_000;
const P99_TARGET_MS = 1_000;
const THROUGHPUT_TARGET = 500;
/** The maxConnections of Relaydesk's pool per mailbox (src/modules/outbound/transports.ts). */
const MAX_CONNECTIONS = 5;
const REPLY_TEXT =
  'Hello,\n\nthank you for your message. We have looked into it: the printer driver on your laptop ' +
  'is out of date. Please install the current version from the portal and restart the machine; ' +
  'if the problem stays, answer this mail and we will send someone over.\n\nKind regards';

/** The peer process (SMTP simulator and agents): `ask` sends a command and resolves with its answer. */
async function startPeer() {
  const proc = spawn(NODE, [path.join(ROOT, 'bench', 'outbound-peer.ts')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  defer('stop the SMTP peer', async () => {
    proc.stdin.end();
    await Promise.race([exited, sleep(3_000)]);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const waiting: { resolve: (v: any) => void; reject: (e: Error) => void }[] = [];
  proc.once('exit', (code) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`outbound-peer.ts exited with ${code}`));
  });
  readline
    .createInterface({ input: proc.stdout })
    .on('line', (text) => waiting.shift()?.resolve(JSON.parse(text)));
  const next = () => new Promise<any>((resolve, reject) => waiting.push({ resolve, reject }));
  const { port } = (await next()) as { port: number };
  return {
    pid: proc.pid!,
    port,
    ask<T>(command: object): Promise<T> {
      const answer = next();
      proc.stdin.write(`${JSON.stringify(command)}\n`);
      return answer as Promise<T>;
    },
  };
}
type Peer = Awaited<ReturnType<typeof startPeer>>;

interface Scenario {
  label: string;
  tenants: number;
  targets: PostTarget[];
}

/** `tenants` tenants (the bootstrapped one when 1), each with a MIME mailbox sending to the simulator, and TICKETS tickets. */
async function prepare(
  running: Awaited<ReturnType<typeof startRelaydesk>>,
  peer: Peer,
  tenants: number,
): Promise<Scenario> {
  const tokens: string[] = [];
  if (tenants === 1) tokens.push(running.bootstrap!.adminToken.token);
  else
    for (let t = 0; t < tenants; t++)
      tokens.push((await createTenant(running.db.pool, { name: `outbound-bench-${t}` })).adminToken.token);
  const call = async (token: string, p: string, body: unknown) => {
    const res = await fetch(`${running.url}/api/v1${p}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = (await res.json()) as any;
    if (res.status !== 201) throw new Error(`POST ${p}: ${res.status} ${JSON.stringify(answer)}`);
    return answer;
  };
  for (const [t, token] of tokens.entries())
    await call(token, '/mailboxes', {
      kind: 'mime',
      address: `support@t${t}-of-${tenants}.outbound.test`,
      displayName: 'Bench Support',
      settings: { smtp: { host: '127.0.0.1', port: peer.port, security: 'none' } },
    });
  // Tickets interleaved over the tenants, so consecutive replies go to different tenants.
  const targets: PostTarget[] = new Array(TICKETS);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < TICKETS; i = next++) {
        const token = tokens[i % tenants]!;
        const ticket = await call(token, '/tickets', {
          subject: `Printer on floor ${i % 7} does not print`,
          requester: { email: `customer${i}@customer-${i % tenants}.test`, name: `Customer ${i}` },
          message: { text: 'Hello, the printer shows an error and prints nothing. Can you help?' },
        });
        targets[i] = { token, ticketId: ticket.id };
      }
    }),
  );
  return { label: tenants === 1 ? '1 tenant' : `${tenants} tenants`, tenants, targets };
}

export async function benchOutbound(): Promise<Record<string, unknown>> {
  heading(
    `outbound: replies at ${RATES.map((r) => `${fmt(r)}/s`).join(' and ')} for ${fmt(SECONDS)} s, a backlog of ${fmt(MAILS)} drained, ` +
      `bare nodemailer; ${fmt(TENANTS)} tenant${TENANTS === 1 ? '' : 's'} with a mailbox each, SMTP simulator in its own process`,
  );
  const dataDir = await tempDir('outbound');
  const port = await freePort();
  // At a rate beyond capacity every refused request logs a warning; the answers are counted instead.
  const config = benchConfig(dataDir, { port, logLevel: process.env['BENCH_LOG_LEVEL'] ?? 'error' });
  const running = await startRelaydesk({ config, logger: createLogger(config.logLevel) });
  defer('stop relaydesk', () => running.stop());
  const pgPid = await postmasterPid(dataDir);
  const owner = ownerPool(running.db);
  const peer = await startPeer();
  const received = () => peer.ask<{ messages: number; connections: number }>({ cmd: 'received' });
  const collect = async () => (await peer.ask<{ received: Received[] }>({ cmd: 'collect' })).received;
  const post = (command: Omit<PostCommand, 'cmd' | 'url' | 'text'>) =>
    peer.ask<PostResult>({ cmd: 'post', url: running.url, text: REPLY_TEXT, ...command });
  /**
   * Waits until the simulator holds `count` more mails than `base`, or no send job is left to run
   * (an attempt that ended unknown or failed for good sends nothing), or the limit passes.
   */
  const waitForMails = async (base: number, count: number, limitMs: number) => {
    const deadline = Date.now() + limitMs;
    for (let round = 1; ; round++) {
      const now = await received();
      if (now.messages - base >= count || Date.now() > deadline) return now;
      if (round % 20 === 0 && (await pendingSends(owner)) === 0) return received();
      await sleep(100);
    }
  };
  // Each measurement starts with the writes of the one before flushed and the machine as quiet as it gets.
  const settle = async () => {
    await owner.query('CHECKPOINT');
    await waitForQuietMachine(pgPid, 15);
  };

  const latencyRun = async (s: Scenario, rate: number): Promise<Latency> => {
    await collect();
    await settle();
    const base = (await received()).messages;
    const meter = await cpuMeter(pgPid, peer.pid);
    const posted = await post({ targets: s.targets, count: Math.round(rate * SECONDS), rate });
    const accepted = posted.outcomes.filter((o) => o.status === 201).length;
    // A backlog left when the posting ends still counts: its mails arrive late, not never.
    await waitForMails(base, accepted, 180_000);
    const cores = await meter();
    return latencyFigures(owner, { posted, mails: await collect(), cores, targetMs: P99_TARGET_MS, rate });
  };

  const drainRun = async (s: Scenario): Promise<Drain> => {
    await running.queue.boss.offWork(outboundSendJob.name);
    await settle();
    const enqueueMeter = await cpuMeter(pgPid, peer.pid);
    const enqueueStarted = performance.now();
    const posted = await post({ targets: s.targets, count: MAILS, concurrency: 32 });
    const enqueueSeconds = (performance.now() - enqueueStarted) / 1000;
    const enqueueCores = await enqueueMeter();
    const accepted = posted.outcomes.filter((o) => o.status === 201).length;
    await collect();
    await settle();
    const base = await received();
    const counted = await counters(owner);
    const meter = await cpuMeter(pgPid, peer.pid);
    const startedAt = Date.now();
    await running.queue.startWorkers([outboundSendJob.name]);
    const smtp = await waitForMails(base.messages, accepted, 10 * 60_000);
    const cores = await meter();
    // Sessions report their counters at most once a second.
    await sleep(1_500);
    return drainFigures(owner, {
      posted,
      enqueueSeconds,
      enqueueCores,
      startedAt,
      mails: await collect(),
      cores,
      database: subtractCounters(await counters(owner), counted),
      connections: smtp.connections - base.connections,
    });
  };

  const scenario = await prepare(running, peer, TENANTS);
  line(`${scenario.label}: ${fmt(TENANTS)} mailbox${TENANTS === 1 ? '' : 'es'}, ${fmt(TICKETS)} tickets`);
  const latencies: Latency[] = [];
  for (const rate of RATES) {
    const latency = await latencyRun(scenario, rate);
    latencies.push(latency);
    line(`  at ${fmt(rate)}/s: ${latency.summary}`);
    line(`    cores: ${coresText(latency.cores)}`);
  }
  const drain = await drainRun(scenario);
  line(`  drain: ${drain.summary}`);
  for (const l of drain.details) line(`    ${l}`);

  const bare = await bareNodemailer({
    owner,
    peer: { pid: peer.pid, port: peer.port, collect, received },
    pgPid,
    mails: MAILS,
    maxConnections: MAX_CONNECTIONS,
  });
  line(`bare nodemailer: ${bare.summary}`);

  const latencyMet = latencies[0]?.met ?? false;
  const throughputMet = drain.sustained >= THROUGHPUT_TARGET;
  table([
    ['measure', scenario.label, 'target', ''],
    ...latencies.flatMap((l, k) => [
      [
        `${fmt(l.rate)}/s for ${fmt(SECONDS)} s: committed → at SMTP p99`,
        `${fmt(l.fromCommit.p99)} ms`,
        k === 0 ? `≤ ${fmt(P99_TARGET_MS)}` : '',
        k === 0 ? verdict(l.met) : '',
      ],
      [
        '  p50 / p95 / max',
        `${fmt(l.fromCommit.p50)} / ${fmt(l.fromCommit.p95)} / ${fmt(l.fromCommit.max)} ms`,
        '',
        '',
      ],
      [
        '  sent / posted (refused); 201 answers per second',
        `${fmt(l.sent)} / ${fmt(l.posted)} (${fmt(l.refused)}); ${fmt(l.answeredPerSecond)}/s`,
        '',
        '',
      ],
    ]),
    [
      `${fmt(MAILS)} queued, drained: mails/s at SMTP, sustained`,
      `${fmt(drain.sustained, 1)}/s`,
      `≥ ${fmt(THROUGHPUT_TARGET)}`,
      verdict(throughputMet),
    ],
    [
      '  overall (worker start → last mail)',
      `${fmt(drain.overall, 1)}/s in ${fmt(drain.seconds, 1)} s`,
      '',
      '',
    ],
    ['  enqueue through the API (worker off)', `${fmt(drain.enqueuePerSecond)}/s`, '', ''],
    [`bare nodemailer, the same mails, 1 pool of ${MAX_CONNECTIONS}`, `${fmt(bare.sustained, 1)}/s`, '', ''],
    ['ledger ÷ bare (sustained)', fmt(drain.sustained / bare.sustained, 2), '', ''],
  ]);

  return {
    benchmark: 'outbound',
    tenants: TENANTS,
    seconds: SECONDS,
    mails: MAILS,
    latency: latencies.map((l) => l.json),
    drain: drain.json,
    bare: bare.json,
    ledgerToBare: Number((drain.sustained / bare.sustained).toFixed(2)),
    latencyMet,
    throughputMet,
  };
}

/** outbound.send jobs waiting, retrying or running. */
async function pendingSends(owner: ReturnType<typeof ownerPool>): Promise<number> {
  const { rows } = await owner.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND state IN ('created', 'retry', 'active')",
    [outboundSendJob.name],
  );
  return rows[0]!.n;
}

/**
 * The database's counters so far (all sessions): transactions committed, and row writes to the
 * ledger's tables and the job table (updates, and those that were HOT: no index entries written).
 */
async function counters(owner: ReturnType<typeof ownerPool>): Promise<DatabaseCounters> {
  const { rows } = await owner.query<{ commits: number; tables: DatabaseCounters['tables'] }>(
    `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())::float8 AS commits,
            (SELECT jsonb_object_agg(t, jsonb_build_object('ins', ins, 'upd', upd, 'hot', hot)) FROM (
               SELECT CASE WHEN relname LIKE 'deliveries%' THEN 'deliveries' WHEN schemaname = 'pgboss' THEN 'pgboss.job'
                           ELSE relname END AS t,
                      sum(n_tup_ins)::float8 AS ins, sum(n_tup_upd)::float8 AS upd, sum(n_tup_hot_upd)::float8 AS hot
                 FROM pg_stat_all_tables
                WHERE relname LIKE 'deliveries%' OR relname = 'delivery_keys' OR (schemaname = 'pgboss' AND relname LIKE 'job%')
                GROUP BY 1) x) AS tables`,
  );
  return rows[0]!;
}
