// What an agent proves who they are with: a password, a TOTP authenticator, recovery codes; and the
// record of failed attempts that locks an account for a while (a minute after the limit, doubling
// with each further failure, at most an hour; the first success clears it).
import { createHash, randomInt } from 'node:crypto';
import * as OTPAuth from 'otpauth';
import { seal, unseal } from '../../platform/crypto.ts';
import type { TenantTx } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';

/** Consecutive failures after which an account is locked (SignInLimits.accountFailures). */
export const DEFAULT_ACCOUNT_FAILURES = 5;
const MAX_LOCK_MINUTES = 60;

/** TOTP as authenticator apps do it (RFC 6238): HMAC-SHA-1, 6 digits, 30-second steps. */
const TOTP = { algorithm: 'SHA1', digits: 6, period: 30 } as const;
/** Codes of the step before and after are taken too (clocks drift; people type slowly). */
const TOTP_WINDOW = 1;
export const RECOVERY_CODE_COUNT = 10;
// No 0/o, 1/l/i: the codes are read off paper.
const RECOVERY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';

export interface Credentials {
  passwordHash: string | null;
  failedAttempts: number;
  lockedUntil: Date | null;
  totpSecret: Buffer | null;
  totpEnabled: boolean;
  totpPendingSecret: Buffer | null;
  totpLastStep: number | null;
}

/** The person's credentials (locked for the transaction: a code is taken once, a failure counted once). */
export async function lockCredentials(tx: TenantTx, personId: string): Promise<Credentials | undefined> {
  const { rows } = await tx.query<{
    password_hash: string | null;
    failed_attempts: number;
    locked_until: string | null;
    totp_secret: Buffer | null;
    totp_enabled_at: string | null;
    totp_pending_secret: Buffer | null;
    totp_last_step: string | null;
  }>(
    `SELECT password_hash, failed_attempts, locked_until, totp_secret, totp_enabled_at, totp_pending_secret,
            totp_last_step
       FROM person_credentials WHERE tenant_id = $1 AND person_id = $2 FOR UPDATE`,
    [tx.tenantId, personId],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    passwordHash: r.password_hash,
    failedAttempts: r.failed_attempts,
    lockedUntil: r.locked_until ? new Date(r.locked_until) : null,
    totpSecret: r.totp_secret,
    totpEnabled: r.totp_enabled_at !== null,
    totpPendingSecret: r.totp_pending_secret,
    totpLastStep: r.totp_last_step === null ? null : Number(r.totp_last_step),
  };
}

/** Sets the person's password (a hash from passwords.ts); clears failures and any lock. */
export async function setPasswordHash(
  tx: TenantTx,
  personId: string,
  hash: string,
  now: Date,
): Promise<void> {
  await tx.query(
    `INSERT INTO person_credentials (tenant_id, person_id, password_hash, password_changed_at, updated_at)
     VALUES ($1, $2, $3, $4, $4)
     ON CONFLICT (tenant_id, person_id) DO UPDATE SET password_hash = $3, password_changed_at = $4,
            failed_attempts = 0, locked_until = NULL, updated_at = $4`,
    [tx.tenantId, personId, hash, now],
  );
}

/** Replaces a hash made with older parameters, unless the password changed meanwhile. */
export async function replacePasswordHash(
  tx: TenantTx,
  personId: string,
  previous: string,
  hash: string,
): Promise<void> {
  await tx.query(
    `UPDATE person_credentials SET password_hash = $4
      WHERE tenant_id = $1 AND person_id = $2 AND password_hash = $3`,
    [tx.tenantId, personId, previous, hash],
  );
}

