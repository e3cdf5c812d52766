// The CLI's writes in the audit trail. `relaydesk token create`, `token revoke` and `people merge`
// change what POST /tokens, DELETE /tokens/:id and POST /people/:id/merge change, so they are
// recorded as those are (same action names, a target, the hash of what was asked, however it ended),
// through the audit module's own recordAudit. Their actor is the installation's operator at the
// command line, who is no person of the tenant: `actorVia: 'cli'`, no `actorId`.
import { recordAudit } from '../modules/audit/audit.ts';
import type { Pool } from '../platform/db/pool.ts';
import { AppError } from '../platform/errors.ts';
import type { Logger } from '../platform/logging.ts';
import { CliError } from './cli-error.ts';

/** How the audit trail says an action came from this command line. */
export const CLI_ACTOR_VIA = 'cli';

export interface CliWrite<T> {
  tenantId: string;
  /** As the API names the same write: 'tokens.create', 'tokens.delete', 'people.merge'. */
  action: string;
  targetType: string;
  /** What the write is about, when known before it runs (the token revoked, the person merged into). */
  targetId?: string;
  /** What it changed, once it has run (the token minted); default `targetId`. */
  targetOf?: (result: T) => string;
  /** What was asked, as the API's request body would say it; only its hash is kept. */
  payload: unknown;
  write: () => Promise<T>;
}

/**
 * Runs the write, then records it: `success`, or `failed` with the error's catalogue code (none for a
 * refusal of the CLI's own, `internal_error` for anything unforeseen) before the error goes on to
 * the caller. Recording never fails the command (recordAudit logs what it cannot write).
 */
export async function auditedCliWrite<T>(deps: { pool: Pool; logger: Logger }, w: CliWrite<T>): Promise<T> {
  const entry = {
    tenantId: w.tenantId,
    actorId: null,
    actorVia: CLI_ACTOR_VIA,
    action: w.action,
    targetType: w.targetType,
    targetId: w.targetId ?? null,
    requestId: null,
    payload: w.payload,
  };
  let result: T;
  try {
    result = await w.write();
  } catch (err) {
    const errorCode = err instanceof AppError ? err.code : err instanceof CliError ? null : 'internal_error';
    await recordAudit(deps, { ...entry, outcome: 'failed', errorCode });
    throw err;
  }
  await recordAudit(deps, {
    ...entry,
    targetId: w.targetOf ? w.targetOf(result) : entry.targetId,
    outcome: 'success',
  });
  return result;
}
