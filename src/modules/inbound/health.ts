// Mailbox health (DESIGN §5.2): a row per mailbox saying whether mail flows, and holding what keeps
// it flowing (the provider subscription or watch). Upkeep (upkeep.ts) claims due rows and records
// each renewal's result here in one transaction with the subscription it made; webhooks and the
// pipeline note notifications and messages. Every change of status is kept (mailbox_health_events);
// one into or out of trouble is also a `mailbox.health_changed` event that notifications fan out.
import type { SystemTx, TenantTx } from '../../platform/db/tx.ts';
import { notFound } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { recordEvent } from '../events/events.ts';

export const HEALTH_STATUSES = [
  'healthy',
  'renewing',
  'degraded',
  'error',
  'needs_reauth',
  'disabled',
] as const;
export type HealthStatus = (typeof HEALTH_STATUSES)[number];
export type RenewalResult = 'created' | 'renewed' | 'reauthorized' | 'recreated' | 'failed';

/** What `GET /mailboxes/:id/health` answers. */
export interface MailboxHealth {
  status: HealthStatus;
  subscriptionId: string | null;
  expiresAt: string | null;
  lastRenewalAt: string | null;
  lastRenewalResult: RenewalResult | null;
  failureReason: string | null;
  consecutiveFailures: number;
  lastNotificationAt: string | null;
  lastMessageAt: string | null;
  lastReconcileAt: string | null;
  recoveredByLastReconcile: number | null;
  /** False for a Graph or Gmail mailbox not connected to its account yet (isNotConnected). */
  connected: boolean;
}

interface HealthRow {
  mailbox_id: string;
  status: HealthStatus;
  subscription_id: string | null;
  expires_at: string | null;
  last_renewal_at: string | null;
  last_renewal_result: RenewalResult | null;
  failure_reason: string | null;
  consecutive_failures: number;
  last_notification_at: string | null;
  last_message_at: string | null;
  last_reconcile_at: string | null;
  recovered_by_last_reconcile: number | null;
}

// Timestamps come back from the driver as ISO strings (src/platform/db/pool.ts).
const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

const toHealth = (r: HealthRow): MailboxHealth => ({
  status: r.status,
  subscriptionId: r.subscription_id,
  expiresAt: iso(r.expires_at),
  lastRenewalAt: iso(r.last_renewal_at),
  lastRenewalResult: r.last_renewal_result,
  failureReason: r.failure_reason,
  consecutiveFailures: r.consecutive_failures,
  lastNotificationAt: iso(r.last_notification_at),
  lastMessageAt: iso(r.last_message_at),
  lastReconcileAt: iso(r.last_reconcile_at),
  recoveredByLastReconcile: r.recovered_by_last_reconcile,
  connected: !isNotConnected({ status: r.status, failureReason: r.failure_reason }),
});

const HEALTH_COLUMNS = `mailbox_id, status, subscription_id, expires_at, last_renewal_at, last_renewal_result,
  failure_reason, consecutive_failures, last_notification_at, last_message_at, last_reconcile_at,
  recovered_by_last_reconcile`;

/** Why a Graph or Gmail mailbox made without credentials is not healthy: no mail can flow yet. */
export const NOT_CONNECTED_REASON =
  'not connected yet: connect it (POST /api/v1/mailboxes/:id/connect, or Connect in the console) or give it credentials';

/** Whether the health is that of a Graph or Gmail mailbox not connected yet (nothing to renew). */
export const isNotConnected = (h: Pick<MailboxHealth, 'status' | 'failureReason'>): boolean =>
  h.status === 'needs_reauth' && h.failureReason === NOT_CONNECTED_REASON;

/**
 * The health row of a new mailbox (in the transaction that creates it): healthy, except a Graph or
 * Gmail mailbox without credentials, which waits for a person to connect it (needs_reauth, which
 * upkeep leaves alone until credentials come; they make it `renewing`, then the subscription's result).
 */