/** Counts a failed attempt; past `limit` consecutive ones the account locks (growing each time). */
export async function recordFailure(tx: TenantTx, personId: string, now: Date, limit: number): Promise<void> {
  await tx.query(
    `UPDATE person_credentials
        SET failed_attempts = failed_attempts + 1, updated_at = $3,
            locked_until = CASE WHEN failed_attempts + 1 >= $4
              THEN $3::timestamptz + make_interval(mins => least($5, power(2, least(30, failed_attempts + 1 - $4)))::int)
              ELSE locked_until END
      WHERE tenant_id = $1 AND person_id = $2`,
    [tx.tenantId, personId, now, limit, MAX_LOCK_MINUTES],
  );
}

/** The first success after failures clears them. */
export async function clearFailures(tx: TenantTx, personId: string, now: Date): Promise<void> {
  await tx.query(
    `UPDATE person_credentials SET failed_attempts = 0, locked_until = NULL, updated_at = $3
      WHERE tenant_id = $1 AND person_id = $2 AND (failed_attempts <> 0 OR locked_until IS NOT NULL)`,
    [tx.tenantId, personId, now],
  );
}

/** The answer for a locked account: 429 rate_limited, with when to try again. */
export function lockedError(until: Date, now: Date): AppError {
  const retryAfterSeconds = Math.max(1, Math.ceil((until.getTime() - now.getTime()) / 1000));
  return new AppError('rate_limited', `Too many failed attempts; try again in ${retryAfterSeconds} s`, {
    details: { retryAfterSeconds },
  });
}

// -------------------------------------------------------------------------------------------------
// TOTP

const totpOf = (secret: OTPAuth.Secret, label = '') =>
  new OTPAuth.TOTP({ issuer: 'Relaydesk', label, secret, ...TOTP });

/** A new secret, sealed for storage, with what the authenticator app is given. */
export function newTotpSecret(
  secretKey: Buffer,
  label: string,
): { sealed: Buffer; secret: string; uri: string } {
  const secret = new OTPAuth.Secret({ size: 20 });
  return {
    sealed: seal(secretKey, secret.base32),
    secret: secret.base32,
    uri: totpOf(secret, label).toString(),
  };
}

/**
 * The time step a code of this sealed secret is good for at `now`, or undefined when it is not a
 * current code. `lastStep` is the step of the code taken last: that code, and any older, is refused.
 */
export function totpStep(
  secretKey: Buffer,
  sealed: Buffer,
  code: string,
  now: Date,
  lastStep: number | null,
): number | undefined {
  if (!/^\d{6}$/.test(code)) return undefined;
  const secret = OTPAuth.Secret.fromBase32(unseal(secretKey, sealed).toString('utf8'));
  const totp = totpOf(secret);
  const timestamp = now.getTime();
  const delta = totp.validate({ token: code, timestamp, window: TOTP_WINDOW });
  if (delta === null) return undefined;
  const step = totp.counter({ timestamp }) + delta;
  return lastStep !== null && step <= lastStep ? undefined : step;
}

/** The current code of a secret (base32), for tests and nothing else. */
export function totpCodeOf(secret: string, at: Date): string {
  return totpOf(OTPAuth.Secret.fromBase32(secret)).generate({ timestamp: at.getTime() });
}

export async function recordTotpStep(tx: TenantTx, personId: string, step: number): Promise<void> {
  await tx.query(
    'UPDATE person_credentials SET totp_last_step = $3 WHERE tenant_id = $1 AND person_id = $2',
    [tx.tenantId, personId, step],
  );
}

/** Keeps a new secret waiting for its first code (replacing any other waiting one). */
export async function savePendingTotp(
  tx: TenantTx,
  personId: string,
  sealed: Buffer,
  now: Date,
): Promise<void> {
  await tx.query(
    `INSERT INTO person_credentials (tenant_id, person_id, totp_pending_secret, updated_at)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (tenant_id, person_id) DO UPDATE SET totp_pending_secret = $3, updated_at = $4`,
    [tx.tenantId, personId, sealed, now],
  );
}

