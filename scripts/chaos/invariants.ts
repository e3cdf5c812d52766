// The end of the run: what must be true, read from the database (as its owner), the simulators and
// the SMTP sink. Each check says what it counted; a failed one adds a detail line and makes the run fail.
import type pg from 'pg';
import { headerOf } from '../../simulators/sent-mail.ts';
import { CLAIM_SECONDS } from '../../src/modules/sla/scheduler.ts';
import type { FaultLog, Outage } from './faults.ts';
import type { Load } from './feeders.ts';
import type { ChaosTenant, Simulators } from './setup.ts';
import { THRESHOLDS } from './setup.ts';
import type { Traffic } from './traffic.ts';

/**
 * The run's Graph mailboxes as our database and the Graph simulator see them: `live` when Graph has
 * the subscription the mailbox records, `healthy` when it is also healthy (the drain waits for it,
 * the verdict requires it).
 */
export async function graphMailboxes(db: pg.Client, tenantIds: string[], sims: Simulators) {
  const { rows } = await db.query<{
    mailbox_id: string;
    status: string;
    subscription_id: string | null;
    reason: string | null;
  }>(
    `SELECT h.mailbox_id, h.status, h.subscription_id, h.failure_reason AS reason
       FROM mailbox_health h JOIN mailboxes m ON m.tenant_id = h.tenant_id AND m.id = h.mailbox_id
      WHERE h.tenant_id = ANY($1) AND m.kind = 'graph'`,
    [tenantIds],
  );
  const atGraph = new Set(sims.graph.subscriptions().map((x) => x.id));
  return rows.map((r) => {
    const live = r.subscription_id !== null && atGraph.has(r.subscription_id);
    return { ...r, live, healthy: live && r.status === 'healthy' };
  });
}

export interface Verdict {
  ok: boolean;
  /** The one line the run prints. */
  line: string;
  /** Why it failed (and notes worth reading when it did not). */
  details: string[];
}

/** How late a threshold may fire beyond the time nothing could fire it (the scheduler looks every second). */
const ON_TIME_SECONDS = 5;
/** After PostgreSQL is back, processes need a moment to reconnect; a threshold due then is excused this long too. */
const RECONNECT_GRACE_MS = 10_000;

const norm = (id: string | null | undefined): string => (id ?? '').trim().replace(/^<|>$/g, '').toLowerCase();

function overlapMs(from: number, to: number, outages: Outage[]): number {
  let total = 0;
  for (const o of outages) total += Math.max(0, Math.min(to, o.to) - Math.max(from, o.from));
  return total;
}

