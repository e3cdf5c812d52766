// Signing in with an email address and a password (and the second factor, when the account has one).
// An address may belong to agents of several tenants: without `tenant`, every candidate with a
// password is tried, and exactly one must match. Whatever is wrong (no such address, a wrong
// password, a contact, a suspended or invited person, no password yet, a tenant that allows single
// sign-on only), the answer is the same 401 invalid_credentials after the same scrypt work.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withSystemRead, withTenant } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
import { normalizeEmail } from '../people/service.ts';
import {
  checkSecondFactor,
  clearFailures,
  lockCredentials,
  lockedError,
  recordFailure,
  replacePasswordHash,
} from './credentials.ts';
import { DUMMY_HASH, hashPassword, needsRehash, verifyPassword } from './passwords.ts';

export interface SignInDeps {
  pool: Pool;
  clock: Clock;
  secretKey: Buffer;
  /** Consecutive failures after which an account is locked. */
  accountFailures: number;
}

export interface SignInInput {
  email: string;
  password: string;
  /** The tenant's name, when the address has agents in several. */
  tenant?: string | undefined;
  totp?: string | undefined;
  recoveryCode?: string | undefined;
}

/** At most this many accounts are tried for one address (each costs a scrypt run). */
const MAX_CANDIDATES = 10;

interface Candidate {
  tenant_id: string;
  person_id: string;
  tenant_name: string;
  password_hash: string;
  locked_until: string | null;
}

export const invalidCredentials = (): AppError =>
  new AppError('invalid_credentials', 'The email address or the password is not right');

/** The tenant and person the credentials prove, or the refusal. */
export async function checkPasswordSignIn(
  deps: SignInDeps,
  input: SignInInput,
): Promise<{ tenantId: string; personId: string }> {
  // Across tenants, before any is known: agents who may sign in with a password, by address.
  const { rows: candidates } = await withSystemRead(deps.pool, (sys) =>
    sys.query<Candidate>(
      `SELECT e.tenant_id, e.person_id, t.name AS tenant_name, c.password_hash, c.locked_until
         FROM person_emails e
         JOIN people p ON p.tenant_id = e.tenant_id AND p.id = e.person_id
         JOIN tenants t ON t.id = e.tenant_id
         JOIN person_credentials c ON c.tenant_id = e.tenant_id AND c.person_id = e.person_id
         LEFT JOIN auth_settings a ON a.tenant_id = e.tenant_id
        WHERE e.address_normalized = $1 AND p.kind = 'agent' AND p.status = 'active'
          AND c.password_hash IS NOT NULL AND coalesce(a.password_sign_in, true)
          AND ($2::text IS NULL OR lower(t.name) = lower($2))
        ORDER BY e.tenant_id LIMIT ${MAX_CANDIDATES}`,
      [normalizeEmail(input.email), input.tenant ?? null],
    ),
  );
  const now = deps.clock.now();
  const locks = candidates
    .map((c) => (c.locked_until ? new Date(c.locked_until) : undefined))
    .filter((d): d is Date => d !== undefined && d > now);
  if (locks.length > 0) throw lockedError(new Date(Math.max(...locks.map((d) => d.getTime()))), now);

  // In parallel (libuv's thread pool), so that several candidates take about as long as one.
  const verdicts = await Promise.all(
    candidates.length === 0
      ? [verifyPassword(input.password, DUMMY_HASH).then(() => false)]
      : candidates.map((c) => verifyPassword(input.password, c.password_hash)),
  );
  const matched = candidates.filter((_, i) => verdicts[i]);
  if (matched.length === 0) {
    for (const c of candidates)
      await withTenant(deps.pool, c.tenant_id, (tx) =>
        recordFailure(tx, c.person_id, now, deps.accountFailures),
      );
    throw invalidCredentials();
  }
  if (matched.length > 1)
    throw new AppError('tenant_required', 'These credentials sign in to several tenants: say which one', {
      details: { tenants: matched.map((c) => c.tenant_name).sort() },
    });

  const account = matched[0]!;
  const outcome = await withTenant(deps.pool, account.tenant_id, async (tx) => {
    const credentials = await lockCredentials(tx, account.person_id);
    if (!credentials) return 'wrong' as const;
    if (credentials.lockedUntil && credentials.lockedUntil > now)
      return { locked: credentials.lockedUntil } as const;
    if (credentials.totpEnabled) {
      const result = await checkSecondFactor(tx, {
        secretKey: deps.secretKey,
        personId: account.person_id,
        credentials,
        totp: input.totp,
        recoveryCode: input.recoveryCode,
        now,
      });
      if (result === 'missing') return 'missing' as const;
      if (result === 'wrong') {
        await recordFailure(tx, account.person_id, now, deps.accountFailures);
        return 'wrong' as const;
      }
    }
    await clearFailures(tx, account.person_id, now);
    return 'ok' as const;
  });
  if (outcome === 'missing')
    throw new AppError(
      'second_factor_required',
      'Send the code of your authenticator app (totp) or a recovery code (recoveryCode) with the password',
    );
  if (outcome === 'wrong') throw invalidCredentials();
  if (outcome !== 'ok') throw lockedError(outcome.locked, now);

  if (needsRehash(account.password_hash)) {
    const hash = await hashPassword(input.password);
    await withTenant(deps.pool, account.tenant_id, (tx) =>
      replacePasswordHash(tx, account.person_id, account.password_hash, hash),
    );
  }
  return { tenantId: account.tenant_id, personId: account.person_id };
}
