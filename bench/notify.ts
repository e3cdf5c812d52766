// Notification benchmark: `npm run bench -- notify`.
// A whole Relaydesk (API, workers, dispatcher and scheduler in this process, `startRelaydesk`,
// embedded PostgreSQL) turns ticket updates into notifications: each `PATCH /api/v1/tickets/:id`
// that changes the status records `ticket.status_changed` in its transaction; the dispatcher hands it
// to a `notify.fanout` job, which writes one ledger row and one `notify.deliver` job per destination;
// the deliver jobs send through the channel adapters. The receivers and the agents making the
// updates run in a process of their own (notify-peer.ts): one Standard Webhooks receiver per
// endpoint, the Slack Web API simulator, the Bot Framework simulator. 20 tenants
// (BENCH_NOTIFY_TENANTS; 1 is the extreme), each with BENCH_NOTIFY_ENDPOINTS (5) webhook endpoints
// subscribed to the event, a Slack channel rule for its urgent tickets and a Teams channel rule for
// its high-priority ones; 2,000 tickets interleaved over the tenants, the first 3 of each tenant
// urgent and the next 10 high. Slack takes one post a second per channel and Teams seven a second
// per conversation, so the bulk is webhooks (an event of a normal ticket goes to the 5 endpoints).
// 1. Latency: updates PATCHed at a steady rate (BENCH_NOTIFY_RATES, default 200 then 20 events/s)
//    for BENCH_NOTIFY_SECONDS (20), open loop: per delivery, the receiver's arrival time minus the
//    event's occurred_at (clock_timestamp() of its INSERT, just before the update commits: errs long).
//    The target's rate runs last, after everything else (beyond capacity it leaves a backlog), and
//    waits at most BENCH_NOTIFY_LAST_WAIT (120 s) after its updates: what has not arrived by then
//    counts as infinitely late.
// 2. Fan-out throughput: BENCH_NOTIFY_EVENTS (2,000) updates PATCHed with the fan-out and deliver
//    workers off (the dispatcher still runs: every event has its fan-out job), then both workers
//    started: deliveries/s accepted by the receivers from 10 % to 90 % of the arrivals; at the end
//    every notification's ledger row must be `sent` and each receiver must have counted each
//    delivery once.
// 3. Bare: the drain's webhook deliveries again, built, signed and POSTed by the product's functions
//    straight to the same receivers, as many in flight as the deliver workers run (no events, no
//    ledger, no queue, no database); ledger ÷ bare.
// 4. Teams activity validation: POST /hooks/teams with valid signed activities (`typing`, from 200
//    Teams users linked to agents, one bot per tenant, round robin), the JWKS cached; the same with a broken
//    signature; and the token check alone in this process (verifyActivityToken).
// Each measurement waits for a quiet machine first and reports the cores busy: server (this
// process), PG, peer (receivers, simulators, agents), other.
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { startRelaydesk } from '../src/app.ts';
import { notifyDeliverJob, notifyFanoutJob } from '../src/modules/notify/job-refs.ts';
import { BotKeys, verifyActivityToken } from '../src/modules/teams/jwt.ts';
import { createTenant } from '../src/modules/tenants/service.ts';
import { systemClock } from '../src/platform/clock.ts';
import { createLogger } from '../src/platform/logging.ts';
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
import type { LoadResult } from './load.ts';
import { bareWebhooks } from './notify-bare.ts';
import {
  type Arrival,
  arrivalsOf,
  commits,
  deliveryStages,
  eventStages,
  ledgerSince,
  pendingNotifyJobs,
  q,
  rateOf,
  undispatchedEvents,
} from './notify-figures.ts';
import type { NotifyLoadSpec } from './notify-load.ts';
import type { Collected, PatchCommand, PatchResult, PatchTarget } from './notify-peer.ts';
import { type Cores, coresText, cpuMeter, quantiles } from './outbound-figures.ts';

const TENANTS = Number(process.env['BENCH_NOTIFY_TENANTS'] ?? 20);
const ENDPOINTS = Number(process.env['BENCH_NOTIFY_ENDPOINTS'] ?? 5);
const RATES = (process.env['BENCH_NOTIFY_RATES'] ?? '200,20')
  .split(',')
  .map(Number)
  .filter((r) => r > 0);
