// Request and response schemas of the sign-in routes, and what the routes share.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { AppError, unauthorized } from '../../platform/errors.ts';
import type { Principal, SessionPrincipal } from '../../platform/http/auth.ts';
import { Nullable, OneOf, Timestamp, Uuid } from '../../platform/http/schemas.ts';
import { principalOf, type ServerDeps } from '../../platform/http/server.ts';
import { PERSON_ROLES } from '../people/service.ts';
import { permissionsOf } from '../tokens/permissions.ts';
import { DEFAULT_ACCOUNT_FAILURES } from './credentials.ts';
import { PASSWORD_MAX, PASSWORD_MIN } from './passwords.ts';
import { SESSION_METHODS, type SessionInfo } from './sessions.ts';
import { ABSOLUTE_HOURS, IDLE_MINUTES } from './settings.ts';

export const SessionInfoSchema = Type.Object({
  id: Uuid,
  method: OneOf(SESSION_METHODS),
  csrfToken: Type.String({ description: 'Send it as X-CSRF-Token with every POST, PUT, PATCH and DELETE.' }),
  expiresAt: Timestamp,
  idleExpiresAt: Timestamp,
  person: Type.Object({
    id: Uuid,
    displayName: Type.String(),
    email: Nullable(Type.String()),
    role: OneOf(PERSON_ROLES),
    timeZone: Nullable(Type.String()),
  }),
  tenant: Type.Object({ id: Uuid, name: Type.String() }),
  totp: Type.Object({
    enabled: Type.Boolean(),
    required: Type.Boolean({ description: 'The tenant requires it (auth settings).' }),
  }),
});
export const SessionAnswer = Type.Object({ session: SessionInfoSchema });

export const Email = Type.String({ minLength: 3, maxLength: 254 });
/** A password being set: 12 to 256 characters. */
export const NewPassword = Type.String({ minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX });
export const TenantName = Type.String({ minLength: 1, maxLength: 200, description: "The tenant's name." });
export const TotpCode = Type.String({
  minLength: 1,
  maxLength: 16,
  description: 'The 6 digits of the authenticator app.',
});
export const RecoveryCode = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'One of the recovery codes.',
});
/** A link's token, as the link carries it. */
export const LinkToken = Type.String({ minLength: 1, maxLength: 200 });
/** A TOTP code, or a recovery code when the authenticator is lost. */
export const Code = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'The current code of the authenticator app, or an unused recovery code.',
});

export const AuthSettingsSchema = Type.Object(
  {
    requireTotp: Type.Boolean({
      description: 'Every agent must enrol an authenticator app; until they do, their session is restricted.',
    }),
    idleTimeoutMinutes: Type.Integer({
      ...IDLE_MINUTES,
      description: 'A session unused this long ends (default 480).',
    }),
    absoluteTimeoutHours: Type.Integer({
      ...ABSOLUTE_HOURS,
      description: 'A session ends this long after sign-in, however busy (default 168).',
    }),
    passwordSignIn: Type.Boolean({
      description: 'Agents may sign in with a password (off: single sign-on only).',
    }),
  },
  { additionalProperties: false },
);

/** The caller's console session; anything else (an API token, nothing) is 401. */
export function sessionOf(request: FastifyRequest): SessionPrincipal {
  const p = principalOf(request);
  if (p.via !== 'session')
    throw unauthorized('This route is for a console session: sign in with POST /api/v1/session');
  return p as SessionPrincipal;
}

/**
 * After a sign-in, the request is the new session's: the audit trail records it as the person's
 * (its `auditRedact` keeps the password and codes out of what it hashes).
 */
export function actAs(request: FastifyRequest, session: SessionInfo): void {
  const principal: Principal = {
    tenantId: session.tenant.id,
    tokenId: session.id,
    personId: session.person.id,
    role: session.person.role,
    preview: session.id.slice(-4),
    permissions: permissionsOf(session.person.role),
    via: 'session',
  };
  request.principal = principal;
}

/** Runs `work`; a refusal with a retry time (a locked account) carries it as Retry-After. */
export async function withRetryAfter<T>(reply: FastifyReply, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    const seconds = err instanceof AppError ? err.details?.['retryAfterSeconds'] : undefined;
    if (typeof seconds === 'number') reply.header('retry-after', String(seconds));
    throw err;
  }
}

/** Requests a minute one address may make to each public sign-in route (SignInLimits.addressPerMinute). */
export const DEFAULT_ADDRESS_PER_MINUTE = 30;

export const secretKeyOf = (deps: ServerDeps): Buffer => {
  if (!deps.secretKey) throw new Error('console sign-in needs the secret key (RELAYDESK_SECRET_KEY)');
  return deps.secretKey;
};

export const accountFailuresOf = (deps: ServerDeps): number =>
  deps.config.signInLimits?.accountFailures ?? DEFAULT_ACCOUNT_FAILURES;

/**
 * The per-address limit of a public sign-in route: @fastify/rate-limit's in-memory store, so each
 * process counts for itself (an install of several API processes allows that many times more); the
 * per-account lock in the database is what holds across processes.
 */
export const addressLimit = (deps: ServerDeps) => ({
  max: () => deps.config.signInLimits?.addressPerMinute ?? DEFAULT_ADDRESS_PER_MINUTE,
  timeWindow: 60_000,
});
