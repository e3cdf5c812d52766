// The outbound benchmark's figures (bench/outbound.ts): what the agents' POSTs answered, what the SMTP
// simulator received and when, and what the ledger and pg-boss recorded, put together per reply.
// Times are epoch ms from one host: the peer process's Date.now() (arrivals, answers) and
// PostgreSQL's clock_timestamp() (the ledger's created_at, started_at, sent_at).
import { readFile } from 'node:fs/promises';
import type { Pool } from '../src/platform/db/pool.ts';
import { fmt, machineBusySeconds, treeCpu, treeCpuDelta } from './lib.ts';
import type { PostResult, Received } from './outbound-peer.ts';

/** Cores busy during a measurement: this process (Relaydesk, the bare client), PostgreSQL, the peer process, the rest. */
export interface Cores {
  server: number;
  pg: number;
  peer: number;
  other: number;
}

export const coresText = (c: Cores) =>
  `server ${fmt(c.server, 2)}, PG ${fmt(c.pg, 2)}, peer ${fmt(c.peer, 2)}, other ${fmt(c.other, 2)}`;

/**
 * CPU seconds of the children `pid` has reaped so far (/proc cutime + cstime): PostgreSQL backends
 * that exited (the pool closes idle connections after 30 s) are missing from a treeCpu snapshot.
 */
async function reapedCpu(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[13]) + Number(f[14])) / 100;
  } catch {
    return 0;
  }
}

/** PostgreSQL's CPU seconds between two snapshots, backends that exited meanwhile included. */
async function postgresCpu(pgPid: number) {
  const tree = await treeCpu(pgPid);
  const reaped = await reapedCpu(pgPid);
  return async () => {
    const after = await treeCpu(pgPid);
    // An exited backend's whole life is in the reaped total; take off what it had used before.
    let before = 0;
    for (const [pid, cpu] of tree) if (!after.has(pid)) before += cpu;
    return treeCpuDelta(tree, after) + (await reapedCpu(pgPid)) - reaped - before;
  };
}

/** CPU counters at a start; the function it answers gives the cores each party kept busy since. */
export async function cpuMeter(pgPid: number | undefined, peerPid: number) {
  const wall = performance.now();
  const machine = await machineBusySeconds();
  const self = process.cpuUsage();
  const pg = pgPid ? await postgresCpu(pgPid) : undefined;
  const peer = await treeCpu(peerPid);
  return async (): Promise<Cores> => {
    const seconds = (performance.now() - wall) / 1000;
    const own = process.cpuUsage(self);
    const server = (own.user + own.system) / 1e6;
    const pgCpu = pg ? await pg() : 0;
    const peerCpu = treeCpuDelta(peer, await treeCpu(peerPid));
    const all = (await machineBusySeconds()) - machine;
    const per = (v: number) => Math.round((100 * v) / seconds) / 100;
    return {
      server: per(server),
      pg: per(pgCpu),
      peer: per(peerCpu),
      other: per(Math.max(0, all - server - pgCpu - peerCpu)),
    };
  };
}

export interface Quantiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function quantiles(values: number[]): Quantiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: Math.round(sorted.at(-1) ?? 0) };
}

const q = (l: Quantiles) =>
  `p50 ${fmt(l.p50)} / p95 ${fmt(l.p95)} / p99 ${fmt(l.p99)} / max ${fmt(l.max)} ms`;

interface LedgerTimes {
  id: string;
  created: number;
  started: number | null;
  sent: number | null;
  status: string;
  /** When pg-boss handed its job to a worker (the batch's fetch; the last one's, after a retry). */
  fetched: number | null;
  /** Runs of its job that failed and were retried (a database error, a lease that ran out). */
  retries: number;
}

