// The notification benchmark's figures (bench/notify.ts): what the receivers accepted and when, put
// together with the events and the ledger. Times are epoch ms from one host: the peer process's
// Date.now() (arrivals, answers) and PostgreSQL's clock_timestamp() (an event's occurred_at, taken
// by its INSERT in the update's transaction, just before the commit).
import type { Pool } from '../src/platform/db/pool.ts';
import { fmt } from './lib.ts';
import type { Collected } from './notify-peer.ts';
import { quantiles, type Quantiles } from './outbound-figures.ts';

export const q = (l: Quantiles) =>
  `p50 ${fmt(l.p50)} / p95 ${fmt(l.p95)} / p99 ${fmt(l.p99)} / max ${fmt(l.max)} ms`;

/** One delivery accepted by a receiver, with the time of its event where known. */
export interface Arrival {
  channel: 'webhook' | 'slack' | 'teams';
  at: number;
  /** The event's occurred_at (null: a Slack or Teams send the ledger could not be matched to). */
  occurredAt: number | null;
}

/**
 * Every delivery the receivers accepted. Webhook bodies carry the event's time; Slack posts and Teams
 * sends are matched to their ledger rows by the provider's message id (`channel/ts`; the activity id).
 */
export async function arrivalsOf(owner: Pool, collected: Collected, since: number): Promise<Arrival[]> {
  const out: Arrival[] = collected.webhooks.map((w) => ({
    channel: 'webhook' as const,
    at: w.at,
    occurredAt: w.occurredAt,
  }));
  const { rows } = await owner.query<{ channel: string; id: string; occurred: string }>(
    `SELECT channel, provider_message_id AS id, payload->'content'->>'occurredAt' AS occurred
       FROM deliveries
      WHERE purpose = 'notification' AND channel IN ('slack', 'teams') AND status = 'sent'
        AND provider_message_id IS NOT NULL AND created_at >= to_timestamp($1::float8 / 1000)`,
    [since],
  );
  const slack = new Map<string, number>();
  const teams = new Map<number, number>();
  for (const r of rows) {
    if (r.channel === 'slack') slack.set(r.id, Date.parse(r.occurred));
    // The simulator's activity id is Date.now() (13 digits) followed by its log's length.
    else if (r.id.length > 13) teams.set(Number(r.id.slice(13)), Date.parse(r.occurred));
  }
  for (const s of collected.slack)
    out.push({ channel: 'slack', at: s.at, occurredAt: slack.get(s.key) ?? null });
  for (const t of collected.teams)
    out.push({ channel: 'teams', at: t.at, occurredAt: teams.get(t.seq) ?? null });
  return out;
}

/** Deliveries per second: overall from `startedAt` to the last arrival; sustained between 10 % and 90 % of them. */
export function rateOf(
  at: number[],
  startedAt: number,
): { overall: number; sustained: number; seconds: number } {
  const sorted = [...at].sort((a, b) => a - b);
  if (sorted.length < 10) return { overall: 0, sustained: 0, seconds: 0 };
  const seconds = (sorted.at(-1)! - startedAt) / 1000;
  const lo = Math.floor(sorted.length * 0.1);
  const hi = Math.floor(sorted.length * 0.9);
  return {
    overall: sorted.length / Math.max(0.001, seconds),
    sustained: (hi - lo) / Math.max(0.001, (sorted[hi]! - sorted[lo]!) / 1000),
    seconds,
  };
}

/** The ledger since `since`: attempts by channel and status, notifications, and those sent. */
export async function ledgerSince(owner: Pool, since: number) {
  const { rows } = await owner.query<{ channel: string; status: string; n: number }>(
    `SELECT channel, status, count(*)::int AS n FROM deliveries
      WHERE purpose = 'notification' AND created_at >= to_timestamp($1::float8 / 1000)
      GROUP BY 1, 2 ORDER BY 1, 2`,
    [since],
  );
  const { rows: totals } = await owner.query<{ notifications: number; sent: number }>(
    `SELECT count(DISTINCT notification_id)::int AS notifications,
            count(DISTINCT notification_id) FILTER (WHERE status = 'sent')::int AS sent
       FROM deliveries WHERE purpose = 'notification' AND created_at >= to_timestamp($1::float8 / 1000)`,
    [since],
  );
  const byStatus: Record<string, number> = {};
  for (const r of rows) byStatus[`${r.channel} ${r.status}`] = r.n;
  return { byStatus, notifications: totals[0]!.notifications, sent: totals[0]!.sent };
}

/** The events of a run: how many, and their stages (occurred → dispatched → fanned out). */
export async function eventStages(owner: Pool, since: number) {
  const { rows } = await owner.query<{ dispatched: number | null; fanned: number | null }>(
    `SELECT extract(epoch FROM dispatched_at - occurred_at)::float8 * 1000 AS dispatched,
            extract(epoch FROM fanned_out_at - occurred_at)::float8 * 1000 AS fanned
       FROM events WHERE type = 'ticket.status_changed' AND occurred_at >= to_timestamp($1::float8 / 1000)`,
    [since],
  );
  const notFannedOut = rows.filter((r) => r.fanned === null).length;
  return {
    events: rows.length,
    notFannedOut,
    toDispatched: quantiles(rows.filter((r) => r.dispatched !== null).map((r) => r.dispatched!)),
    toFannedOut: quantiles(rows.filter((r) => r.fanned !== null).map((r) => r.fanned!)),
  };
}

/** Ledger stages of the deliveries since `since`: created (fan-out) → marked sending → recorded sent. */
export async function deliveryStages(owner: Pool, since: number) {
  const { rows } = await owner.query<{ toSending: number; sending: number }>(
    `SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 AS "toSending",
            extract(epoch FROM sent_at - started_at)::float8 * 1000 AS sending
       FROM deliveries WHERE purpose = 'notification' AND status = 'sent'
        AND created_at >= to_timestamp($1::float8 / 1000)`,
    [since],
  );
  return {
    toSending: quantiles(rows.map((r) => r.toSending)),
    sending: quantiles(rows.map((r) => r.sending)),
  };
}

/** notify.fanout and notify.deliver jobs waiting, retrying or running. */
export async function pendingNotifyJobs(owner: Pool): Promise<number> {
  const { rows } = await owner.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pgboss.job
      WHERE name IN ('notify.fanout', 'notify.deliver') AND state IN ('created', 'retry', 'active')`,
  );
  return rows[0]!.n;
}

/** Events not yet dispatched. */
export async function undispatchedEvents(owner: Pool): Promise<number> {
  const { rows } = await owner.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM events WHERE dispatched_at IS NULL',
  );
  return rows[0]!.n;
}

/** Transactions committed so far (all sessions). */
export async function commits(owner: Pool): Promise<number> {
  const { rows } = await owner.query<{ n: number }>(
    'SELECT xact_commit::float8 AS n FROM pg_stat_database WHERE datname = current_database()',
  );
  return rows[0]!.n;
}
