// API tokens: `rd_` + 32 random bytes (base64url). Only the SHA-256 is stored, with the last four
// characters as a preview so an operator can tell tokens apart. The plaintext is returned once.

import type { Clock } from '../../platform/clock.ts';
import { sha256 } from '../../platform/crypto.ts';
import type { Authenticate, Principal } from '../../platform/http/auth.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withSystemRead, withTenantAutocommit } from '../../platform/db/tx.ts';
import { AppError, notFound } from '../../platform/errors.ts';
import { randomToken, uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import { type Actor, recordEvent } from '../people/events.ts';
import type { AuthCache } from './auth-cache.ts';
import { permissionsOf, type TokenRole } from './permissions.ts';

export const TOKEN_PREFIX = 'rd_';
const TOKEN_RE = /^rd_[A-Za-z0-9_-]{43,}$/;

export interface TokenInfo {
  id: string;
  personId: string;
  preview: string;
  role: TokenRole;
  label: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface MintedToken extends TokenInfo {
  /** The plaintext token: shown this once, never stored. */
  token: string;
}

export type { Principal } from '../../platform/http/auth.ts';

/** The HTTP server's authenticate function: tokens looked up in `pool`, cached in `cache` while it is exact. */
export function tokenAuthenticator(deps: {
  pool: Pool;
  clock: Clock;
  cache?: AuthCache | undefined;
}): Authenticate {
  return (token) => authenticate(deps.pool, token, deps.clock.now().getTime(), deps.cache);
}

export const hashToken = (token: string): Buffer => sha256(token);

interface TokenRow {
  id: string;
  person_id: string;
  preview: string;
  role: TokenRole;
  label: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

const toInfo = (r: TokenRow): TokenInfo => ({
  id: r.id,
  personId: r.person_id,
  preview: r.preview,
  role: r.role,
  label: r.label,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
  revokedAt: r.revoked_at,
});

export interface MintTokenInput {
  personId: string;
  role: TokenRole;
  label?: string;
  actor: Actor;
}

export async function mintToken(tx: TenantTx, input: MintTokenInput): Promise<MintedToken> {
  const token = TOKEN_PREFIX + randomToken(32);
  const id = uuidv7();
  const { rows } = await tx.query<TokenRow>(
    `INSERT INTO api_tokens (tenant_id, id, person_id, token_hash, preview, role, label)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     RETURNING id, person_id, preview, role, label, created_at, last_used_at, revoked_at`,
    [tx.tenantId, id, input.personId, hashToken(token), token.slice(-4), input.role, input.label ?? ''],
  );
  const info = toInfo(rows[0]!);
  await recordEvent(tx, {
    personId: input.personId,
    type: 'token_minted',
    actor: input.actor,
    after: { tokenId: info.id, preview: info.preview, role: info.role, label: info.label },
  });
  return { ...info, token };
}

export async function listTokens(
  tx: TenantTx,
  input: { personId?: string; limit?: number; cursor?: string },
): Promise<Page<TokenInfo>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const values: unknown[] = [tx.tenantId];
  const where = ['tenant_id = $1'];
  if (input.personId) {
    values.push(input.personId);
    where.push(`person_id = $${values.length}`);
  }
  if (cursor) {
    values.push(cursor.createdAt, cursor.id);
    where.push(`(created_at, id) < ($${values.length - 1}::timestamptz, $${values.length}::uuid)`);
  }
  values.push(limit + 1);
  const { rows } = await tx.query<TokenRow>(
    `SELECT id, person_id, preview, role, label, created_at, last_used_at, revoked_at FROM api_tokens
      WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT $${values.length}`,
    values,
  );
  return toPage(rows, limit, toInfo);
}

export async function getToken(tx: TenantTx, id: string): Promise<TokenInfo> {
  const { rows } = await tx.query<TokenRow>(
    `SELECT id, person_id, preview, role, label, created_at, last_used_at, revoked_at FROM api_tokens
      WHERE tenant_id = $1 AND id = $2`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('token');
  return toInfo(rows[0]);
}

/** Revokes a token (idempotent: revoking a revoked token keeps its first revocation time, and records nothing). */
export async function revokeToken(
  tx: TenantTx,
  id: string,
  actor: Actor,
  personId?: string,
): Promise<TokenInfo> {
  const { rows } = await tx.query<TokenRow & { newly: boolean }>(
    `WITH before AS (SELECT revoked_at FROM api_tokens WHERE tenant_id = $1 AND id = $2 FOR UPDATE)
     UPDATE api_tokens t SET revoked_at = coalesce(t.revoked_at, now())
       FROM before
      WHERE t.tenant_id = $1 AND t.id = $2 AND ($3::uuid IS NULL OR t.person_id = $3)
     RETURNING t.id, t.person_id, t.preview, t.role, t.label, t.created_at, t.last_used_at, t.revoked_at,
               before.revoked_at IS NULL AS newly`,
    [tx.tenantId, id, personId ?? null],
  );
  const row = rows[0];
  if (!row) throw notFound('token');
  const info = toInfo(row);
  if (row.newly) {
    await recordEvent(tx, {
      personId: info.personId,
      type: 'token_revoked',
      actor,
      before: { tokenId: info.id, preview: info.preview, role: info.role, label: info.label },
    });
  }
  return info;
}

// last_used_at is written at most once a minute per token, so a busy integration does not turn
// every read into a write. The in-process map stops concurrent requests from all issuing the update.
const LAST_USED_INTERVAL_MS = 60_000;
const lastUsedWrites = new Map<string, number>();

/**
 * Resolves a bearer token to its principal. Runs outside any tenant scope (the tenant is what we
 * are finding out), by hash, in one indexed query, or from the process's auth cache (auth-cache.ts)
 * while that is kept exact by database notifications.
 */
export async function authenticate(
  pool: Pool,
  token: string,
  nowMs: number,
  cache?: AuthCache,
): Promise<Principal> {
  if (!TOKEN_RE.test(token)) throw new AppError('unauthorized', 'The API token is malformed');
  const hash = hashToken(token);
  const key = hash.toString('hex');
  let auth = cache?.get(key, nowMs);
  if (!auth) {
    // The one read before the tenant is known: by the token's hash, across tenants.
    const { rows } = await withSystemRead(pool, (sys) =>
      sys.query<{
        tenant_id: string;
        id: string;
        person_id: string;
        role: TokenRole;
        preview: string;
        revoked_at: string | null;
        last_used_at: string | null;
        person_status: string;
      }>(
        `SELECT t.tenant_id, t.id, t.person_id, t.role, t.preview, t.revoked_at, t.last_used_at, p.status AS person_status
           FROM api_tokens t JOIN people p ON p.tenant_id = t.tenant_id AND p.id = t.person_id
          WHERE t.token_hash = $1`,
        [hash],
      ),
    );
    const row = rows[0];
    if (!row) throw new AppError('unauthorized', 'The API token is not valid');
    if (row.revoked_at) throw new AppError('unauthorized', 'The API token has been revoked');
    if (row.person_status === 'suspended')
      throw new AppError('unauthorized', "The token's person is suspended");
    auth = {
      tenantId: row.tenant_id,
      tokenId: row.id,
      personId: row.person_id,
      role: row.role,
      preview: row.preview,
      lastUsedAt: row.last_used_at ? Date.parse(row.last_used_at) : 0,
    };
    cache?.set(key, auth, nowMs);
  }
  const lastWrite = lastUsedWrites.get(auth.tokenId) ?? 0;
  if (nowMs - auth.lastUsedAt >= LAST_USED_INTERVAL_MS && nowMs - lastWrite >= LAST_USED_INTERVAL_MS) {
    const { tenantId, tokenId } = auth;
    lastUsedWrites.set(tokenId, nowMs);
    auth.lastUsedAt = nowMs;
    if (lastUsedWrites.size > 50_000) lastUsedWrites.clear();
    withTenantAutocommit(pool, tenantId, (tx) =>
      tx.query(
        `UPDATE api_tokens SET last_used_at = now()
          WHERE tenant_id = $1 AND id = $2 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
        [tenantId, tokenId],
      ),
    ).catch(() => lastUsedWrites.delete(tokenId));
  }
  const role = auth.role as TokenRole;
  return {
    tenantId: auth.tenantId,
    tokenId: auth.tokenId,
    personId: auth.personId,
    role,
    preview: auth.preview,
    permissions: permissionsOf(role),
    via: 'token',
  };
}

/** Finds a token by id or by its 4-character preview (for the CLI); refuses an ambiguous preview. */
export async function findTokenForRevocation(
  pool: Pool,
  idOrPreview: string,
): Promise<{ tenantId: string; id: string }> {
  const byId = /^[0-9a-f-]{36}$/i.test(idOrPreview);
  const { rows } = await withSystemRead(pool, (sys) =>
    sys.query<{ tenant_id: string; id: string }>(
      byId
        ? 'SELECT tenant_id, id FROM api_tokens WHERE id = $1'
        : 'SELECT tenant_id, id FROM api_tokens WHERE preview = $1 AND revoked_at IS NULL',
      [idOrPreview],
    ),
  );
  if (rows.length === 0) throw notFound('token');
  if (rows.length > 1) {
    throw new AppError(
      'conflict',
      `${rows.length} active tokens end in "${idOrPreview}"; revoke by id instead`,
    );
  }
  return { tenantId: rows[0]!.tenant_id, id: rows[0]!.id };
}

/** Moves a person's tokens to another person (a merge). */
export async function moveTokens(tx: TenantTx, input: { fromId: string; toId: string }): Promise<number> {
  const { rowCount } = await tx.query(
    'UPDATE api_tokens SET person_id = $3 WHERE tenant_id = $1 AND person_id = $2',
    [tx.tenantId, input.fromId, input.toId],
  );
  return rowCount ?? 0;
}