export async function createHealth(tx: TenantTx, mailboxId: string, connected: boolean): Promise<void> {
  await tx.query(
    `INSERT INTO mailbox_health (tenant_id, mailbox_id, status, failure_reason)
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
    [tx.tenantId, mailboxId, connected ? 'healthy' : 'needs_reauth', connected ? null : NOT_CONNECTED_REASON],
  );
}

export async function getHealth(tx: TenantTx, mailboxId: string): Promise<MailboxHealth> {
  const found = await healthOf(tx, [mailboxId]);
  const health = found.get(mailboxId);
  if (!health) throw notFound('mailbox');
  return health;
}

/** The health of each of the mailboxes (for lists). */
export async function healthOf(tx: TenantTx, mailboxIds: string[]): Promise<Map<string, MailboxHealth>> {
  if (mailboxIds.length === 0) return new Map();
  const { rows } = await tx.query<HealthRow>(
    `SELECT ${HEALTH_COLUMNS} FROM mailbox_health WHERE tenant_id = $1 AND mailbox_id = ANY($2::uuid[])`,
    [tx.tenantId, mailboxIds],
  );
  return new Map(rows.map((r) => [r.mailbox_id, toHealth(r)]));
}

/** What a webhook checks a notification against: the subscription and its clientState. */
export interface SubscriptionProof {
  subscriptionId: string | null;
  clientState: string | null;
}

export async function subscriptionProof(
  tx: TenantTx | SystemTx,
  tenantId: string,
  mailboxId: string,
): Promise<SubscriptionProof> {
  const { rows } = await tx.query<{ subscription_id: string | null; client_state: string | null }>(
    'SELECT subscription_id, client_state FROM mailbox_health WHERE tenant_id = $1 AND mailbox_id = $2',
    [tenantId, mailboxId],
  );
  return { subscriptionId: rows[0]?.subscription_id ?? null, clientState: rows[0]?.client_state ?? null };
}

/**
 * Notes that a notification or push arrived (at most every 10 s per mailbox: a hot row updated by
 * every notification would serialise them; the condition skips a row without waiting for its lock
 * only when it is fresh, which is when it is hot).
 */
export async function noteNotification(tx: TenantTx, mailboxId: string): Promise<void> {
  await tx.query(
    `UPDATE mailbox_health SET last_notification_at = now()
      WHERE tenant_id = $1 AND mailbox_id = $2
        AND (last_notification_at IS NULL OR last_notification_at < now() - interval '10 seconds')`,
    [tx.tenantId, mailboxId],
  );
}

/** Notes that mail of these mailboxes was ingested (at most every 10 s per mailbox, as above). */
export async function noteMessages(tx: TenantTx, mailboxIds: string[]): Promise<void> {
  if (mailboxIds.length === 0) return;
  await tx.query(
    `UPDATE mailbox_health SET last_message_at = now()
      WHERE tenant_id = $1 AND mailbox_id = ANY($2::uuid[])
        AND (last_message_at IS NULL OR last_message_at < now() - interval '10 seconds')`,
    [tx.tenantId, [...new Set(mailboxIds)].sort()],
  );
}

/**
 * Changes the status, keeping the change as an event; nothing when it is already that. A change into
 * or out of trouble is also told (`mailbox.health_changed`) unless `tell` is false.
 */
async function setStatus(
  tx: TenantTx,
  mailboxId: string,
  to: HealthStatus,
  reason: string | null,
  tell = true,
): Promise<void> {
  const { rows } = await tx.query<{ from_status: HealthStatus }>(
    `UPDATE mailbox_health h SET status = $3, updated_at = now()
       FROM (SELECT status AS from_status FROM mailbox_health WHERE tenant_id = $1 AND mailbox_id = $2 FOR UPDATE) old
      WHERE h.tenant_id = $1 AND h.mailbox_id = $2 AND h.status <> $3
      RETURNING old.from_status`,
    [tx.tenantId, mailboxId, to],
  );
  if (!rows[0]) return;
  await tx.query(
    `INSERT INTO mailbox_health_events (tenant_id, id, mailbox_id, from_status, to_status, reason)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [tx.tenantId, uuidv7(), mailboxId, rows[0].from_status, to, reason],
  );
  // People hear of trouble (mail stopped, a person must act) and of its end, not of every renewal
  // or a passing failure (healthy → renewing → degraded → healthy).
  const from = rows[0].from_status;
  if (tell && FLOWING.has(from) !== FLOWING.has(to)) {
    const { rows: mailbox } = await tx.query<{ address: string }>(
      'SELECT address FROM mailboxes WHERE tenant_id = $1 AND id = $2',
      [tx.tenantId, mailboxId],
    );
    await recordEvent(tx, {
      type: 'mailbox.health_changed',
      mailboxId,
      // `error` only into trouble: a mailbox healthy again carries what mended it in `reason`.
      data: {
        mailboxId,
        address: mailbox[0]?.address ?? null,
        from,
        status: to,
        error: FLOWING.has(to) ? null : reason,
        reason,
      },
    });
  }
}

