// The audit trail: every mutating action, who did it and how it ended, with the SHA-256 of the
// request's RFC 8785 canonical JSON (`canonicalize`) instead of the request. Recording runs in its
// own transaction after the action, so it records refusals and failures too; a failure to record is
// logged and never blocks or fails the action. This module imports only the platform, so every
// module can record.
import canonicalize from 'canonicalize';
import { sha256Hex } from '../../platform/crypto.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withTenant } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';
import type { Logger } from '../../platform/logging.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';

export const AUDIT_OUTCOMES = ['success', 'unauthorised', 'unavailable', 'failed'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

export interface AuditEntry {
  tenantId: string;
  actorId: string | null;
  /**
   * How the actor acted: 'token' (the API), 'session' (the API from the console), 'teams', 'cli' (the
   * `relaydesk` command line, no actor person), 'system'.
   */
  actorVia: string;
  /** Stable name: 'tickets.update', 'teams.assign_to_me'. */
  action: string;
  targetType?: string | null | undefined;
  targetId?: string | null | undefined;
  outcome: AuditOutcome;
  errorCode?: string | null | undefined;
  requestId?: string | null | undefined;
  /** The request as received; only its hash is kept. */
  payload: unknown;
}

/** SHA-256 (hex) of the RFC 8785 canonical JSON of `payload` (an absent payload hashes as `null`). */
export function payloadHash(payload: unknown): string {
  return sha256Hex(canonicalize(payload === undefined ? null : payload) ?? 'null');
}

// What a payload JSON cannot canonicalise (a string with an unpaired surrogate, which a request can
// carry and be refused for) hashes as: the action is still recorded.
const NOT_CANONICAL = { notCanonicalJson: true };

function hashOrMarker(payload: unknown): string {
  try {
    return payloadHash(payload);
  } catch {
    return payloadHash(NOT_CANONICAL);
  }
}

/** Records one entry; never throws (a failure is logged). */
export async function recordAudit(deps: { pool: Pool; logger: Logger }, entry: AuditEntry): Promise<void> {
  try {
    await withTenant(deps.pool, entry.tenantId, (tx) =>
      tx.query(
        `INSERT INTO audit_events (tenant_id, id, at, actor_id, actor_via, action, target_type, target_id,
                                   outcome, error_code, request_id, payload_hash)
         VALUES ($1, $2, clock_timestamp(), $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [
          entry.tenantId,
          uuidv7(),
          entry.actorId,
          entry.actorVia,
          entry.action.slice(0, 200),
          entry.targetType ?? null,
          entry.targetId?.slice(0, 200) ?? null,
          entry.outcome,
          entry.errorCode ?? null,
          entry.requestId ?? null,
          hashOrMarker(entry.payload),
        ],
      ),
    );
  } catch (err) {
    deps.logger.error(
      { err, action: entry.action, tenantId: entry.tenantId, requestId: entry.requestId },
      'audit event not recorded',
    );
  }
}

/** One recorded event as the API shows it. */
export interface AuditEvent {
  id: string;
  at: string;
  actorId: string | null;
  actorVia: string;
  action: string;
  targetType: string | null;
  targetId: string | null;
  outcome: AuditOutcome;
  errorCode: string | null;
  requestId: string | null;
  payloadHash: string;
}

interface AuditEventRow {
  id: string;
  // `at` under the name the cursor helpers page by.
  created_at: string;
  actor_id: string | null;
  actor_via: string;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: AuditOutcome;
  error_code: string | null;
  request_id: string | null;
  payload_hash: string;
}

export interface ListAuditEventsInput {
  action?: string | undefined;
  actorId?: string | undefined;
  targetId?: string | undefined;
  outcome?: AuditOutcome | undefined;
  /** Inclusive. */
  from?: string | undefined;
  /** Exclusive. */
  to?: string | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
}

const toAuditEvent = (r: AuditEventRow): AuditEvent => ({
  id: r.id,
  at: r.created_at,
  actorId: r.actor_id,
  actorVia: r.actor_via,
  action: r.action,
  targetType: r.target_type,
  targetId: r.target_id,
  outcome: r.outcome,
  errorCode: r.error_code,
  requestId: r.request_id,
  payloadHash: r.payload_hash,
});

/** The tenant's events, newest first, a page at a time (cursor over `(at, id)`). */
export async function listAuditEvents(tx: TenantTx, input: ListAuditEventsInput): Promise<Page<AuditEvent>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const values: unknown[] = [tx.tenantId];
  const where = ['tenant_id = $1'];
  const add = (sql: (n: string) => string, value: unknown) => {
    values.push(value);
    where.push(sql(`$${values.length}`));
  };
  if (input.action) add((n) => `action = ${n}`, input.action);
  if (input.actorId) add((n) => `actor_id = ${n}::uuid`, input.actorId);
  if (input.targetId) add((n) => `target_id = ${n}`, input.targetId);
  if (input.outcome) add((n) => `outcome = ${n}`, input.outcome);
  if (input.from) add((n) => `at >= ${n}::timestamptz`, input.from);
  if (input.to) add((n) => `at < ${n}::timestamptz`, input.to);
  if (cursor) {
    values.push(cursor.createdAt, cursor.id);
    where.push(`(at, id) < ($${values.length - 1}::timestamptz, $${values.length}::uuid)`);
  }
  values.push(limit + 1);
  const { rows } = await tx.query<AuditEventRow>(
    `SELECT id, at AS created_at, actor_id, actor_via, action, target_type, target_id, outcome, error_code,
            request_id, payload_hash
       FROM audit_events WHERE ${where.join(' AND ')}
      ORDER BY at DESC, id DESC LIMIT $${values.length}`,
    values,
  );
  return toPage(rows, limit, toAuditEvent);
}

/** The events about one target (a ticket's id), the newest `limit` of them, oldest first. */
export async function auditEventsOfTarget(
  tx: TenantTx,
  input: { targetId: string; limit: number },
): Promise<AuditEvent[]> {
  const { rows } = await tx.query<AuditEventRow>(
    `SELECT * FROM (
       SELECT id, at AS created_at, actor_id, actor_via, action, target_type, target_id, outcome, error_code,
              request_id, payload_hash
         FROM audit_events WHERE tenant_id = $1 AND target_id = $2
        ORDER BY at DESC, id DESC LIMIT $3) a
      ORDER BY created_at, id`,
    [tx.tenantId, input.targetId, input.limit],
  );
  return rows.map(toAuditEvent);
}
