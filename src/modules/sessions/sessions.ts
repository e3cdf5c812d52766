// Console sessions: a browser that signed in holds a random secret in the `rd_session` cookie
// (HttpOnly, SameSite=Lax, Secure behind TLS); the database holds only its SHA-256, like an API
// token's. Every request looks the session up together with its person's status, kind and role and
// the tenant's timeouts, with no cache: a suspension, a role change or a shorter timeout applies to
// the very next request.
import type { FastifyReply } from 'fastify';
import type { Clock } from '../../platform/clock.ts';
import { sha256 } from '../../platform/crypto.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withSystemRead, withTenant, withTenantAutocommit } from '../../platform/db/tx.ts';
import { AppError, notFound } from '../../platform/errors.ts';
import { type AuthenticateSession, SESSION_COOKIE } from '../../platform/http/auth.ts';
import { randomToken, uuidv7 } from '../../platform/ids.ts';
import type { PersonRole } from '../people/service.ts';
import { permissionsOf } from '../tokens/permissions.ts';
import {
  type AuthSettings,
  getAuthSettings,
  SETTINGS_COLUMNS,
  type SettingsRow,
  toSettings,
} from './settings.ts';

export const SESSION_METHODS = ['password', 'oidc'] as const;
export type SessionMethod = (typeof SESSION_METHODS)[number];

/** What the console knows of its session (GET /session). */
export interface SessionInfo {
  id: string;
  method: SessionMethod;
  /** Send it in X-CSRF-Token with every write. */
  csrfToken: string;
  /** When the session ends however busy (absolute timeout). */
  expiresAt: string;
  /** When it ends unless used before (idle timeout; never after expiresAt). */
  idleExpiresAt: string;
  person: {
    id: string;
    displayName: string;
    email: string | null;
    role: PersonRole;
    timeZone: string | null;
  };
  tenant: { id: string; name: string };
  totp: { enabled: boolean; required: boolean };
}

const SECRET_RE = /^[A-Za-z0-9_-]{43}$/;
/** last_seen_at is written at most this often per session: the idle timeout is minutes, not seconds. */
const TOUCH_INTERVAL_MS = 60_000;

const hours = (n: number) => n * 3_600_000;
const minutes = (n: number) => n * 60_000;

function expiryOf(
  createdAt: Date,
  lastSeenAt: Date,
  settings: Pick<AuthSettings, 'idleTimeoutMinutes' | 'absoluteTimeoutHours'>,
) {
  const expiresAt = new Date(createdAt.getTime() + hours(settings.absoluteTimeoutHours));
  const idle = new Date(lastSeenAt.getTime() + minutes(settings.idleTimeoutMinutes));
  return { expiresAt, idleExpiresAt: idle < expiresAt ? idle : expiresAt };
}

interface SessionRow extends SettingsRow {
  id: string;
  method: SessionMethod;
  csrf_token: string;
  created_at: string;
  last_seen_at: string;
  person_id: string;
  display_name: string;
  role: PersonRole;
  time_zone: string | null;
  email: string | null;
  tenant_name: string;
  totp_enabled: boolean;
}

/** The session's info (any session of the tenant, current or not). */
export async function sessionInfo(tx: TenantTx, sessionId: string): Promise<SessionInfo> {
  const { rows } = await tx.query<SessionRow>(
    `SELECT s.id, s.method, s.csrf_token, s.created_at, s.last_seen_at, s.person_id,
            p.display_name, p.role, p.time_zone,
            (SELECT e.address FROM person_emails e
              WHERE e.tenant_id = p.tenant_id AND e.person_id = p.id AND e.is_primary) AS email,
            t.name AS tenant_name, c.totp_enabled_at IS NOT NULL AS totp_enabled, ${SETTINGS_COLUMNS}
       FROM console_sessions s
       JOIN people p ON p.tenant_id = s.tenant_id AND p.id = s.person_id
       JOIN tenants t ON t.id = s.tenant_id
       LEFT JOIN person_credentials c ON c.tenant_id = s.tenant_id AND c.person_id = s.person_id
       LEFT JOIN auth_settings a ON a.tenant_id = s.tenant_id
      WHERE s.tenant_id = $1 AND s.id = $2`,
    [tx.tenantId, sessionId],
  );
  const r = rows[0];
  if (!r) throw notFound('session');
  const settings = toSettings(r);
  const { expiresAt, idleExpiresAt } = expiryOf(new Date(r.created_at), new Date(r.last_seen_at), settings);
  return {
    id: r.id,
    method: r.method,
    csrfToken: r.csrf_token,
    expiresAt: expiresAt.toISOString(),
    idleExpiresAt: idleExpiresAt.toISOString(),
    person: {
      id: r.person_id,
      displayName: r.display_name,
      email: r.email,
      role: r.role,
      timeZone: r.time_zone,
    },
    tenant: { id: tx.tenantId, name: r.tenant_name },
    totp: { enabled: r.totp_enabled, required: settings.requireTotp },
  };
}

/** Sets the session cookie on the answer (Secure when the browser reached us over TLS). */
export function setSessionCookie(reply: FastifyReply, secret: string, maxAgeSeconds: number): void {
  reply.setCookie(SESSION_COOKIE, secret, {
    httpOnly: true,
    sameSite: 'lax',
    path: '/',
    secure: reply.request.secureContext,
    maxAge: maxAgeSeconds,
  });
}

/** Tells the browser to forget the session cookie. */
export function clearSessionCookie(reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, {
    httpOnly: true,
    sameSite: 'lax',
    path: '/',
    secure: reply.request.secureContext,
  });
}

