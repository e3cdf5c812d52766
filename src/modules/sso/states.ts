// Sign-in states (sso_login_states): one per sign-in started, found again by the callback through
// the SHA-256 of the `state` the provider returns. The PKCE verifier and the nonce are sealed; the
// state itself is never stored. Single use, 10 minutes.
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withSystemRead } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';
import type { SsoProvider } from './providers.ts';

/** How long a started sign-in can be completed. */
export const STATE_LIFETIME_MS = 10 * 60_000;
/** Expired states are kept this long (the callback can still say "expired"), then removed. */
const EXPIRED_KEPT_MS = 60 * 60_000;

export interface NewLoginState {
  provider: SsoProvider;
  stateHash: Buffer;
  /** Sealed. */
  codeVerifier: Buffer;
  /** Sealed. */
  nonce: Buffer;
  issuer: string;
  clientId: string;
  redirectUri: string;
  returnTo: string;
  now: Date;
}

/** Stores a started sign-in, and removes the tenant's states that expired long ago. */
export async function createLoginState(tx: TenantTx, input: NewLoginState): Promise<void> {
  await tx.query('DELETE FROM sso_login_states WHERE tenant_id = $1 AND expires_at < $2', [
    tx.tenantId,
    new Date(input.now.getTime() - EXPIRED_KEPT_MS),
  ]);
  await tx.query(
    `INSERT INTO sso_login_states (tenant_id, id, provider, state_hash, code_verifier, nonce, issuer, client_id,
                                   redirect_uri, return_to, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      tx.tenantId,
      uuidv7(input.now.getTime()),
      input.provider,
      input.stateHash,
      input.codeVerifier,
      input.nonce,
      input.issuer,
      input.clientId,
      input.redirectUri,
      input.returnTo,
      input.now,
      new Date(input.now.getTime() + STATE_LIFETIME_MS),
    ],
  );
}

export interface LoginState {
  tenantId: string;
  id: string;
  provider: SsoProvider;
  codeVerifier: Buffer;
  nonce: Buffer;
  issuer: string;
  clientId: string;
  redirectUri: string;
  returnTo: string;
  expired: boolean;
  used: boolean;
}

/** The state with this hash, in whichever tenant (the callback knows nothing else), or undefined. */
export async function findLoginState(
  pool: Pool,
  stateHash: Buffer,
  now: Date,
): Promise<LoginState | undefined> {
  const { rows } = await withSystemRead(pool, (sys) =>
    sys.query<{
      tenant_id: string;
      id: string;
      provider: SsoProvider;
      code_verifier: Buffer;
      nonce: Buffer;
      issuer: string;
      client_id: string;
      redirect_uri: string;
      return_to: string;
      expired: boolean;
      used: boolean;
    }>(
      `SELECT tenant_id, id, provider, code_verifier, nonce, issuer, client_id, redirect_uri, return_to,
              expires_at <= $2 AS expired, used_at IS NOT NULL AS used
         FROM sso_login_states WHERE state_hash = $1`,
      [stateHash, now],
    ),
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    tenantId: r.tenant_id,
    id: r.id,
    provider: r.provider,
    codeVerifier: r.code_verifier,
    nonce: r.nonce,
    issuer: r.issuer,
    clientId: r.client_id,
    redirectUri: r.redirect_uri,
    returnTo: r.return_to,
    expired: r.expired,
    used: r.used,
  };
}

/** Marks a state used; false when it was used already (two callbacks racing: one wins). */
export async function spendLoginState(tx: TenantTx, id: string, now: Date): Promise<boolean> {
  const { rowCount } = await tx.query(
    'UPDATE sso_login_states SET used_at = $3 WHERE tenant_id = $1 AND id = $2 AND used_at IS NULL',
    [tx.tenantId, id, now],
  );
  return rowCount === 1;
}