/** Statuses of a mailbox whose mail flows (or will again without anyone acting): changes among them are routine. */
const FLOWING = new Set<HealthStatus>(['healthy', 'renewing', 'degraded']);

export interface HealthEvent {
  id: string;
  from: HealthStatus;
  to: HealthStatus;
  reason: string | null;
  at: string;
}

/** The mailbox's status changes, newest first. */
export async function healthEvents(tx: TenantTx, mailboxId: string, limit = 50): Promise<HealthEvent[]> {
  const { rows } = await tx.query<{
    id: string;
    from_status: HealthStatus;
    to_status: HealthStatus;
    reason: string | null;
    created_at: string;
  }>(
    `SELECT id, from_status, to_status, reason, created_at FROM mailbox_health_events
      WHERE tenant_id = $1 AND mailbox_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3`,
    [tx.tenantId, mailboxId, limit],
  );
  return rows.map((r) => ({
    id: r.id,
    from: r.from_status,
    to: r.to_status,
    reason: r.reason,
    at: iso(r.created_at)!,
  }));
}

/** A mailbox due for upkeep, claimed for `leaseSeconds`: the renewal acts while it holds `claimId`. */
export interface DueMailbox {
  tenantId: string;
  mailboxId: string;
  kind: 'graph' | 'gmail';
  claimId: string;
}

export interface DueRules {
  /** The time upkeep runs on (the injected clock). */
  now: Date;
  /** Renew what expires within this many seconds. */
  lookAheadSeconds: number;
  /** Renew what was last renewed longer ago than this (a safety net beside the expiry). */
  maxAgeSeconds: number;
  /** How long a claim keeps other schedulers off (a crashed renewal comes back after it). */
  leaseSeconds: number;
  limit: number;
}

/**
 * Claims Graph and Gmail mailboxes due for upkeep across tenants (SKIP LOCKED, leased): without a
 * subscription or watch, expiring within the look-ahead, renewed too long ago, or flagged by a
 * lifecycle notification; not while a failure's backoff or a Retry-After runs, and not when only a
 * person can mend them (needs_reauth, disabled) or they have no credentials.
 */
export async function claimDueMailboxes(sys: SystemTx, rules: DueRules): Promise<DueMailbox[]> {
  const { rows } = await sys.query<{
    tenant_id: string;
    mailbox_id: string;
    kind: 'graph' | 'gmail';
    claim_id: string;
  }>(
    `WITH due AS (
       SELECT h.tenant_id, h.mailbox_id, m.kind
         FROM mailbox_health h JOIN mailboxes m ON m.tenant_id = h.tenant_id AND m.id = h.mailbox_id
        WHERE m.kind IN ('graph', 'gmail') AND m.credentials IS NOT NULL
          AND h.status NOT IN ('needs_reauth', 'disabled')
          AND (h.claimed_until IS NULL OR h.claimed_until < $1)
          AND (h.not_before IS NULL OR h.not_before <= $1)
          AND (h.subscription_id IS NULL OR h.pending IS NOT NULL
               OR h.expires_at IS NULL OR h.expires_at < $1 + make_interval(secs => $2)
               OR h.last_renewal_at IS NULL OR h.last_renewal_at < $1 - make_interval(secs => $3))
        ORDER BY h.expires_at NULLS FIRST
        LIMIT $5
          FOR UPDATE OF h SKIP LOCKED
     )
     UPDATE mailbox_health h SET claim_id = gen_random_uuid(), claimed_until = $1 + make_interval(secs => $4)
       FROM due WHERE h.tenant_id = due.tenant_id AND h.mailbox_id = due.mailbox_id
     RETURNING h.tenant_id, h.mailbox_id, due.kind, h.claim_id`,
    [rules.now, rules.lookAheadSeconds, rules.maxAgeSeconds, rules.leaseSeconds, rules.limit],
  );
  return rows.map((r) => ({
    tenantId: r.tenant_id,
    mailboxId: r.mailbox_id,
    kind: r.kind,
    claimId: r.claim_id,
  }));
}

