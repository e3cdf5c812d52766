// Single-use sign-in links: an invitation (7 days) or a password reset (1 hour). The link carries a
// random token; only its SHA-256 is stored. A new link of the same purpose voids the person's
// earlier ones, a used one is done, and a suspension removes the unused ones (migration 0027).
import { sha256 } from '../../platform/crypto.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withSystemRead } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
import { randomToken, uuidv7 } from '../../platform/ids.ts';

export type LinkPurpose = 'invitation' | 'password_reset';

export const LINK_LIFETIME_MS: Record<LinkPurpose, number> = {
  invitation: 7 * 24 * 3_600_000,
  password_reset: 3_600_000,
};

/** Where the console takes each link (the console's pages read `token` from the query). */
const LINK_PATH: Record<LinkPurpose, string> = {
  invitation: '/console/accept',
  password_reset: '/console/reset',
};

const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

export interface IssuedLink {
  link: string;
  expiresAt: Date;
}

/**
 * A new link for the person; their earlier unused links of the purpose stop working. `baseUrl` is
 * where browsers reach the install (RELAYDESK_PUBLIC_URL, or the request's origin).
 */
export async function issueLink(
  tx: TenantTx,
  input: { personId: string; purpose: LinkPurpose; createdBy: string | null; baseUrl: string; now: Date },
): Promise<IssuedLink> {
  const token = randomToken(32);
  const expiresAt = new Date(input.now.getTime() + LINK_LIFETIME_MS[input.purpose]);
  await tx.query(
    `DELETE FROM sign_in_tokens
      WHERE tenant_id = $1 AND person_id = $2 AND purpose = $3 AND used_at IS NULL`,
    [tx.tenantId, input.personId, input.purpose],
  );
  await tx.query(
    `INSERT INTO sign_in_tokens (tenant_id, id, person_id, purpose, token_hash, created_by, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [
      tx.tenantId,
      uuidv7(input.now.getTime()),
      input.personId,
      input.purpose,
      sha256(token),
      input.createdBy,
      input.now,
      expiresAt,
    ],
  );
  const base = input.baseUrl.replace(/\/+$/, '');
  return { link: `${base}${LINK_PATH[input.purpose]}?token=${token}`, expiresAt };
}

/** When the person was last sent a link of the purpose (to keep a reset form from mail-bombing). */
export async function lastLinkAt(
  tx: TenantTx,
  personId: string,
  purpose: LinkPurpose,
): Promise<Date | undefined> {
  const { rows } = await tx.query<{ created_at: string }>(
    `SELECT created_at FROM sign_in_tokens WHERE tenant_id = $1 AND person_id = $2 AND purpose = $3
      ORDER BY created_at DESC LIMIT 1`,
    [tx.tenantId, personId, purpose],
  );
  return rows[0] ? new Date(rows[0].created_at) : undefined;
}

export interface FoundLink {
  tenantId: string;
  id: string;
  personId: string;
}

const invalid = () =>
  new AppError('invalid_token', 'The link is not valid: it is unknown, was used already, or has expired');

/** The tenant and person of an unused, unexpired link of the purpose; else invalid_token. */
export async function findLink(
  pool: Pool,
  token: string,
  purpose: LinkPurpose,
  now: Date,
): Promise<FoundLink> {
  if (!TOKEN_RE.test(token)) throw invalid();
  // Before the tenant is known: by the token's hash, across tenants.
  const { rows } = await withSystemRead(pool, (sys) =>
    sys.query<{ tenant_id: string; id: string; person_id: string }>(
      `SELECT tenant_id, id, person_id FROM sign_in_tokens
        WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3`,
      [sha256(token), purpose, now],
    ),
  );
  const row = rows[0];
  if (!row) throw invalid();
  return { tenantId: row.tenant_id, id: row.id, personId: row.person_id };
}

/** Uses the link up, in the transaction that does what it was for; a concurrent use finds it gone. */
export async function useLink(tx: TenantTx, id: string, now: Date): Promise<void> {
  const { rowCount } = await tx.query(
    `UPDATE sign_in_tokens SET used_at = $3
      WHERE tenant_id = $1 AND id = $2 AND used_at IS NULL AND expires_at > $3`,
    [tx.tenantId, id, now],
  );
  if (rowCount !== 1) throw invalid();
}

/** Voids every unused link of the person (their password was just set). */
export async function voidLinks(tx: TenantTx, personId: string): Promise<void> {
  await tx.query('DELETE FROM sign_in_tokens WHERE tenant_id = $1 AND person_id = $2 AND used_at IS NULL', [
    tx.tenantId,
    personId,
  ]);
}