const SECONDS = Number(process.env['BENCH_NOTIFY_SECONDS'] ?? 20);
const EVENTS = Number(process.env['BENCH_NOTIFY_EVENTS'] ?? 2_000);
/** How long the last latency run (the target's rate) waits for its deliveries after the updates end. */
const LAST_WAIT_SECONDS = Number(process.env['BENCH_NOTIFY_LAST_WAIT'] ?? 120);
const VALIDATION_SECONDS = Number(process.env['BENCH_NOTIFY_VALIDATION_SECONDS'] ?? 10);
const TICKETS = Number(process.env['BENCH_NOTIFY_TICKETS'] ?? 2_000);
/** Per tenant, its first tickets are urgent (Slack), the next ones high (Teams); the rest normal. */
const URGENT = 3;
const HIGH = 10;
const THROUGHPUT_TARGET = 1_000;
const P99_TARGET_MS = 1_000;
const VALIDATION_TARGET = 5_000;
/** What the deliver workers run at most at once: batchSize 20 × concurrency 3 (src/modules/notify/jobs.ts). */
const DELIVER_IN_FLIGHT = 60;
const LOAD_CONNECTIONS = 50;
const SENDERS_PER_TENANT = Math.ceil(200 / TENANTS);

/** The peer process: `ask` sends a command and resolves with its answer. */
async function startPeer(receivers: number) {
  const proc = spawn(NODE, [path.join(ROOT, 'bench', 'notify-peer.ts'), JSON.stringify({ receivers })], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  defer('stop the notification peer', async () => {
    proc.stdin.end();
    await Promise.race([exited, sleep(3_000)]);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const waiting: { resolve: (v: any) => void; reject: (e: Error) => void }[] = [];
  proc.once('exit', (code) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`notify-peer.ts exited with ${code}`));
  });
  readline
    .createInterface({ input: proc.stdout })
    .on('line', (text) => waiting.shift()?.resolve(JSON.parse(text)));
  const next = () => new Promise<any>((resolve, reject) => waiting.push({ resolve, reject }));
  const ready = (await next()) as {
    receivers: string[];
    slack: { url: string; apiBaseUrl: string; botToken: string };
    botframework: {
      url: string;
      tokenUrl: string;
      openIdMetadataUrl: string;
      bot: { appId: string; appPassword: string };
    };
  };
  return {
    pid: proc.pid!,
    ...ready,
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
  targets: PatchTarget[];
  /** Deliveries one event of the ticket makes, by ticket id. */
  fanOut: Map<string, number>;
  /** Endpoint id → its receiver's URL and secret (for the bare run). */
  endpoints: Map<string, { url: string; secret: string }>;
  /** One signer per tenant for /hooks/teams: its bot's app id and a Teams user linked to an agent. */
  senders: { appId: string; userId: string }[];
  openIdMetadataUrl: string;
}

async function prepare(running: Awaited<ReturnType<typeof startRelaydesk>>, peer: Peer): Promise<Scenario> {
  const tokens: string[] = [];
  if (TENANTS === 1) tokens.push(running.bootstrap!.adminToken.token);
  else
    for (let t = 0; t < TENANTS; t++)
      tokens.push((await createTenant(running.db.pool, { name: `notify-bench-${t}` })).adminToken.token);
  const call = async (token: string, method: string, p: string, body: unknown) => {
    const res = await fetch(`${running.url}/api/v1${p}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = (await res.json()) as any;
    if (res.status >= 300) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(answer)}`);
    return answer;
  };
  const bots = [
    peer.botframework.bot,
    ...(
      await peer.ask<{ bots: { appId: string; appPassword: string }[] }>({ cmd: 'bots', count: TENANTS - 1 })
    ).bots,
  ];
  const endpoints = new Map<string, { url: string; secret: string }>();
  const secrets: string[] = [];
  const slackChannels: string[] = [];
  const senders: Scenario['senders'] = [];
  for (const [t, token] of tokens.entries()) {
    for (let e = 0; e < ENDPOINTS; e++) {
      const url = `${peer.receivers[t * ENDPOINTS + e]!}/tenant-${t}/endpoint-${e}`;
      const created = await call(token, 'POST', '/webhook-endpoints', {
        url,
        events: ['ticket.status_changed'],
        description: `bench receiver ${e}`,
      });
      endpoints.set(created.id, { url, secret: created.secret });
      secrets.push(created.secret);
    }
    const channel = `CBENCH${String(t).padStart(4, '0')}`;
    slackChannels.push(channel);
    await call(token, 'PUT', '/integrations/slack', {
      botToken: peer.slack.botToken,
      apiBaseUrl: peer.slack.apiBaseUrl,
    });
    await call(token, 'POST', '/notification-rules', {
      event: 'ticket.status_changed',
      channel: 'slack',
      destination: channel,
      conditions: { priority: ['urgent'] },
    });
    const bot = bots[t]!;
    await call(token, 'PUT', '/integrations/teams', {
      appId: bot.appId,
      appPassword: bot.appPassword,
      tokenUrl: peer.botframework.tokenUrl,
      openIdMetadataUrl: peer.botframework.openIdMetadataUrl,
    });
    // The bot learns the channel from an activity there (its conversation reference).
    const conversationId = `19:bench-${t}@thread.tacv2`;
    const seen = await peer.ask<{ status: number; body: unknown }>({
      cmd: 'teamsChannel',
      endpoint: `${running.url}/hooks/teams`,
      appId: bot.appId,
      conversationId,
    });
    if (seen.status !== 200) throw new Error(`the Teams channel activity answered ${seen.status}`);
    await call(token, 'POST', '/notification-rules', {
      event: 'ticket.status_changed',
      channel: 'teams',
      destination: conversationId,
      conditions: { priority: ['high'] },
    });
    // The Teams users whose activities the validation measurement sends: agents of the tenant, about
    // 200 in all (every activity refreshes its sender's reference: one user alone would queue on one row).
    for (let u = 0; u < SENDERS_PER_TENANT; u++) {
      const userId = `29:bench-agent-${t}-${u}`;
      const agent = await call(token, 'POST', '/people', { displayName: `Agent ${t}.${u}`, kind: 'agent' });
      await call(token, 'POST', `/people/${agent.id}/identities`, { kind: 'teams', externalId: userId });
      senders.push({ appId: bot.appId, userId });
    }
  }
  await peer.ask({ cmd: 'secrets', secrets });
  await peer.ask({ cmd: 'slackChannels', ids: slackChannels });

  // Tickets interleaved over the tenants, so consecutive updates go to different tenants.
  const targets: PatchTarget[] = new Array(TICKETS);
  const fanOut = new Map<string, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < TICKETS; i = next++) {
        const token = tokens[i % TENANTS]!;
        const k = Math.floor(i / TENANTS);
        const priority = k < URGENT ? 'urgent' : k < URGENT + HIGH ? 'high' : 'normal';
        const ticket = await call(token, 'POST', '/tickets', {
          subject: `Printer on floor ${i % 7} does not print`,
          requester: { email: `customer${i}@customer-${i % TENANTS}.test`, name: `Customer ${i}` },
          priority,
        });
        targets[i] = { token, ticketId: ticket.id };
        fanOut.set(ticket.id, ENDPOINTS + (priority === 'normal' ? 0 : 1));
      }
    }),
  );
  return {
    label: TENANTS === 1 ? '1 tenant' : `${TENANTS} tenants`,
    targets,
    fanOut,
    endpoints,
    senders,
    openIdMetadataUrl: peer.botframework.openIdMetadataUrl,
  };
}