/**
 * Claims one mailbox for a renewal asked for now (API, lifecycle, new credentials); its claim id,
 * or undefined while another renewal holds it.
 */
export async function claimMailbox(
  tx: TenantTx,
  mailboxId: string,
  now: Date,
  leaseSeconds: number,
): Promise<string | undefined> {
  const { rows } = await tx.query<{ claim_id: string }>(
    `UPDATE mailbox_health SET claim_id = gen_random_uuid(), claimed_until = $3 + make_interval(secs => $4),
            not_before = NULL
      WHERE tenant_id = $1 AND mailbox_id = $2
        AND (claimed_until IS NULL OR claimed_until < $3
             -- A renewal only waiting out its backoff is taken over (its delayed job then finds its
             -- claim gone); one waiting out a provider's Retry-After is not.
             OR (not_before > $3 AND failure_kind IS DISTINCT FROM 'rate_limited'))
      RETURNING claim_id`,
    [tx.tenantId, mailboxId, now, leaseSeconds],
  );
  return rows[0]?.claim_id;
}

/** Keeps a claim for a retry that waits (a Retry-After, a backoff): false when it was lost meanwhile. */
export async function extendClaim(
  tx: TenantTx,
  mailboxId: string,
  claimId: string,
  until: Date,
): Promise<boolean> {
  const { rowCount } = await tx.query(
    'UPDATE mailbox_health SET claimed_until = $4 WHERE tenant_id = $1 AND mailbox_id = $2 AND claim_id = $3',
    [tx.tenantId, mailboxId, claimId, until],
  );
  return rowCount === 1;
}

/** The subscription state upkeep works from. */
export interface UpkeepState {
  status: HealthStatus;
  subscriptionId: string | null;
  clientState: string | null;
  expiresAt: Date | null;
  pending: 'reauthorize' | 'recreate' | null;
  consecutiveFailures: number;
  claimId: string | null;
}

export async function upkeepState(tx: TenantTx, mailboxId: string): Promise<UpkeepState> {
  const { rows } = await tx.query<{
    status: HealthStatus;
    subscription_id: string | null;
    client_state: string | null;
    expires_at: string | null;
    pending: 'reauthorize' | 'recreate' | null;
    consecutive_failures: number;
    claim_id: string | null;
  }>(
    `SELECT status, subscription_id, client_state, expires_at, pending, consecutive_failures, claim_id
       FROM mailbox_health WHERE tenant_id = $1 AND mailbox_id = $2`,
    [tx.tenantId, mailboxId],
  );
  if (!rows[0]) throw notFound('mailbox');
  const r = rows[0];
  return {
    status: r.status,
    subscriptionId: r.subscription_id,
    clientState: r.client_state,
    expiresAt: r.expires_at === null ? null : new Date(r.expires_at),
    pending: r.pending,
    consecutiveFailures: r.consecutive_failures,
    claimId: r.claim_id,
  };
}

/** Marks a mailbox as renewing while it has no working subscription (creating or recreating one). */
export async function markRenewing(tx: TenantTx, mailboxId: string, reason: string): Promise<void> {
  await setStatus(tx, mailboxId, 'renewing', reason);
}

/**
 * A renewal that worked: the subscription it leaves, in the same transaction as the health; the
 * claim ends. With `claimId`, only while that claim is the mailbox's (false otherwise: a later claim
 * or new credentials superseded it, and nothing is written). A lifecycle flag raised after the
 * renewal read its state (`pendingRead` is what it read) stays for the next renewal.
 */
