// Accepted → committed, per message, for the inbound benchmark's steady-rate measurement: how long
// after its 202 a message's ticket or comment is there for a user to see.
//
// "Accepted" is the load generator's wall clock when it read the 202 (Date.now(), a separate process
// on the same host). "Committed" comes from the database: a message's inbound record becomes final
// (created, appended, duplicate, skipped, quarantined) in the very transaction that writes its ticket
// or comment, so the first snapshot that sees the record final also sees the ticket. A separate
// connection (not one of the server's pool) asks every POLL_MS for the records still pending, by id.
// Each message's commit is bracketed:
//   upper bound: clock_timestamp() inside the first poll that saw the record final. It is read while
//     that statement runs, after its snapshot was taken, so the commit came before it.
//   lower bound: the later of the record's updated_at (now() in that transaction: its start, before
//     its commit) and the time the last poll that still saw it pending was sent (its snapshot was
//     taken after that, without the commit).
// The figures reported are the upper bounds: never better than the truth, and worse by at most the
// bracket (about one poll interval plus a poll's duration; its mean and max are reported too).
// updated_at alone would understate every latency by the transaction's own duration.
import pg from 'pg';
import { FINAL_STATUSES } from '../src/modules/inbound/outcomes.ts';
import { defer, sleep } from './lib.ts';

const POLL_MS = 20;

export interface Quantiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface CommitLatency {
  /** Messages accepted (202) during the run. */
  messages: number;
  /** Accepted but not final when the watch gave up (or ended as failed): no ticket for the user. */
  unfinished: number;
  /** Final statuses of the accepted messages (and `failed`, if any). */
  outcomes: Record<string, number>;
  /** Accepted → committed, upper bounds (what is reported). */
  latencyMs: Quantiles;
  /** The same quantiles of the lower bounds. */
  lowerBoundMs: Quantiles;
  /** Upper minus lower bound over the messages: how exact the figures are. */
  bracketMs: { mean: number; max: number };
  /** Time between two polls, as they happened (the server shares this process's event loop). */
  pollIntervalMs: { mean: number; max: number };
}

function quantiles(values: number[]): Quantiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: Math.round(sorted.at(-1) ?? 0) };
}

/**
 * Starts watching a tenant's inbound records: tell it each accepted message (`accepted`), then
 * `finish` waits until all are final (or `timeoutMs` after it was called) and answers the latencies.
 */
export async function watchCommits(databaseUrl: string, tenantId: string) {
  const client = new pg.Client({ connectionString: databaseUrl });
  client.on('error', () => undefined);
  await client.connect();
  let closed = false;
  defer('close the commit watcher', async () => {
    if (!closed) await client.end().catch(() => undefined);
    closed = true;
  });
  const pending = new Map<string, { acceptedAt: number; notBefore: number }>();
  const upper: number[] = [];
  const lower: number[] = [];
  const outcomes: Record<string, number> = {};
  const gaps: number[] = [];
  let messages = 0;
  let finishing = false;
  let giveUpAt = Number.POSITIVE_INFINITY;

  const poll = async () => {
    let lastPoll: number | undefined;
    while (!(finishing && pending.size === 0) && Date.now() < giveUpAt) {
      const sent = Date.now();
      if (pending.size > 0) {
        if (lastPoll !== undefined) gaps.push(sent - lastPoll);
        lastPoll = sent;
        const { rows } = await client.query<{ id: string; status: string; started: number; seen: number }>(
          `SELECT id, status, extract(epoch FROM updated_at)::float8 * 1000 AS started,
                  extract(epoch FROM clock_timestamp())::float8 * 1000 AS seen
             FROM inbound_messages WHERE tenant_id = $1 AND id = ANY($2::uuid[])`,
          [tenantId, [...pending.keys()]],
        );
        for (const row of rows) {
          const message = pending.get(row.id)!;
          const final = (FINAL_STATUSES as readonly string[]).includes(row.status);
          if (final || row.status === 'failed') {
            pending.delete(row.id);
            outcomes[row.status] = (outcomes[row.status] ?? 0) + 1;
            if (!final) continue;
            upper.push(row.seen - message.acceptedAt);
            lower.push(Math.max(row.started, message.notBefore) - message.acceptedAt);
          } else message.notBefore = sent;
        }
      } else lastPoll = undefined;
      await sleep(Math.max(0, POLL_MS - (Date.now() - sent)));
    }
  };
  const polling = poll();
  // A failed poll ends the measurement (finish rethrows it); nothing is left unhandled meanwhile.
  polling.catch(() => undefined);

  return {
    /** A message was accepted as inbound record `id` at `at` (epoch ms, the load generator's clock). */
    accepted(id: string, at: number): void {
      messages++;
      pending.set(id, { acceptedAt: at, notBefore: Number.NEGATIVE_INFINITY });
    },
    async finish(timeoutMs: number): Promise<CommitLatency> {
      finishing = true;
      giveUpAt = Date.now() + timeoutMs;
      await polling;
      await client.end().catch(() => undefined);
      closed = true;
      const brackets = upper.map((u, i) => u - lower[i]!);
      const mean = (values: number[]) =>
        values.length === 0 ? 0 : Math.round(values.reduce((a, b) => a + b, 0) / values.length);
      return {
        messages,
        unfinished: messages - upper.length,
        outcomes,
        latencyMs: quantiles(upper),
        lowerBoundMs: quantiles(lower),
        bracketMs: { mean: mean(brackets), max: Math.round(Math.max(0, ...brackets)) },
        pollIntervalMs: { mean: mean(gaps), max: Math.round(Math.max(0, ...gaps)) },
      };
    },
  };
}