/** The ledger rows of these attempts, with their job's fetch time. */
async function ledgerTimes(owner: Pool, ids: string[]): Promise<Map<string, LedgerTimes>> {
  const { rows } = await owner.query<LedgerTimes>(
    `SELECT d.id, extract(epoch FROM d.created_at)::float8 * 1000 AS created,
            extract(epoch FROM d.started_at)::float8 * 1000 AS started,
            extract(epoch FROM d.sent_at)::float8 * 1000 AS sent, d.status,
            extract(epoch FROM j.started_on)::float8 * 1000 AS fetched, coalesce(j.retry_count, 0) AS retries
       FROM deliveries d
       LEFT JOIN pgboss.job j ON j.name = 'outbound.send' AND j.data->>'deliveryId' = d.id::text
      WHERE d.id = ANY($1::uuid[])`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

export interface Latency {
  posted: number;
  /** Answered with something other than 201, or not at all. */
  refused: number;
  /** The refused by answer (HTTP status, or `no answer`). */
  refusedBy: Record<string, number>;
  /** Accepted, and no mail with its Message-ID arrived. */
  unsent: number;
  /** The attempts of the replies that never arrived, by status and error. */
  lostAttempts: string[];
  /** The first attempts' statuses in the ledger (a failed one was followed by another attempt). */
  ledgerStatuses: Record<string, number>;
  sent: number;
  /** Sent after its job failed at least once. */
  retried: number;
  /** Delivery created_at (the commit, early by the rest of its transaction) → arrival at the simulator. */
  fromCommit: Quantiles;
  /** The agent read the 201 → arrival. */
  fromAnswer: Quantiles;
  /** Stages from the ledger: created → job fetched, fetched → marked sending, sending → recorded sent. */
  stages: { toFetch: Quantiles; toSending: Quantiles; sending: Quantiles };
  rate: number;
  offeredPerSecond: number;
  /** 201 answers per second, from the first reply due to the last answer: what the API kept up with. */
  answeredPerSecond: number;
  maxSendLagMs: number;
  acceptMs: Quantiles;
  cores: Cores;
  met: boolean;
  summary: string;
  json: Record<string, unknown>;
}

export async function latencyFigures(
  owner: Pool,
  input: { posted: PostResult; mails: Received[]; cores: Cores; targetMs: number; rate: number },
): Promise<Latency> {
  const { posted, mails, cores, targetMs, rate } = input;
  const accepted = posted.outcomes.filter((o) => o.status === 201 && o.deliveryId && o.messageId);
  const arrived = new Map(mails.map((m) => [m.messageId, m.at]));
  const ledger = await ledgerTimes(
    owner,
    accepted.map((o) => o.deliveryId!),
  );
  const fromCommit: number[] = [];
  const fromAnswer: number[] = [];
  const toFetch: number[] = [];
  const toSending: number[] = [];
  const sending: number[] = [];
  let retried = 0;
  const ledgerStatuses: Record<string, number> = {};
  for (const row of ledger.values()) ledgerStatuses[row.status] = (ledgerStatuses[row.status] ?? 0) + 1;
  for (const o of accepted) {
    const at = arrived.get(o.messageId!);
    const row = ledger.get(o.deliveryId!);
    if (at === undefined || !row) continue;
    if (row.retries > 0) retried++;
    fromCommit.push(at - row.created);
    fromAnswer.push(at - o.answeredAt);
    if (row.fetched !== null) toFetch.push(row.fetched - row.created);
    if (row.fetched !== null && row.started !== null) toSending.push(row.started - row.fetched);
    if (row.started !== null && row.sent !== null) sending.push(row.sent - row.started);
  }
  const refused = posted.outcomes.length - accepted.length + posted.errors;
  const refusedBy: Record<string, number> = posted.errors > 0 ? { 'no answer': posted.errors } : {};
  for (const o of posted.outcomes) if (o.status !== 201) refusedBy[o.status] = (refusedBy[o.status] ?? 0) + 1;
  const firstDue = Math.min(...posted.outcomes.map((o) => o.dueAt));
  const lastAnswer = Math.max(...accepted.map((o) => o.answeredAt));
  const answeredPerSecond = accepted.length / Math.max(0.001, (lastAnswer - firstDue) / 1000);
  const unsent = accepted.length - fromCommit.length;
  // Why the ones that never arrived did not: every attempt of theirs, with how it ended.
  const lost = accepted.filter((o) => !arrived.has(o.messageId!)).map((o) => o.messageId!);
  const { rows: lostRows } = await owner.query<{ status: string; error: string | null; n: number }>(
    `SELECT status, left(error_message, 120) AS error, count(*)::int AS n FROM deliveries
      WHERE rfc_message_id = ANY($1::text[]) GROUP BY 1, 2 ORDER BY 3 DESC`,
    [lost],
  );
  const lostAttempts = lostRows.map((r) => `${r.n} ${r.status}${r.error ? `: ${r.error}` : ''}`);
  const latency = {
    posted: posted.outcomes.length + posted.errors,
    refused,
    refusedBy,
    unsent,
    lostAttempts,
    ledgerStatuses,
    sent: fromCommit.length,
    retried,
    fromCommit: quantiles(fromCommit),
    fromAnswer: quantiles(fromAnswer),
    stages: { toFetch: quantiles(toFetch), toSending: quantiles(toSending), sending: quantiles(sending) },
    rate,
    offeredPerSecond: posted.perSecond,
    answeredPerSecond,
    maxSendLagMs: posted.maxSendLagMs,
    acceptMs: quantiles(posted.outcomes.map((o) => o.answeredAt - o.dueAt)),
    cores,
  };
  // Met at the rate only if the replies were taken (committed) at that rate too.
  const met =
    latency.fromCommit.p99 <= targetMs &&
    refused === 0 &&
    unsent === 0 &&
    posted.perSecond >= 0.95 * rate &&
    answeredPerSecond >= 0.95 * rate;
  const summary =
    `${fmt(latency.sent)} of ${fmt(latency.posted)} posted arrived, ledger ${JSON.stringify(ledgerStatuses)} (offered at ${fmt(posted.perSecond, 1)}/s, sends at most ${fmt(posted.maxSendLagMs)} ms late, ` +
    `201s at ${fmt(answeredPerSecond, 1)}/s, refused ${JSON.stringify(refusedBy)}; ${fmt(retried)} after a failed job run); ` +
    `committed → at SMTP ${q(latency.fromCommit)}; from the 201 ${q(latency.fromAnswer)}; ` +
    `due → 201 ${q(latency.acceptMs)}; stages: created → fetched ${q(latency.stages.toFetch)}, ` +
    `fetched → sending ${q(latency.stages.toSending)}, sending → sent ${q(latency.stages.sending)}` +
    (unsent > 0 ? `; never arrived: ${unsent}, their attempts ${JSON.stringify(lostAttempts)}` : '');
  const { cores: _cores, ...json } = latency;
  return {
    ...latency,
    met,
    summary,
    json: {
      ...json,
      offeredPerSecond: Number(posted.perSecond.toFixed(1)),
      answeredPerSecond: Number(answeredPerSecond.toFixed(1)),
      cores,
      met,
    },
  };
}

/** Counters of pg_stat_database and pg_stat_all_tables (the ledger's tables and pg-boss's job table). */
export interface DatabaseCounters {
  commits: number;
  tables: Record<string, { ins: number; upd: number; hot: number }>;
}

export function subtractCounters(after: DatabaseCounters, before: DatabaseCounters): DatabaseCounters {
  const tables: DatabaseCounters['tables'] = {};
  for (const [table, a] of Object.entries(after.tables)) {
    const b = before.tables[table] ?? { ins: 0, upd: 0, hot: 0 };
    tables[table] = { ins: a.ins - b.ins, upd: a.upd - b.upd, hot: a.hot - b.hot };
  }
  return { commits: after.commits - before.commits, tables };
}

export interface Drain {
  accepted: number;
  enqueuePerSecond: number;
  seconds: number;
  overall: number;
  sustained: number;
  cores: Cores;
  details: string[];
  summary: string;
  json: Record<string, unknown>;
}

/** Mails per second: overall from `startedAt` to the last arrival; sustained between 10 % and 90 % of them. */
export function rateOf(
  mails: Received[],
  startedAt: number,
): { overall: number; sustained: number; seconds: number } {
  const at = mails.map((m) => m.at).sort((a, b) => a - b);
  if (at.length < 10) return { overall: 0, sustained: 0, seconds: 0 };
  const seconds = (at.at(-1)! - startedAt) / 1000;
  const lo = Math.floor(at.length * 0.1);
  const hi = Math.floor(at.length * 0.9);
  return {
    overall: at.length / Math.max(0.001, seconds),
    sustained: (hi - lo) / Math.max(0.001, (at[hi]! - at[lo]!) / 1000),
    seconds,
  };
}

export async function drainFigures(
  owner: Pool,
  input: {
    posted: PostResult;
    enqueueSeconds: number;
    /** Cores busy while the replies were POSTed (worker off). */
    enqueueCores: Cores;
    startedAt: number;
    mails: Received[];
    cores: Cores;
    /** What the database counted during the drain. */
    database: DatabaseCounters;
    /** SMTP connections the simulator accepted during the drain. */
    connections: number;
  },
): Promise<Drain> {
  const accepted = input.posted.outcomes.filter((o) => o.status === 201 && o.deliveryId);
  const rate = rateOf(input.mails, input.startedAt);
  const ledger = await ledgerTimes(
    owner,
    accepted.map((o) => o.deliveryId!),
  );
  const toSending: number[] = [];
  const sending: number[] = [];
  const statuses: Record<string, number> = {};
  let retried = 0;
  for (const row of ledger.values()) {
    statuses[row.status] = (statuses[row.status] ?? 0) + 1;
    if (row.retries > 0) retried++;
    if (row.fetched !== null && row.started !== null) toSending.push(row.started - row.fetched);
    if (row.started !== null && row.sent !== null) sending.push(row.sent - row.started);
  }
  // pg-boss fetches a batch in one statement: its jobs share started_on; they complete together.
  const { rows: batchRows } = await owner.query<{ n: number; ms: number }>(
    `SELECT count(*)::int AS n, extract(epoch FROM max(completed_on) - started_on)::float8 * 1000 AS ms
       FROM pgboss.job WHERE name = 'outbound.send' AND started_on >= to_timestamp($1::float8 / 1000)
      GROUP BY started_on`,
    [input.startedAt],
  );
  const batchSize = quantiles(batchRows.map((b) => b.n));
  const batchMs = quantiles(batchRows.map((b) => b.ms));
  const mean = (values: number[]) => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0);
  const meanBytes = input.mails.reduce((n, m) => n + m.size, 0) / Math.max(1, input.mails.length);
  const n = Math.max(1, input.mails.length);
  const perMail = input.database.commits / n;
  const writes = Object.entries(input.database.tables)
    .map(
      ([table, w]) =>
        `${table} ${fmt(w.ins / n, 1)} inserts and ${fmt(w.upd / n, 1)} updates (${fmt(w.upd > 0 ? (100 * w.hot) / w.upd : 0)} % HOT)`,
    )
    .join('; ');
  // CPU per mail (ms): what the machine must give each send; on 2 cores it bounds the rate.
  const cpuMs = (cores: number, seconds: number, n: number) => (cores * seconds * 1000) / Math.max(1, n);
  const perSend = {
    server: cpuMs(input.cores.server, rate.seconds, input.mails.length),
    pg: cpuMs(input.cores.pg, rate.seconds, input.mails.length),
  };
  const perReply = {
    server: cpuMs(input.enqueueCores.server, input.enqueueSeconds, accepted.length),
    pg: cpuMs(input.enqueueCores.pg, input.enqueueSeconds, accepted.length),
  };
  const details = [
    `CPU per send: Relaydesk ${fmt(perSend.server, 2)} ms, PostgreSQL ${fmt(perSend.pg, 2)} ms; ` +
      `per reply POSTed (worker off): Relaydesk ${fmt(perReply.server, 2)} ms, PostgreSQL ${fmt(perReply.pg, 2)} ms ` +
      `(enqueue cores: ${coresText(input.enqueueCores)})`,
    `${fmt(input.mails.length)} mails of ${fmt(meanBytes)} bytes on average in ${fmt(rate.seconds, 1)} s, ledger ${JSON.stringify(statuses)}, ${fmt(retried)} after a failed job run; ${fmt(input.connections)} new SMTP connections`,
    `${fmt(perMail, 1)} database transactions committed per mail (all sessions, pg_stat_database); per mail: ${writes}`,
    `${fmt(batchRows.length)} pg-boss batches: size mean ${fmt(mean(batchRows.map((b) => b.n)), 1)} (max ${fmt(batchSize.max)}), ` +
      `fetch → all completed ${q(batchMs)}`,
    `job fetched → marked sending ${q(quantiles(toSending))}`,
    `marked sending → recorded sent (credentials, compose, SMTP, record) ${q(quantiles(sending))}`,
  ];
  const enqueuePerSecond = accepted.length / input.enqueueSeconds;
  const summary =
    `${fmt(rate.sustained, 1)} mails/s sustained, ${fmt(rate.overall, 1)} overall (${fmt(input.mails.length)} mails in ${fmt(rate.seconds, 1)} s); ` +
    `enqueued through the API at ${fmt(enqueuePerSecond)}/s`;
  return {
    accepted: accepted.length,
    enqueuePerSecond,
    seconds: rate.seconds,
    overall: rate.overall,
    sustained: rate.sustained,
    cores: input.cores,
    details,
    summary,
    json: {
      accepted: accepted.length,
      received: input.mails.length,
      meanBytes: Math.round(meanBytes),
      enqueuePerSecond: Math.round(enqueuePerSecond),
      seconds: Number(rate.seconds.toFixed(1)),
      overallPerSecond: Number(rate.overall.toFixed(1)),
      sustainedPerSecond: Number(rate.sustained.toFixed(1)),
      statuses,
      retried,
      transactionsPerMail: Number(perMail.toFixed(2)),
      tableWrites: input.database.tables,
      newConnections: input.connections,
      batches: batchRows.length,
      batchSize,
      batchMs,
      fetchedToSendingMs: quantiles(toSending),
      sendingToSentMs: quantiles(sending),
      cores: input.cores,
      enqueueCores: input.enqueueCores,
      cpuMsPerSend: { server: Number(perSend.server.toFixed(2)), pg: Number(perSend.pg.toFixed(2)) },
      cpuMsPerReply: { server: Number(perReply.server.toFixed(2)), pg: Number(perReply.pg.toFixed(2)) },
    },
  };
}