export async function recordRenewed(
  tx: TenantTx,
  mailboxId: string,
  outcome: {
    result: Exclude<RenewalResult, 'failed'>;
    subscriptionId: string;
    clientState: string | null;
    expiresAt: Date;
    now?: Date;
    claimId?: string;
    pendingRead?: 'reauthorize' | 'recreate' | null;
  },
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE mailbox_health SET subscription_id = $3, client_state = $4, expires_at = $5,
            last_renewal_at = coalesce($7::timestamptz, now()), last_renewal_result = $6, failure_reason = NULL,
            failure_kind = NULL, consecutive_failures = 0, not_before = NULL, claim_id = NULL, claimed_until = NULL,
            pending = CASE WHEN $9::boolean OR pending IS NOT DISTINCT FROM $10::text THEN NULL ELSE pending END,
            updated_at = now()
      WHERE tenant_id = $1 AND mailbox_id = $2 AND ($8::uuid IS NULL OR claim_id = $8::uuid)`,
    [
      tx.tenantId,
      mailboxId,
      outcome.subscriptionId,
      outcome.clientState,
      outcome.expiresAt,
      outcome.result,
      outcome.now ?? null,
      outcome.claimId ?? null,
      outcome.pendingRead === undefined,
      outcome.pendingRead ?? null,
    ],
  );
  if (rowCount !== 1) return false;
  await setStatus(tx, mailboxId, 'healthy', outcome.result);
  return true;
}

/** Whether a lifecycle flag waits for a renewal (raised while the last one ran). */
export async function pendingFlag(tx: TenantTx, mailboxId: string): Promise<boolean> {
  const { rows } = await tx.query<{ pending: string | null }>(
    'SELECT pending FROM mailbox_health WHERE tenant_id = $1 AND mailbox_id = $2',
    [tx.tenantId, mailboxId],
  );
  return Boolean(rows[0]?.pending);
}

export type FailureKind = 'auth' | 'rate_limited' | 'transient' | 'permanent';

/**
 * A renewal that failed. Credentials the provider refused → needs_reauth (no retry until a person
 * mends them); otherwise degraded, and error after `errorAfter` consecutive failures. `retryAt` is
 * when it is tried again (a Retry-After, or the caller's backoff with jitter): the claim is kept
 * until then when `keepClaim` (the renewal job comes back itself), else released.
 */
export async function recordRenewalFailed(
  tx: TenantTx,
  mailboxId: string,
  failure: {
    kind: FailureKind;
    reason: string;
    now: Date;
    retryAt: Date;
    errorAfter: number;
    keepClaim: boolean;
    /** Only while this claim is the mailbox's (answers undefined when superseded: nothing written). */
    claimId?: string;
  },
): Promise<HealthStatus | undefined> {
  const reason = failure.reason.slice(0, 1000);
  const { rows } = await tx.query<{ consecutive_failures: number }>(
    `UPDATE mailbox_health SET last_renewal_at = $5::timestamptz, last_renewal_result = 'failed', failure_reason = $3,
            failure_kind = $7,
            consecutive_failures = consecutive_failures + 1, not_before = $4::timestamptz,
            claim_id = CASE WHEN $6::boolean THEN claim_id END, claimed_until = CASE WHEN $6::boolean THEN $4::timestamptz END,
            updated_at = now()
      WHERE tenant_id = $1 AND mailbox_id = $2 AND ($8::uuid IS NULL OR claim_id = $8::uuid)
      RETURNING consecutive_failures`,
    [
      tx.tenantId,
      mailboxId,
      reason,
      failure.retryAt,
      failure.now,
      failure.keepClaim,
      failure.kind,
      failure.claimId ?? null,
    ],
  );
  if (!rows[0]) return undefined;
  const status: HealthStatus =
    failure.kind === 'auth'
      ? 'needs_reauth'
      : rows[0].consecutive_failures >= failure.errorAfter
        ? 'error'
        : 'degraded';
  await setStatus(tx, mailboxId, status, reason);
  return status;
}

/** Flags what a lifecycle notification asked for; upkeep does it at once. */
export async function flagLifecycle(
  tx: TenantTx,
  mailboxId: string,
  pending: 'reauthorize' | 'recreate',
): Promise<void> {
  await tx.query(
    `UPDATE mailbox_health SET pending = CASE WHEN pending = 'recreate' THEN 'recreate' ELSE $3 END, not_before = NULL
      WHERE tenant_id = $1 AND mailbox_id = $2`,
    [tx.tenantId, mailboxId, pending],
  );
}

/**
 * New credentials (or a new connection by OAuth): whatever a person had to mend is mended; upkeep
 * subscribes again. Credentials that cannot carry mail (removed; a Graph or Gmail mailbox's own app
 * secret alone, still to be connected) leave it not connected, which is news only if mail flowed.
 */
export async function credentialsChanged(tx: TenantTx, mailboxId: string, connected: boolean): Promise<void> {
  // A mailbox connected for the first time was never in trouble: its way out is no news to anyone.
  const { rows: before } = await tx.query<{ first: boolean }>(
    `SELECT status = 'needs_reauth' AND failure_reason = $3 AS first
       FROM mailbox_health WHERE tenant_id = $1 AND mailbox_id = $2`,
    [tx.tenantId, mailboxId, NOT_CONNECTED_REASON],
  );
  await tx.query(
    `UPDATE mailbox_health SET consecutive_failures = 0, not_before = NULL, failure_reason = NULL, failure_kind = NULL,
            pending = CASE WHEN subscription_id IS NULL THEN NULL ELSE 'recreate' END,
            -- A renewal in flight works with the old credentials: its claim ends, so what it finds
            -- (a refusal of the old token above all) is not recorded over the new ones.
            claim_id = NULL, claimed_until = NULL
      WHERE tenant_id = $1 AND mailbox_id = $2`,
    [tx.tenantId, mailboxId],
  );
  const { rows } = await tx.query<{ status: HealthStatus }>(
    'SELECT status FROM mailbox_health WHERE tenant_id = $1 AND mailbox_id = $2',
    [tx.tenantId, mailboxId],
  );
  if (!connected) {
    await tx.query('UPDATE mailbox_health SET failure_reason = $3 WHERE tenant_id = $1 AND mailbox_id = $2', [
      tx.tenantId,
      mailboxId,
      NOT_CONNECTED_REASON,
    ]);
    if (rows[0] && rows[0].status !== 'disabled')
      await setStatus(tx, mailboxId, 'needs_reauth', NOT_CONNECTED_REASON, !before[0]?.first);
    return;
  }
  if (rows[0] && rows[0].status !== 'healthy' && rows[0].status !== 'disabled')
    await setStatus(
      tx,
      mailboxId,
      'renewing',
      before[0]?.first ? 'connected' : 'credentials changed',
      !before[0]?.first,
    );
}

/** Mailboxes whose scheduled reconciliation is due, across tenants, claimed for `leaseSeconds`. */
export async function claimDueReconciles(
  sys: SystemTx,
  rules: { now: Date; intervalSeconds: number; leaseSeconds: number; limit: number },
): Promise<{ tenantId: string; mailboxId: string }[]> {
  const { rows } = await sys.query<{ tenant_id: string; mailbox_id: string }>(
    `WITH due AS (
       SELECT h.tenant_id, h.mailbox_id
         FROM mailbox_health h JOIN mailboxes m ON m.tenant_id = h.tenant_id AND m.id = h.mailbox_id
        WHERE m.kind IN ('graph', 'gmail', 'imap') AND m.credentials IS NOT NULL
          AND h.status NOT IN ('needs_reauth', 'disabled')
          AND (h.reconcile_claimed_until IS NULL OR h.reconcile_claimed_until < $1)
          AND coalesce(h.reconcile_next_at, h.last_reconcile_at + make_interval(secs => $2), $1) <= $1
        LIMIT $4
          FOR UPDATE OF h SKIP LOCKED
     )
     UPDATE mailbox_health h SET reconcile_claimed_until = $1 + make_interval(secs => $3),
            reconcile_next_at = $1 + make_interval(secs => $2)
       FROM due WHERE h.tenant_id = due.tenant_id AND h.mailbox_id = due.mailbox_id
     RETURNING h.tenant_id, h.mailbox_id`,
    [rules.now, rules.intervalSeconds, rules.leaseSeconds, rules.limit],
  );
  return rows.map((r) => ({ tenantId: r.tenant_id, mailboxId: r.mailbox_id }));
}

/**
 * Claims one mailbox's reconciliation now (API, lifecycle, after a recreate); false while one runs.
 * With `again`, a reconciliation asked for while one runs is noted, and run when that one ends
 * (recordReconciled answers so): it may have read the folder before the mail in question arrived.
 */
export async function claimReconcile(
  tx: TenantTx,
  mailboxId: string,
  now: Date,
  leaseSeconds: number,
  again = false,
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE mailbox_health SET reconcile_claimed_until = $3::timestamptz + make_interval(secs => $4), reconcile_again = false
      WHERE tenant_id = $1 AND mailbox_id = $2
        AND (reconcile_claimed_until IS NULL OR reconcile_claimed_until < $3::timestamptz)`,
    [tx.tenantId, mailboxId, now, leaseSeconds],
  );
  if (rowCount === 1) return true;
  if (again)
    await tx.query(
      'UPDATE mailbox_health SET reconcile_again = true WHERE tenant_id = $1 AND mailbox_id = $2',
      [tx.tenantId, mailboxId],
    );
  return false;
}

