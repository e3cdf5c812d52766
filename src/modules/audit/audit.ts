// The audit trail: every mutating action, who did it and how it ended, with the SHA-256 of the
// request's RFC 8785 canonical JSON (`canonicalize`) instead of the request. Recording runs in its
// own transaction after the action, so it records refusals and failures too; a failure to record is
// logged and never blocks or fails the action. This module imports only the platform, so every
// module can record.
import canonicalize from 'canonicalize';
import { sha256Hex } from '../../platform/crypto.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';
import type { Logger } from '../../platform/logging.ts';

export const AUDIT_OUTCOMES = ['success', 'unauthorised', 'unavailable', 'failed'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

export interface AuditEntry {
  tenantId: string;
  actorId: string | null;
  /** How the actor acted: 'token' (the API), 'teams', 'system'. */
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
          payloadHash(entry.payload),
        ],
      ),
    );
  } catch (err) {
    deps.logger.error({ err, action: entry.action, tenantId: entry.tenantId }, 'audit event not recorded');
  }
}