export async function checkInvariants(ctx: {
  db: pg.Client;
  tenants: ChaosTenant[];
  sims: Simulators;
  load: Load;
  traffic: Traffic;
  faults: FaultLog;
  mode: string;
  minutes: number;
}): Promise<Verdict> {
  const { db, sims, load, traffic, faults } = ctx;
  const details: string[] = [];
  let ok = true;
  const fail = (what: string) => {
    ok = false;
    if (details.length < 60) details.push(what);
  };
  const tenantIds = ctx.tenants.map((t) => t.id);

  // --- Mails: exactly one ticket or comment per accepted mail.
  const ids = load.mails.map((m) => norm(m.messageId));
  const { rows: found } = await db.query<{ mid: string; n: number }>(
    `SELECT lower(btrim(rfc_message_id, '<>')) AS mid, count(*)::int AS n
       FROM ticket_messages
      WHERE tenant_id = ANY($1) AND direction = 'inbound' AND lower(btrim(rfc_message_id, '<>')) = ANY($2)
      GROUP BY 1`,
    [tenantIds, ids],
  );
  const counts = new Map(found.map((r) => [r.mid, r.n]));
  const lost = load.mails.filter((m) => !counts.has(norm(m.messageId)));
  const duplicated = [...counts.values()].filter((n) => n > 1).length;
  if (lost.length > 0) {
    fail(
      `${lost.length} mails lost, e.g. ${lost
        .slice(0, 5)
        .map((m) => `${m.via} <${m.messageId}>`)
        .join(', ')}`,
    );
    const { rows } = await db.query(
      `SELECT source, status, reason, count(*)::int AS n FROM inbound_messages
        WHERE tenant_id = ANY($1) AND status NOT IN ('created', 'appended', 'duplicate')
        GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 10`,
      [tenantIds],
    );
    for (const r of rows) details.push(`  inbound ${r.source} ${r.status} ${r.reason ?? ''}: ${r.n}`);
  }
  if (duplicated > 0) fail(`${duplicated} mails became more than one ticket or comment`);
  const byVia = (via: string) => load.mails.filter((m) => m.via === via).length;

  // --- Replies: each agent reply left once (SMTP sink or Graph sendMail), as its ledger says.
  const wire = new Map<string, number>();
  for (const m of sims.smtp.messages()) wire.set(norm(m.messageId), (wire.get(norm(m.messageId)) ?? 0) + 1);
  for (const m of sims.graph.sent()) {
    const id = norm(headerOf(m.raw, 'message-id'));
    wire.set(id, (wire.get(id) ?? 0) + 1);
  }
  const replyIds = load.replies.map((r) => r.messageId);
  const { rows: replyRows } = await db.query<{
    ticket_message_id: string;
    status: string;
    rfc: string | null;
    error_code: string | null;
    error_message: string | null;
  }>(
    `SELECT DISTINCT ON (ticket_message_id) ticket_message_id, status, rfc_message_id AS rfc, error_code, error_message
       FROM deliveries
      WHERE tenant_id = ANY($1) AND purpose = 'reply' AND ticket_message_id = ANY($2)
      ORDER BY ticket_message_id, attempt DESC`,
    [tenantIds, replyIds],
  );
  const replyBy = new Map(replyRows.map((r) => [r.ticket_message_id, r]));
  let repliesOnce = 0;
  let repliesTwice = 0;
  const replyStates = new Map<string, number>();
  for (const reply of load.replies) {
    const d = replyBy.get(reply.messageId);
    if (!d) {
      fail(`reply ${reply.messageId} on ticket ${reply.ticketId} has no delivery (half-written)`);
      continue;
    }
    replyStates.set(d.status, (replyStates.get(d.status) ?? 0) + 1);
    const n = wire.get(norm(d.rfc)) ?? 0;
    if (n > 1) repliesTwice++;
    if (d.status === 'sent' && n === 1) repliesOnce++;
    if (d.status === 'sent' && n === 0)
      fail(`reply ${reply.messageId}: the ledger says sent, nothing arrived`);
    if (d.status === 'failed' && d.error_code !== 'transient' && d.error_code !== 'throttled')
      details.push(`reply ${reply.messageId} failed: ${d.error_code} ${d.error_message ?? ''}`);
  }
  if (repliesTwice > 0) fail(`${repliesTwice} replies arrived more than once`);

  // --- Notifications: each (notification, channel, destination) delivered once.
  const { rows: notes } = await db.query<{
    channel: string;
    notification_id: string;
    destination: string;
    status: string;
    provider_message_id: string | null;
    sent_attempts: number;
    unknown_attempts: number;
  }>(
    `SELECT DISTINCT ON (notification_id, channel, destination) channel, notification_id, destination, status, provider_message_id,
            count(*) FILTER (WHERE status = 'sent') OVER w::int AS sent_attempts,
            count(*) FILTER (WHERE status = 'unknown') OVER w::int AS unknown_attempts
       FROM deliveries
      WHERE tenant_id = ANY($1) AND purpose = 'notification'
     WINDOW w AS (PARTITION BY notification_id, channel, destination)
      ORDER BY notification_id, channel, destination, attempt DESC`,
    [tenantIds],
  );
  const noteStates = new Map<string, number>();
  for (const n of notes) noteStates.set(n.status, (noteStates.get(n.status) ?? 0) + 1);
  const sentOf = (channel: string) => notes.filter((n) => n.channel === channel);
  // Webhooks: a resend carries the same webhook-id (the receiver de-duplicates); each one the
  // ledger calls sent was accepted by the receiver.
  const accepted = sims.receiver.counts();
  let webhookResent = 0;
  for (const n of sentOf('webhook')) {
    const got = accepted.get(n.notification_id) ?? 0;
    if (n.status === 'sent' && got === 0)
      fail(`webhook ${n.notification_id}: the ledger says sent, the receiver has none`);
    if (got > 1) webhookResent++;
  }
  // Slack: every post the workspace has is one the ledger sent (or could not know about: unknown).
  const slackSent = new Set(
    sentOf('slack')
      .filter((n) => n.provider_message_id)
      .map((n) => n.provider_message_id!),
  );
  const slackUnknown = sentOf('slack').reduce((s, n) => s + n.unknown_attempts, 0);
  const channels = new Set(ctx.tenants.map((t) => t.slackChannel));
  const posts = sims.slack.posts().filter((p) => channels.has(p.requested) || channels.has(p.channel));
  const slackExtra = posts.filter((p) => !slackSent.has(`${p.channel}/${p.ts}`)).length;
  const slackDup = Math.max(0, slackExtra - slackUnknown);
  if (slackDup > 0) fail(`${slackDup} Slack posts the ledger did not send (sent twice)`);
  for (const n of sentOf('slack'))
    if (n.status === 'sent' && !posts.some((p) => `${p.channel}/${p.ts}` === n.provider_message_id))
      fail(`Slack ${n.notification_id}: the ledger says sent, the workspace has no such post`);
  // Teams: the connector's proactive sends against the ledger's sent attempts.
  const teamsSends = sims.bot.sent().filter((s) => s.replyToId === undefined).length;
  const teamsSentAttempts = sentOf('teams').reduce((s, n) => s + n.sent_attempts, 0);
  const teamsUnknown = sentOf('teams').reduce((s, n) => s + n.unknown_attempts, 0);
  const teamsDup = Math.max(0, teamsSends - teamsSentAttempts - teamsUnknown);
  if (teamsDup > 0) fail(`${teamsDup} Teams messages more than the ledger sent (sent twice)`);
  if (teamsSentAttempts > teamsSends)
    fail(`the ledger sent ${teamsSentAttempts} Teams messages, the connector has ${teamsSends}`);
  const notesOnce = notes.filter((n) => n.status === 'sent').length;
  const notesDup = slackDup + teamsDup;

  // --- SLA thresholds: each fired once, on time (late only by what no process could help).
  // A scheduler killed mid-pass, or whose evaluation the database stop failed, leaves its claims to
  // lapse (CLAIM_SECONDS) before another pass takes them: that is the design, so it is excused too.
  const claimLapse = CLAIM_SECONDS * 1000;
  const excuses: Outage[] = [
    ...faults.databaseStops.map((o) => ({
      from: o.from,
      to: Math.max(o.to + RECONNECT_GRACE_MS, o.from + claimLapse),
    })),
    ...faults.schedulerDown.map((o) => ({ from: o.from, to: Math.max(o.to, o.from + claimLapse) })),
  ];
  const { rows: fires } = await db.query<{
    ticket_id: string;
    metric: string;
    percent: number;
    due: number;
    fired: number;
  }>(
    `SELECT ticket_id, metric, percent, extract(epoch FROM due_at) * 1000 AS due, extract(epoch FROM fired_at) * 1000 AS fired
       FROM sla_threshold_fires WHERE tenant_id = ANY($1)`,
    [tenantIds],
  );
  let late = 0;
  let worstLate = 0;
  for (const f of fires) {
    const lateness = f.fired - f.due - overlapMs(f.due, f.fired, excuses);
    worstLate = Math.max(worstLate, (f.fired - f.due) / 1000);
    if (lateness > ON_TIME_SECONDS * 1000) {
      late++;
      if (late <= 5)
        details.push(
          `threshold ${f.metric} ${f.percent}% of ticket ${f.ticket_id} fired ${((f.fired - f.due) / 1000).toFixed(1)} s after it was due`,
        );
    }
  }
  if (late > 0) fail(`${late} thresholds fired late`);
  const { rows: missing } = await db.query<{ ticket_id: string; metric: string; percent: number }>(
    `SELECT c.ticket_id, c.metric, p.percent
       FROM sla_clocks c CROSS JOIN unnest($2::int[]) AS p (percent)
      WHERE c.tenant_id = ANY($1) AND c.metric = 'first_response' AND c.status NOT IN ('cancelled', 'paused')
        AND c.started_at + make_interval(secs => c.target_seconds * p.percent / 100.0) < now() - interval '30 seconds'
        AND (c.fulfilled_at IS NULL OR c.fulfilled_at > c.started_at + make_interval(secs => c.target_seconds * p.percent / 100.0))
        AND NOT EXISTS (SELECT 1 FROM sla_threshold_fires f
                         WHERE f.tenant_id = c.tenant_id AND f.ticket_id = c.ticket_id AND f.metric = c.metric
                           AND f.cycle = c.cycle AND f.percent = p.percent)`,
    [tenantIds, THRESHOLDS],
  );
  if (missing.length > 0)
    fail(
      `${missing.length} thresholds never fired, e.g. ${missing
        .slice(0, 3)
        .map((m) => `${m.metric} ${m.percent}% of ${m.ticket_id}`)
        .join(', ')}`,
    );
  const { rows: twice } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (
       SELECT 1 FROM sla_events WHERE tenant_id = ANY($1) AND type IN ('threshold', 'breached')
        GROUP BY tenant_id, ticket_id, metric, cycle, type, data->>'percent' HAVING count(*) > 1) x`,
    [tenantIds],
  );
  if (twice[0]!.n > 0) fail(`${twice[0]!.n} SLA thresholds recorded more than once`);

  // --- Subscriptions: every Graph mailbox healthy on the subscription Graph has.
  const health = await graphMailboxes(db, tenantIds, sims);
  let healthy = 0;
  for (const h of health) {
    if (h.healthy) healthy++;
    else
      fail(
        `Graph mailbox ${h.mailbox_id}: ${h.status}, subscription ${h.subscription_id ?? 'none'} ${h.live ? 'live' : 'not at Graph'} ${h.reason ?? ''}`,
      );
  }
  const graphCounts = sims.graph.counts();

  // --- Half-written: what must never exist after a crash or a database stop.
  const { rows: half } = await db.query<{ what: string; n: number }>(
    `SELECT 'tickets without a message' AS what, count(*)::int AS n FROM tickets t
      WHERE t.tenant_id = ANY($1) AND NOT EXISTS (SELECT 1 FROM ticket_messages m WHERE m.tenant_id = t.tenant_id AND m.ticket_id = t.id)
     UNION ALL
     SELECT 'inbound records done without their message', count(*)::int FROM inbound_messages i
      WHERE i.tenant_id = ANY($1) AND i.status IN ('created', 'appended')
        AND NOT EXISTS (SELECT 1 FROM ticket_messages m WHERE m.tenant_id = i.tenant_id AND m.id = i.ticket_message_id)
     UNION ALL
     SELECT 'inbound records still queued or processing', count(*)::int FROM inbound_messages i
      WHERE i.tenant_id = ANY($1) AND i.status IN ('queued', 'processing')
     UNION ALL
     SELECT 'events never dispatched', count(*)::int FROM events e WHERE e.tenant_id = ANY($1) AND e.dispatched_at IS NULL
     UNION ALL
     SELECT 'queued deliveries without a job', count(*)::int FROM deliveries d
      WHERE d.tenant_id = ANY($1) AND d.status = 'queued'
        AND NOT EXISTS (SELECT 1 FROM pgboss.job j WHERE j.data->>'deliveryId' = d.id::text)`,
    [tenantIds],
  );
  let halfWritten = 0;
  for (const h of half)
    if (h.n > 0) {
      halfWritten += h.n;
      fail(`${h.n} ${h.what}`);
    }

  // --- Dead letters: each one's work ended somewhere the ledger or the inbound record says.
  const { rows: dead } = await db.query<{ name: string; id: string; explained: boolean; reason: string }>(
    `SELECT j.name, j.id::text,
            CASE WHEN j.data ? 'inboundId' THEN EXISTS (
                   SELECT 1 FROM inbound_messages i WHERE i.id::text = j.data->>'inboundId' AND i.status NOT IN ('queued', 'processing'))
                 WHEN j.data ? 'deliveryId' THEN EXISTS (
                   SELECT 1 FROM deliveries d WHERE d.id::text = j.data->>'deliveryId' AND d.status <> 'queued')
                 ELSE true END AS explained,
            coalesce(o.output->'value'->>'message', o.output->>'message', 'no error recorded') AS reason
       FROM pgboss.job j
       LEFT JOIN LATERAL (SELECT output FROM pgboss.job o
                           WHERE o.name = left(j.name, -5) AND o.data = j.data AND o.state = 'failed'
                           ORDER BY o.completed_on DESC LIMIT 1) o ON true
      WHERE j.name LIKE '%\\_\\_dlq'`,
  );
  const deadReasons = new Map<string, number>();
  for (const d of dead) {
    const reason = d.reason.slice(0, 60);
    deadReasons.set(reason, (deadReasons.get(reason) ?? 0) + 1);
  }
  const deadUnexplained = dead.filter((d) => !d.explained);
  for (const d of deadUnexplained.slice(0, 5)) fail(`dead letter ${d.name} ${d.id} unexplained: ${d.reason}`);
  if (deadUnexplained.length > 5) fail(`${deadUnexplained.length - 5} more dead letters unexplained`);

  // --- Ingress while the database was down: 503, never a 500 or a cut connection.
  const down = traffic.phaseTotals('db-down');
  const all = traffic.phaseTotals('normal');
  for (const [label, n] of down) all.set(label, (all.get(label) ?? 0) + n);
  if (traffic.failed > 0) {
    fail(`${traffic.failed} requests answered 5xx (other than 503), cut without a kill, or not at all`);
    details.push(...traffic.failures.map((f) => `  ${f}`));
  }
  if (faults.restartFailures.length > 0) {
    fail(`${faults.restartFailures.length} processes did not come back after a kill`);
    details.push(...faults.restartFailures.map((f) => `  ${f}`));
  }
  const fmt = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k}×${v}`)
      .join(' ') || 'none';
  const dbStop = faults.databaseStops[0];
  const states = (m: Map<string, number>) => [...m].map(([k, v]) => `${k} ${v}`).join(', ');

  const line =
    `chaos ${ctx.mode} ${ctx.minutes} min: ` +
    `mails accepted ${load.mails.length} (mime ${byVia('mime')}, graph ${byVia('graph')}, imap ${byVia('imap')}) / lost ${lost.length} / duplicated ${duplicated}; ` +
    `replies ${load.replies.length}: sent once ${repliesOnce}, twice ${repliesTwice} (${states(replyStates)}); ` +
    `notifications ${notes.length}: delivered once ${notesOnce}, twice ${notesDup} (${states(noteStates)}; webhook resends de-duplicated ${webhookResent}); ` +
    `thresholds ${fires.length}: fired once, late ${late}, missing ${missing.length} (latest ${worstLate.toFixed(1)} s after due, outages excused); ` +
    `subscriptions healthy ${healthy}/${health.length} (renewed ${graphCounts.renewed}, created ${graphCounts.created}, expired ${faults.subscriptionExpiries}); ` +
    `dead letters ${dead.length} (${fmt(deadReasons)}), explained ${dead.length - deadUnexplained.length}; ` +
    `half-written ${halfWritten}; ` +
    `kills ${faults.kills.length}, database stop ${dbStop ? ((dbStop.to - dbStop.from) / 1000).toFixed(0) : 0} s, ingress while down ${fmt(down)}, all answers ${fmt(all)}; ` +
    (ok ? 'PASS' : 'FAIL');
  return { ok, line, details };
}