/**
 * A reconciliation ran: when, and how many messages it found that no notification had brought.
 * True when another was asked for meanwhile (claimReconcile with `again`): the caller runs it.
 */
export async function recordReconciled(
  tx: TenantTx,
  mailboxId: string,
  now: Date,
  recovered: number,
): Promise<boolean> {
  const { rows } = await tx.query<{ again: boolean }>(
    `UPDATE mailbox_health h SET last_reconcile_at = $3, recovered_by_last_reconcile = $4,
            reconcile_claimed_until = NULL, reconcile_again = false
       FROM (SELECT reconcile_again FROM mailbox_health WHERE tenant_id = $1 AND mailbox_id = $2 FOR UPDATE) old
      WHERE h.tenant_id = $1 AND h.mailbox_id = $2
      RETURNING old.reconcile_again AS again`,
    [tx.tenantId, mailboxId, now, recovered],
  );
  return rows[0]?.again ?? false;
}

/** A reconciliation that failed gives its claim back (the next scheduled one tries again). */
export async function releaseReconcile(tx: TenantTx, mailboxId: string): Promise<void> {
  await tx.query(
    'UPDATE mailbox_health SET reconcile_claimed_until = NULL WHERE tenant_id = $1 AND mailbox_id = $2',
    [tx.tenantId, mailboxId],
  );
}