export interface StartSessionInput {
  tenantId: string;
  /** An active agent of the tenant (anyone else is refused: invalid_credentials). */
  personId: string;
  /** How they proved who they are. */
  method: SessionMethod;
}

/**
 * Starts a session for a person who has proved who they are (a password with its second factor, an
 * invitation or reset link, single sign-on): writes it, sets the cookie on `reply`, answers its info.
 */
export async function startSession(
  pool: Pool,
  clock: Clock,
  reply: FastifyReply,
  input: StartSessionInput,
): Promise<SessionInfo> {
  const secret = randomToken(32);
  const now = clock.now();
  const id = uuidv7(now.getTime());
  const { info, settings } = await withTenant(pool, input.tenantId, async (tx) => {
    const { rows } = await tx.query<{ kind: string; status: string }>(
      'SELECT kind, status FROM people WHERE tenant_id = $1 AND id = $2',
      [tx.tenantId, input.personId],
    );
    if (rows[0]?.kind !== 'agent' || rows[0].status !== 'active')
      throw new AppError('invalid_credentials', 'Only an active agent can sign in');
    const settings = await getAuthSettings(tx);
    // Ended sessions of the tenant go now (they are refused anyway; this keeps the table small).
    await tx.query(
      'DELETE FROM console_sessions WHERE tenant_id = $1 AND (created_at <= $2 OR last_seen_at <= $3)',
      [
        tx.tenantId,
        new Date(now.getTime() - hours(settings.absoluteTimeoutHours)),
        new Date(now.getTime() - minutes(settings.idleTimeoutMinutes)),
      ],
    );
    await tx.query(
      `INSERT INTO console_sessions (tenant_id, id, person_id, secret_hash, csrf_token, method, created_at, last_seen_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
      [tx.tenantId, id, input.personId, sha256(secret), randomToken(24), input.method, now],
    );
    return { info: await sessionInfo(tx, id), settings };
  });
  setSessionCookie(reply, secret, settings.absoluteTimeoutHours * 3600);
  return info;
}

/** Ends one session (signing out). */
export async function endSession(pool: Pool, tenantId: string, sessionId: string): Promise<void> {
  await withTenantAutocommit(pool, tenantId, (tx) =>
    tx.query('DELETE FROM console_sessions WHERE tenant_id = $1 AND id = $2', [tx.tenantId, sessionId]),
  );
}

/** Ends every session of the person ("sign out everywhere", a new password). Answers how many. */
export async function endAllSessions(tx: TenantTx, personId: string): Promise<number> {
  const { rowCount } = await tx.query(
    'DELETE FROM console_sessions WHERE tenant_id = $1 AND person_id = $2',
    [tx.tenantId, personId],
  );
  return rowCount ?? 0;
}

interface AuthRow extends SettingsRow {
  tenant_id: string;
  id: string;
  person_id: string;
  csrf_token: string;
  created_at: string;
  last_seen_at: string;
  kind: string;
  status: string;
  role: PersonRole | null;
  totp_enabled: boolean;
}

/** The HTTP server's session authenticator (ServerDeps.authenticateSession). */
export function sessionAuthenticator(deps: { pool: Pool; clock: Clock }): AuthenticateSession {
  return async (secret) => {
    if (!SECRET_RE.test(secret)) throw new AppError('unauthorized', 'The session cookie is malformed');
    // The one read before the tenant is known: by the secret's hash, across tenants.
    const { rows } = await withSystemRead(deps.pool, (sys) =>
      sys.query<AuthRow>(
        `SELECT s.tenant_id, s.id, s.person_id, s.csrf_token, s.created_at, s.last_seen_at,
                p.kind, p.status, p.role, c.totp_enabled_at IS NOT NULL AS totp_enabled, ${SETTINGS_COLUMNS}
           FROM console_sessions s
           JOIN people p ON p.tenant_id = s.tenant_id AND p.id = s.person_id
           LEFT JOIN person_credentials c ON c.tenant_id = s.tenant_id AND c.person_id = s.person_id
           LEFT JOIN auth_settings a ON a.tenant_id = s.tenant_id
          WHERE s.secret_hash = $1`,
        [sha256(secret)],
      ),
    );
    const row = rows[0];
    if (!row) throw new AppError('unauthorized', 'The session is not valid (signed out, or ended)');
    if (row.kind !== 'agent' || row.status !== 'active' || row.role === null)
      throw new AppError('unauthorized', "The session's person is suspended or no longer an agent");
    const now = deps.clock.now();
    const settings = toSettings(row);
    const lastSeen = new Date(row.last_seen_at);
    const { expiresAt, idleExpiresAt } = expiryOf(new Date(row.created_at), lastSeen, settings);
    if (now >= expiresAt || now >= idleExpiresAt)
      throw new AppError(
        'session_expired',
        now >= expiresAt
          ? 'The session has reached its absolute timeout; sign in again'
          : 'The session was idle too long; sign in again',
      );
    if (now.getTime() - lastSeen.getTime() >= TOUCH_INTERVAL_MS) {
      await withTenantAutocommit(deps.pool, row.tenant_id, (tx) =>
        tx.query(
          'UPDATE console_sessions SET last_seen_at = greatest(last_seen_at, $3) WHERE tenant_id = $1 AND id = $2',
          [tx.tenantId, row.id, now],
        ),
      );
    }
    return {
      tenantId: row.tenant_id,
      tokenId: row.id,
      personId: row.person_id,
      role: row.role,
      preview: row.id.slice(-4),
      permissions: permissionsOf(row.role),
      via: 'session',
      csrfToken: row.csrf_token,
      secondFactorEnrollmentRequired: settings.requireTotp && !row.totp_enabled,
    };
  };
}