interface Latency {
  rate: number;
  events: number;
  refused: number;
  expected: number;
  arrived: number;
  all: ReturnType<typeof quantiles>;
  webhook: ReturnType<typeof quantiles>;
  met: boolean;
  summary: string;
  details: string[];
  json: Record<string, unknown>;
}

interface Drain {
  /** When the drain's updates began (its ledger rows are the newer ones). */
  since: number;
  sustained: number;
  overall: number;
  webhookSustained: number;
  seconds: number;
  arrived: number;
  expected: number;
  allSent: boolean;
  duplicates: number;
  summary: string;
  details: string[];
  json: Record<string, unknown>;
}

export async function benchNotify(): Promise<Record<string, unknown>> {
  heading(
    `notify: events at ${RATES.map((r) => `${fmt(r)}/s`).join(' and ')} for ${fmt(SECONDS)} s, a backlog of ${fmt(EVENTS)} events drained, ` +
      `bare webhooks, Teams activity validation; ${fmt(TENANTS)} tenant${TENANTS === 1 ? '' : 's'} with ${fmt(ENDPOINTS)} webhook endpoints, ` +
      'a Slack channel and a Teams channel each; receivers in their own process',
  );
  const dataDir = await tempDir('notify');
  const port = await freePort();
  const peer = await startPeer(TENANTS * ENDPOINTS);
  // The receivers are on loopback; the simulators' origins are allowed as provider endpoints.
  process.env['RELAYDESK_ALLOW_PRIVATE_WEBHOOKS'] = '1';
  process.env['RELAYDESK_PROVIDER_ORIGINS'] = [peer.slack.url, peer.botframework.url].join(',');
  const config = benchConfig(dataDir, { port, logLevel: process.env['BENCH_LOG_LEVEL'] ?? 'error' });
  const running = await startRelaydesk({ config, logger: createLogger(config.logLevel) });
  defer('stop relaydesk', () => running.stop());
  const pgPid = await postmasterPid(dataDir);
  const owner = ownerPool(running.db);
  const collect = () => peer.ask<Collected>({ cmd: 'collect' });
  const received = async () => {
    const r = await peer.ask<{ webhooks: number; slack: number; teams: number }>({ cmd: 'received' });
    return r.webhooks + r.slack + r.teams;
  };
  const patch = (command: Omit<PatchCommand, 'cmd' | 'url'>) =>
    peer.ask<PatchResult>({ cmd: 'patch', url: running.url, ...command });
  /** Waits until the receivers hold `count` deliveries, or nothing is left to run, or the limit passes. */
  const waitForDeliveries = async (count: number, limitMs: number) => {
    const deadline = Date.now() + limitMs;
    for (let round = 1; ; round++) {
      const n = await received();
      if (n >= count || Date.now() > deadline) return n;
      if (
        round % 20 === 0 &&
        (await undispatchedEvents(owner)) === 0 &&
        (await pendingNotifyJobs(owner)) === 0
      )
        return received();
      await sleep(100);
    }
  };
  const settle = async () => {
    await owner.query('CHECKPOINT');
    await waitForQuietMachine(pgPid, 15);
  };
  /**
   * The deliveries the events recorded since `since` make. (An update answered 200 records no event
   * when an earlier one of its ticket was refused: it sets the status the ticket already has.)
   */
  const recordedFanOut = async (since: number) => {
    const { rows } = await owner.query<{ ticket_id: string; n: number }>(
      `SELECT ticket_id, count(*)::int AS n FROM events
        WHERE type = 'ticket.status_changed' AND occurred_at >= to_timestamp($1::float8 / 1000) GROUP BY 1`,
      [since],
    );
    return rows.reduce((sum, r) => sum + r.n * (scenario.fanOut.get(r.ticket_id) ?? 0), 0);
  };
  /** What to wait for: the deliveries of the updates taken (an estimate when some were refused). */
  const expectedOf = (s: Scenario, posted: PatchResult, count: number) => {
    // Update i went to targets[i % n]; the outcomes are in answer order, so count by status only
    // when all were taken, else estimate from the mean fan-out.
    const taken = posted.outcomes.filter((o) => o.status === 200).length;
    let total = 0;
    for (let i = 0; i < count; i++) total += s.fanOut.get(s.targets[i % s.targets.length]!.ticketId)!;
    return taken === count ? total : Math.round((total * taken) / count);
  };

  const started = Date.now();
  const scenario = await prepare(running, peer);
  line(
    `${scenario.label}: ${fmt(scenario.endpoints.size)} webhook endpoints, ${fmt(TENANTS)} Slack and ${fmt(TENANTS)} Teams channels, ` +
      `${fmt(TICKETS)} tickets (prepared in ${fmt((Date.now() - started) / 1000, 1)} s)`,
  );
  await collect();

  /** Waits at most `waitMs` after the updates for their deliveries (the last run's backlog harms nothing). */
  const latencyRun = async (rate: number, waitMs: number): Promise<Latency> => {
    await settle();
    const meter = await cpuMeter(pgPid, peer.pid);
    const since = Date.now();
    const count = Math.round(rate * SECONDS);
    const posted = await patch({ targets: scenario.targets, count, rate });
    const taken = posted.outcomes.filter((o) => o.status === 200).length;
    const expected = expectedOf(scenario, posted, count);
    await waitForDeliveries(expected, waitMs);
    const cores = await meter();
    const collected = await collect();
    return latencyFigures({
      rate,
      count,
      taken,
      expected: await recordedFanOut(since),
      posted,
      collected,
      since,
      cores,
      waitMs,
    });
  };

  const latencyFigures = async (input: {
    rate: number;
    count: number;
    taken: number;
    expected: number;
    posted: PatchResult;
    collected: Collected;
    since: number;
    cores: Cores;
    waitMs: number;
  }): Promise<Latency> => {
    const { rate, count, taken, expected, posted, collected, since, cores } = input;
    const arrivals = await arrivalsOf(owner, collected, since);
    const timed = arrivals.filter((a) => a.occurredAt !== null);
    // A delivery that had not arrived when the wait ended counts as infinitely late.
    const missing = Math.max(0, expected - arrivals.length);
    const all = quantiles([
      ...timed.map((a) => a.at - a.occurredAt!),
      ...new Array<number>(missing).fill(Infinity),
    ]);
    const webhook = quantiles(timed.filter((a) => a.channel === 'webhook').map((a) => a.at - a.occurredAt!));
    const byChannel = (c: Arrival['channel']) => {
      const list = timed.filter((a) => a.channel === c);
      return list.length
        ? `${c} ${fmt(list.length)}: ${q(quantiles(list.map((a) => a.at - a.occurredAt!)))}`
        : '';
    };
    const refused = count - taken;
    const ledger = await ledgerSince(owner, since);
    const stages = await eventStages(owner, since);
    const sends = await deliveryStages(owner, since);
    const firstDue = Math.min(...posted.outcomes.map((o) => o.dueAt));
    const lastAnswer = Math.max(...posted.outcomes.map((o) => o.answeredAt));
    const answeredPerSecond = taken / Math.max(0.001, (lastAnswer - firstDue) / 1000);
    const met =
      all.p99 <= P99_TARGET_MS &&
      refused === 0 &&
      arrivals.length >= expected &&
      posted.perSecond >= 0.95 * rate &&
      answeredPerSecond >= 0.95 * rate;
    const summary =
      `${fmt(arrivals.length)} of ${fmt(expected)} deliveries arrived${missing > 0 ? ` within ${fmt(input.waitMs / 1000)} s of the last update (the rest count as ∞)` : ''} for ${fmt(taken)} of ${fmt(count)} updates ` +
      `(offered at ${fmt(posted.perSecond, 1)}/s, 200s at ${fmt(answeredPerSecond, 1)}/s, refused ${fmt(refused)}); ` +
      `event → accepted ${q(all)}`;
    const details = [
      [byChannel('webhook'), byChannel('slack'), byChannel('teams')].filter(Boolean).join('; '),
      `update's answer: ${q(quantiles(posted.outcomes.map((o) => o.answeredAt - o.dueAt)))}`,
      `events ${fmt(stages.events)} (not fanned out: ${fmt(stages.notFannedOut)}): occurred → dispatched ${q(stages.toDispatched)}; → fanned out ${q(stages.toFannedOut)}`,
      `ledger row created → marked sending ${q(sends.toSending)}; sending → recorded sent ${q(sends.sending)}`,
      `ledger ${JSON.stringify(ledger.byStatus)}; notifications ${fmt(ledger.notifications)}, sent ${fmt(ledger.sent)}; ` +
        `duplicates ${fmt(collected.webhookDuplicates)}, refused by receivers ${fmt(collected.webhookRefused)}`,
      `cores: ${coresText(cores)}`,
    ];
    return {
      rate,
      events: taken,
      refused,
      expected,
      arrived: arrivals.length,
      all,
      webhook,
      met,
      summary,
      details,
      json: {
        rate,
        updates: count,
        taken,
        offeredPerSecond: Number(posted.perSecond.toFixed(1)),
        answeredPerSecond: Number(answeredPerSecond.toFixed(1)),
        expected,
        arrived: arrivals.length,
        unmatched: arrivals.length - timed.length,
        latencyMs: all,
        webhookLatencyMs: webhook,
        toDispatchedMs: stages.toDispatched,
        toFannedOutMs: stages.toFannedOut,
        ledger: ledger.byStatus,
        duplicates: collected.webhookDuplicates,
        cores,
        met,
      },
    };
  };

  const drainRun = async (): Promise<Drain> => {
    await running.queue.boss.offWork(notifyFanoutJob.name);
    await running.queue.boss.offWork(notifyDeliverJob.name);
    await settle();
    const since = Date.now();
    const enqueueStarted = performance.now();
    const posted = await patch({ targets: scenario.targets, count: EVENTS, concurrency: 32 });
    const enqueueSeconds = (performance.now() - enqueueStarted) / 1000;
    const taken = posted.outcomes.filter((o) => o.status === 200).length;
    let expected = expectedOf(scenario, posted, EVENTS);
    // The dispatcher runs on: every event has its fan-out job before the workers start.
    for (let i = 0; i < 600 && (await undispatchedEvents(owner)) > 0; i++) await sleep(100);
    await collect();
    await settle();
    const commitsBefore = await commits(owner);
    const meter = await cpuMeter(pgPid, peer.pid);
    const startedAt = Date.now();
    await running.queue.startWorkers([notifyFanoutJob.name, notifyDeliverJob.name]);
    await waitForDeliveries(expected, 5 * 60_000);
    expected = await recordedFanOut(since);
    const cores = await meter();
    // Sessions report their counters at most once a second.
    await sleep(1_500);
    const transactions = (await commits(owner)) - commitsBefore;
    const collected = await collect();
    const arrivals = await arrivalsOf(owner, collected, since);
    const rate = rateOf(
      arrivals.map((a) => a.at),
      startedAt,
    );
    const webhookRate = rateOf(
      arrivals.filter((a) => a.channel === 'webhook').map((a) => a.at),
      startedAt,
    );
    const ledger = await ledgerSince(owner, since);
    const stages = await eventStages(owner, since);
    const sends = await deliveryStages(owner, since);
    const count = (c: Arrival['channel']) => arrivals.filter((a) => a.channel === c).length;
    const allSent =
      ledger.notifications === expected && ledger.sent === expected && arrivals.length === expected;
    const n = Math.max(1, arrivals.length);
    const cpuMs = (c: number) => (c * rate.seconds * 1000) / n;
    const summary =
      `${fmt(rate.sustained, 1)} deliveries/s sustained (10 → 90 %), ${fmt(rate.overall, 1)} overall ` +
      `(${fmt(arrivals.length)} of ${fmt(expected)} in ${fmt(rate.seconds, 1)} s); webhooks alone ${fmt(webhookRate.sustained, 1)}/s sustained`;
    const details = [
      `mix: ${fmt(count('webhook'))} webhook, ${fmt(count('slack'))} Slack, ${fmt(count('teams'))} Teams deliveries for ${fmt(taken)} events ` +
        `(${fmt(EVENTS)} updates PATCHed at ${fmt(taken / enqueueSeconds)}/s with the workers off)`,
      `ledger ${JSON.stringify(ledger.byStatus)}; notifications ${fmt(ledger.notifications)}, sent ${fmt(ledger.sent)}: ` +
        `${allSent ? 'every one sent' : 'NOT every one sent'}; receivers: ${fmt(collected.webhookDuplicates)} duplicates, ${fmt(collected.webhookRefused)} refused`,
      `CPU per delivery: Relaydesk ${fmt(cpuMs(cores.server), 2)} ms, PostgreSQL ${fmt(cpuMs(cores.pg), 2)} ms, receivers ${fmt(cpuMs(cores.peer), 2)} ms; ` +
        `${fmt(transactions / n, 1)} transactions committed per delivery; cores: ${coresText(cores)}`,
      `events: fanned out ${q(stages.toFannedOut)} after they occurred (not fanned out: ${fmt(stages.notFannedOut)})`,
      `ledger row created → marked sending ${q(sends.toSending)}; sending → recorded sent ${q(sends.sending)}`,
    ];
    return {
      since,
      sustained: rate.sustained,
      overall: rate.overall,
      webhookSustained: webhookRate.sustained,
      seconds: rate.seconds,
      arrived: arrivals.length,
      expected,
      allSent,
      duplicates: collected.webhookDuplicates,
      summary,
      details,
      json: {
        events: taken,
        enqueuePerSecond: Math.round(taken / enqueueSeconds),
        expected,
        arrived: arrivals.length,
        mix: { webhook: count('webhook'), slack: count('slack'), teams: count('teams') },
        seconds: Number(rate.seconds.toFixed(1)),
        sustainedPerSecond: Number(rate.sustained.toFixed(1)),
        overallPerSecond: Number(rate.overall.toFixed(1)),
        webhookSustainedPerSecond: Number(webhookRate.sustained.toFixed(1)),
        ledger: ledger.byStatus,
        allSent,
        duplicates: collected.webhookDuplicates,
        transactionsPerDelivery: Number((transactions / n).toFixed(2)),
        cpuMsPerDelivery: {
          server: Number(cpuMs(cores.server).toFixed(2)),
          pg: Number(cpuMs(cores.pg).toFixed(2)),
          receivers: Number(cpuMs(cores.peer).toFixed(2)),
        },
        cores,
      },
    };
  };

  // The target's rate runs last: beyond capacity it leaves a backlog, which would spoil what follows.
  const latencies: Latency[] = [];
  const latencyAt = async (rate: number, waitMs: number) => {
    const l = await latencyRun(rate, waitMs);
    latencies.push(l);
    line(`  at ${fmt(rate)} events/s: ${l.summary}`);
    for (const d of l.details) line(`    ${d}`);
  };
  for (const rate of RATES.slice(1)) await latencyAt(rate, 300_000);
  const drain = await drainRun();
  line(`  drain: ${drain.summary}`);
  for (const d of drain.details) line(`    ${d}`);

  const bare = await bareWebhooks({
    owner,
    peer: { pid: peer.pid, collect },
    pgPid,
    since: drain.since,
    endpoints: scenario.endpoints,
    concurrency: DELIVER_IN_FLIGHT,
  });
  line(`  bare webhooks: ${bare.summary}`);

  const validation = await validationRuns(running.url!, peer, scenario, pgPid);
  for (const l of validation.lines) line(`  ${l}`);

  if (RATES[0]) await latencyAt(RATES[0], LAST_WAIT_SECONDS * 1000);
  // In the order of BENCH_NOTIFY_RATES: the target's rate first.
  latencies.unshift(...latencies.splice(-1));

  const latencyMet = latencies[0]?.met ?? false;
  const throughputMet = drain.sustained >= THROUGHPUT_TARGET && drain.allSent && drain.duplicates === 0;
  const validationMet = validation.valid.requestsPerSecond >= VALIDATION_TARGET;
  const ratio = drain.webhookSustained / Math.max(0.001, bare.sustained);
  table([
    ['measure', scenario.label, 'target', ''],
    ...latencies.flatMap((l, k) => [
      [
        `${fmt(l.rate)} events/s for ${fmt(SECONDS)} s: event → accepted p99`,
        `${fmt(l.all.p99)} ms`,
        k === 0 ? `≤ ${fmt(P99_TARGET_MS)}` : '',
        k === 0 ? verdict(l.met) : '',
      ],
      ['  p50 / p95 / max', `${fmt(l.all.p50)} / ${fmt(l.all.p95)} / ${fmt(l.all.max)} ms`, '', ''],
      [
        '  arrived / expected (updates refused)',
        `${fmt(l.arrived)} / ${fmt(l.expected)} (${fmt(l.refused)})`,
        '',
        '',
      ],
    ]),
    [
      `${fmt(EVENTS)} events queued, drained: deliveries/s accepted, sustained`,
      `${fmt(drain.sustained, 1)}/s`,
      `≥ ${fmt(THROUGHPUT_TARGET)}`,
      verdict(throughputMet),
    ],
    [
      '  overall (workers start → last arrival)',
      `${fmt(drain.overall, 1)}/s in ${fmt(drain.seconds, 1)} s`,
      '',
      '',
    ],
    [
      '  every ledger row sent, each delivery once',
      drain.allSent && drain.duplicates === 0 ? 'yes' : 'NO',
      '',
      '',
    ],
    ['  webhooks alone, sustained', `${fmt(drain.webhookSustained, 1)}/s`, '', ''],
    [`bare: the same webhooks, ${DELIVER_IN_FLIGHT} in flight`, `${fmt(bare.sustained, 1)}/s`, '', ''],
    ['ledger ÷ bare (webhooks, sustained)', fmt(ratio, 2), '', ''],
    [
      'POST /hooks/teams, valid signed activities',
      `${fmt(validation.valid.requestsPerSecond)} req/s`,
      `≥ ${fmt(VALIDATION_TARGET)}`,
      verdict(validationMet),
    ],
    [
      '  p50 / p99',
      `${fmt(validation.valid.latencyMs.p50)} / ${fmt(validation.valid.latencyMs.p99)} ms`,
      '',
      '',
    ],
    ['POST /hooks/teams, bad signature (403)', `${fmt(validation.forged.requestsPerSecond)} req/s`, '', ''],
    ['verifyActivityToken in-process, one core', `${fmt(validation.inProcess)}/s`, '', ''],
  ]);

  return {
    benchmark: 'notify',
    tenants: TENANTS,
    endpointsPerTenant: ENDPOINTS,
    seconds: SECONDS,
    events: EVENTS,
    latency: latencies.map((l) => l.json),
    drain: drain.json,
    bare: bare.json,
    ledgerToBare: Number(ratio.toFixed(2)),
    validation: validation.json,
    latencyMet,
    throughputMet,
    validationMet,
  };
}