/** A source reports its connection refused (IMAP login): needs_reauth, with the server's words. */
export async function recordSourceAuthFailed(tx: TenantTx, mailboxId: string, reason: string): Promise<void> {
  await tx.query(
    `UPDATE mailbox_health SET failure_reason = $3, failure_kind = 'auth', consecutive_failures = consecutive_failures + 1
      WHERE tenant_id = $1 AND mailbox_id = $2`,
    [tx.tenantId, mailboxId, reason.slice(0, 1000)],
  );
  await setStatus(tx, mailboxId, 'needs_reauth', reason.slice(0, 1000));
}

/**
 * A source that failed otherwise (IMAP: the server unreachable, the folder missing, the connection
 * lost): degraded, and error after `errorAfter` failures in a row; the listener keeps trying.
 */
export async function recordSourceFailed(
  tx: TenantTx,
  mailboxId: string,
  reason: string,
  errorAfter: number,
): Promise<void> {
  const { rows } = await tx.query<{ consecutive_failures: number; status: HealthStatus }>(
    `UPDATE mailbox_health SET failure_reason = $3, failure_kind = 'transient', consecutive_failures = consecutive_failures + 1
      WHERE tenant_id = $1 AND mailbox_id = $2 AND status NOT IN ('needs_reauth', 'disabled')
      RETURNING consecutive_failures, status`,
    [tx.tenantId, mailboxId, reason.slice(0, 1000)],
  );
  if (!rows[0]) return;
  await setStatus(
    tx,
    mailboxId,
    rows[0].consecutive_failures >= errorAfter ? 'error' : 'degraded',
    reason.slice(0, 1000),
  );
}