/** The waiting secret becomes the person's, its first code's step recorded. */
export async function enableTotp(tx: TenantTx, personId: string, step: number, now: Date): Promise<void> {
  await tx.query(
    `UPDATE person_credentials SET totp_secret = totp_pending_secret, totp_pending_secret = NULL,
            totp_enabled_at = $3, totp_last_step = $4, updated_at = $3
      WHERE tenant_id = $1 AND person_id = $2 AND totp_pending_secret IS NOT NULL`,
    [tx.tenantId, personId, now, step],
  );
}

/** Turns TOTP off and voids the recovery codes. */
export async function disableTotp(tx: TenantTx, personId: string, now: Date): Promise<void> {
  await tx.query(
    `UPDATE person_credentials SET totp_secret = NULL, totp_enabled_at = NULL, totp_pending_secret = NULL,
            totp_last_step = NULL, updated_at = $3
      WHERE tenant_id = $1 AND person_id = $2`,
    [tx.tenantId, personId, now],
  );
  await tx.query('DELETE FROM recovery_codes WHERE tenant_id = $1 AND person_id = $2', [
    tx.tenantId,
    personId,
  ]);
}

// -------------------------------------------------------------------------------------------------
// Recovery codes

/** The stored form: SHA-256 of the code without case, spaces or hyphens (about 50 random bits). */
const recoveryHash = (code: string): Buffer =>
  createHash('sha256')
    .update(code.toLowerCase().replace(/[^a-z0-9]/g, ''))
    .digest();

function recoveryCode(): string {
  let code = '';
  for (let i = 0; i < 10; i++) code += RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)];
  return `${code.slice(0, 5)}-${code.slice(5)}`;
}

/** A new set of recovery codes; the old set is void. Answers the codes (shown once). */
export async function replaceRecoveryCodes(tx: TenantTx, personId: string, now: Date): Promise<string[]> {
  await tx.query('DELETE FROM recovery_codes WHERE tenant_id = $1 AND person_id = $2', [
    tx.tenantId,
    personId,
  ]);
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, recoveryCode);
  await tx.query(
    `INSERT INTO recovery_codes (tenant_id, person_id, code_hash, created_at)
     SELECT $1, $2, h, $4 FROM unnest($3::bytea[]) AS h ON CONFLICT DO NOTHING`,
    [tx.tenantId, personId, codes.map(recoveryHash), now],
  );
  return codes;
}

/** Takes a recovery code (once): true when it was one of the person's unused codes. */
export async function useRecoveryCode(
  tx: TenantTx,
  personId: string,
  code: string,
  now: Date,
): Promise<boolean> {
  if (code.length > 64) return false;
  const { rowCount } = await tx.query(
    `UPDATE recovery_codes SET used_at = $4
      WHERE tenant_id = $1 AND person_id = $2 AND code_hash = $3 AND used_at IS NULL`,
    [tx.tenantId, personId, recoveryHash(code), now],
  );
  return rowCount === 1;
}

export type SecondFactorResult = 'ok' | 'missing' | 'wrong';

/**
 * Checks the second factor of a person whose credentials are locked in `tx` (lockCredentials): a
 * TOTP code (not one taken before) or an unused recovery code. 'missing' when neither was given.
 */
export async function checkSecondFactor(
  tx: TenantTx,
  input: {
    secretKey: Buffer;
    personId: string;
    credentials: Credentials;
    totp?: string | undefined;
    recoveryCode?: string | undefined;
    now: Date;
  },
): Promise<SecondFactorResult> {
  const { credentials, now } = input;
  if (input.totp === undefined && input.recoveryCode === undefined) return 'missing';
  if (input.totp !== undefined && credentials.totpSecret) {
    const step = totpStep(
      input.secretKey,
      credentials.totpSecret,
      input.totp.trim(),
      now,
      credentials.totpLastStep,
    );
    if (step === undefined) return 'wrong';
    await recordTotpStep(tx, input.personId, step);
    return 'ok';
  }
  if (input.recoveryCode !== undefined)
    return (await useRecoveryCode(tx, input.personId, input.recoveryCode, now)) ? 'ok' : 'wrong';
  return 'wrong';
}