/** POST /hooks/teams under load (valid, then forged), and the token check alone in this process. */
async function validationRuns(url: string, peer: Peer, s: Scenario, pgPid: number | undefined) {
  const signed = (forge?: string) =>
    peer.ask<{ requests: NotifyLoadSpec['requests']; jwksRequests: number }>({
      cmd: 'signedActivities',
      senders: s.senders,
      ...(forge ? { forge } : {}),
    });
  const load = async (requests: NotifyLoadSpec['requests']) => {
    await waitForQuietMachine(pgPid, 15);
    const meter = await cpuMeter(pgPid, peer.pid);
    const spec: NotifyLoadSpec = {
      url: `${url}/hooks/teams`,
      connections: LOAD_CONNECTIONS,
      duration: VALIDATION_SECONDS,
      requests,
    };
    const result = await new Promise<LoadResult>((resolve, reject) => {
      // The spec on stdin: the signed requests are too long for an argument.
      const child = spawn(NODE, [path.join(ROOT, 'bench', 'notify-load.ts')], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      child.stdin.end(JSON.stringify(spec));
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.on('exit', (code) =>
        code === 0
          ? resolve(JSON.parse(out.trim().split('\n').at(-1)!))
          : reject(new Error(`notify-load.ts exited with ${code}`)),
      );
    });
    // The load generator is this process's child, counted in `other`.
    return { result, cores: await meter() };
  };
  const valid = await signed();
  const valid1 = await load(valid.requests);
  const forged = await signed('bad-signature');
  const forged1 = await load(forged.requests);
  const jwksAfter = (await peer.ask<{ jwksRequests: number }>({ cmd: 'jwksRequests' })).jwksRequests;

  // The token check alone: the route's steps after the integration is found, keys cached.
  const keys = new BotKeys({ clock: systemClock });
  const proofs = valid.requests.map((r, i) => {
    const body = JSON.parse(r.body) as { channelId: string; serviceUrl: string };
    return {
      token: r.headers['authorization']!.replace(/^Bearer /, ''),
      appId: s.senders[i]!.appId,
      metadataUrl: s.openIdMetadataUrl,
      channelId: body.channelId,
      serviceUrl: body.serviceUrl,
    };
  });
  for (const p of proofs) await verifyActivityToken(keys, systemClock, p);
  await waitForQuietMachine(pgPid, 15);
  const startedAt = performance.now();
  let done = 0;
  while (performance.now() - startedAt < 3_000)
    for (const p of proofs) {
      await verifyActivityToken(keys, systemClock, p);
      done++;
    }
  const inProcess = done / ((performance.now() - startedAt) / 1000);

  const text = (label: string, r: { result: LoadResult; cores: Cores }) =>
    `${label}: ${fmt(r.result.requestsPerSecond)} req/s, p50 ${fmt(r.result.latencyMs.p50)} ms, p99 ${fmt(r.result.latencyMs.p99)} ms ` +
    `(${fmt(r.result.ok2xx)} 2xx, ${fmt(r.result.non2xx)} other, ${fmt(r.result.errors)} errors); cores: ${coresText(r.cores)} (load generator in other)`;
  return {
    valid: valid1.result,
    forged: forged1.result,
    inProcess,
    lines: [
      text(`POST /hooks/teams, ${s.senders.length} senders, valid signed activities`, valid1),
      text('POST /hooks/teams, broken signatures', forged1),
      `JWKS fetched ${fmt(jwksAfter - valid.jwksRequests)} times during the runs (${fmt(jwksAfter)} in all); ` +
        `verifyActivityToken in this process: ${fmt(inProcess)}/s on one core`,
    ],
    json: {
      valid: valid1.result,
      validCores: valid1.cores,
      forged: forged1.result,
      forgedCores: forged1.cores,
      jwksFetchesDuringRuns: jwksAfter - valid.jwksRequests,
      inProcessPerSecond: Math.round(inProcess),
    },
  };
}