/** A source that works again (IMAP logged in after a failure): healthy. */
export async function recordSourceHealthy(tx: TenantTx, mailboxId: string): Promise<void> {
  await tx.query(
    `UPDATE mailbox_health SET failure_reason = NULL, failure_kind = NULL, consecutive_failures = 0
      WHERE tenant_id = $1 AND mailbox_id = $2 AND status <> 'disabled'`,
    [tx.tenantId, mailboxId],
  );
  const { rows } = await tx.query<{ status: HealthStatus }>(
    'SELECT status FROM mailbox_health WHERE tenant_id = $1 AND mailbox_id = $2',
    [tx.tenantId, mailboxId],
  );
  if (rows[0] && rows[0].status !== 'healthy' && rows[0].status !== 'disabled')
    await setStatus(tx, mailboxId, 'healthy', 'connected');
}

/** What /metrics reports of mailbox health across tenants (read on each scrape). */
export interface MailboxHealthTotals {
  /** Mailboxes by health status (every status present, 0 when none). */
  byStatus: Record<HealthStatus, number>;
  /** The earliest subscription or watch expiry among Graph and Gmail mailboxes; null when none has one. */
  earliestExpiry: Date | null;
  /** Graph and Gmail mailboxes by provider and the result of their last renewal (never renewed: absent). */
  lastRenewal: { provider: 'graph' | 'gmail'; result: RenewalResult; mailboxes: number }[];
  /** Consecutive failures summed per provider and kind of failure (a mailbox that works has none). */
  failures: { provider: string; reason: FailureKind; failures: number }[];
  /** Messages the last reconciliation of each mailbox found that no notification had brought, summed. */
  recoveredByLastReconcile: number;
}

/** Mailbox health summed across tenants, for the metrics scrape (a system-scoped read). */
export async function mailboxHealthTotals(sys: SystemTx): Promise<MailboxHealthTotals> {
  const byStatus = Object.fromEntries(HEALTH_STATUSES.map((s) => [s, 0])) as Record<HealthStatus, number>;
  const statuses = await sys.query<{ status: HealthStatus; n: number }>(
    'SELECT status, count(*)::int AS n FROM mailbox_health GROUP BY status',
  );
  for (const r of statuses.rows) byStatus[r.status] = r.n;
  const providers = await sys.query<{
    provider: 'graph' | 'gmail';
    result: RenewalResult | null;
    n: number;
    earliest: string | null;
  }>(
    `SELECT m.kind AS provider, h.last_renewal_result AS result, count(*)::int AS n, min(h.expires_at) AS earliest
       FROM mailbox_health h JOIN mailboxes m ON m.tenant_id = h.tenant_id AND m.id = h.mailbox_id
      WHERE m.kind IN ('graph', 'gmail')
      GROUP BY m.kind, h.last_renewal_result`,
  );
  let earliest: number | null = null;
  const lastRenewal: MailboxHealthTotals['lastRenewal'] = [];
  for (const r of providers.rows) {
    if (r.result !== null) lastRenewal.push({ provider: r.provider, result: r.result, mailboxes: r.n });
    const at = r.earliest === null ? null : new Date(r.earliest).getTime();
    if (at !== null && (earliest === null || at < earliest)) earliest = at;
  }
  const failing = await sys.query<{ provider: string; reason: FailureKind; failures: number }>(
    `SELECT m.kind AS provider, h.failure_kind AS reason, sum(h.consecutive_failures)::int AS failures
       FROM mailbox_health h JOIN mailboxes m ON m.tenant_id = h.tenant_id AND m.id = h.mailbox_id
      WHERE h.failure_kind IS NOT NULL AND h.consecutive_failures > 0
      GROUP BY m.kind, h.failure_kind`,
  );
  const recovered = await sys.query<{ n: number }>(
    'SELECT coalesce(sum(recovered_by_last_reconcile), 0)::int AS n FROM mailbox_health',
  );
  return {
    byStatus,
    earliestExpiry: earliest === null ? null : new Date(earliest),
    lastRenewal,
    failures: failing.rows,
    recoveredByLastReconcile: recovered.rows[0]?.n ?? 0,
  };
}
