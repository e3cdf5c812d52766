// The CLI's writes in the audit trail. Each command that changes what an API write changes is
// recorded as that write is (same action name, a target, the hash of what was asked with the same
// secrets redacted, however it ended), through the audit module's own recordAudit: `token create`,
// `token revoke`, `people merge`, `tenant create` and `delete`, `mailbox create`, `renew` and
// `connect`, `user invite` and `reset-password`, `deliveries retry` and `ingest`. Their actor is the
// installation's operator at the command line, who is no person of the tenant: `actorVia: 'cli'`,
// no `actorId`.
import { recordAudit } from '../modules/audit/audit.ts';
import { redactFields } from '../modules/audit/request-audit.ts';
import type { Pool } from '../platform/db/pool.ts';
import { AppError } from '../platform/errors.ts';
import type { Logger } from '../platform/logging.ts';
import { CliError } from './cli-error.ts';

/** How the audit trail says an action came from this command line. */
export const CLI_ACTOR_VIA = 'cli';

export interface CliWrite<T> {
  /**
   * The tenant the event is in. A write that makes its tenant (`tenant create`) names it from its
   * result: its failure, in no tenant, records nothing.
   */
  tenantId: string | ((result: T) => string);
  /**
   * The write removes the tenant itself (`tenant delete`): its events go with it (the audit rows
   * cascade), so its success is not recorded; a failure, the tenant still there, is.
   */
  removesTenant?: boolean;
  /** As the API names the same write: 'tokens.create', 'tokens.delete', 'people.merge'. */
  action: string;
  targetType: string;
  /** What the write is about, when known before it runs (the token revoked, the person merged into). */
  targetId?: string;
  /** What it changed, once it has run (the token minted); default `targetId`. */
  targetOf?: (result: T) => string;
  /** What was asked, as the API's request body would say it; only its hash is kept. */
  payload: unknown;
  /**
   * The fields of `payload` replaced by "[redacted]" before it is hashed, as the API's route names
   * them (`config.auditRedact`, see redactFields): `['credentials.*']` for a mailbox.
   */
  redact?: readonly string[];
  /**
   * A result that is the command's failure though nothing was thrown (a renewal another one holds, a
   * message quarantined): recorded as `failed` with this error code (null when it has none).
   */
  failedIf?: (result: T) => { errorCode: string | null } | undefined;
  write: () => Promise<T>;
}

/**
 * Runs the write, then records it: `success`, or `failed` with the error's catalogue code (none for a
 * refusal of the CLI's own, `internal_error` for anything unforeseen) before the error goes on to
 * the caller. Recording never fails the command (recordAudit logs what it cannot write).
 */
export async function auditedCliWrite<T>(deps: { pool: Pool; logger: Logger }, w: CliWrite<T>): Promise<T> {
  const entry = {
    actorId: null,
    actorVia: CLI_ACTOR_VIA,
    action: w.action,
    targetType: w.targetType,
    targetId: w.targetId ?? null,
    requestId: null,
    payload: w.redact ? redactFields(w.payload, w.redact) : w.payload,
  };
  let result: T;
  try {
    result = await w.write();
  } catch (err) {
    if (typeof w.tenantId === 'string') {
      const errorCode =
        err instanceof AppError ? err.code : err instanceof CliError ? null : 'internal_error';
      await recordAudit(deps, { ...entry, tenantId: w.tenantId, outcome: 'failed', errorCode });
    }
    throw err;
  }
  if (w.removesTenant) return result;
  const failed = w.failedIf?.(result);
  await recordAudit(deps, {
    ...entry,
    tenantId: typeof w.tenantId === 'string' ? w.tenantId : w.tenantId(result),
    targetId: w.targetOf ? w.targetOf(result) : entry.targetId,
    ...(failed ? { outcome: 'failed', errorCode: failed.errorCode } : { outcome: 'success' }),
  });
  return result;
}
