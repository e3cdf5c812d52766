// The console's sign-in, its session and its second factor: POST|GET|DELETE /session, DELETE
// /sessions, /session/totp and /session/recovery-codes. The invitation, reset and settings routes
// are in account-routes.ts; sessionRoutes registers both.
import rateLimit from '@fastify/rate-limit';
import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { AppError, conflict, validation } from '../../platform/errors.ts';
import { ProblemSchema, problemResponses } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import { accountRoutes } from './account-routes.ts';
import {
  checkSecondFactor,
  clearFailures,
  enableTotp,
  lockCredentials,
  lockedError,
  newTotpSecret,
  recordFailure,
  replaceRecoveryCodes,
  savePendingTotp,
  totpStep,
  disableTotp,
} from './credentials.ts';
import {
  accountFailuresOf,
  addressLimit,
  Code,
  Email,
  secretKeyOf,
  RecoveryCode,
  SessionAnswer,
  sessionOf,
  TenantName,
  TotpCode,
  actAs,
  withRetryAfter,
} from './schema.ts';
import { clearSessionCookie, endAllSessions, endSession, sessionInfo, startSession } from './sessions.ts';
import { checkPasswordSignIn } from './sign-in.ts';

const SignInBody = Type.Object(
  {
    email: Email,
    password: Type.String({ minLength: 1, maxLength: 256 }),
    tenant: Type.Optional(TenantName),
    totp: Type.Optional(TotpCode),
    recoveryCode: Type.Optional(RecoveryCode),
  },
  { additionalProperties: false },
);
const CodeBody = Type.Object({ code: Code }, { additionalProperties: false });
const RecoveryCodes = Type.Object({
  recoveryCodes: Type.Array(Type.String(), {
    description: 'Ten single-use codes, shown this once: each signs in once in place of a TOTP code.',
  }),
});

const wrongCode = () =>
  validation('The code is not a current code of the authenticator app, nor an unused recovery code', [
    { path: '/code', message: 'is not a current code of the authenticator app nor an unused recovery code' },
  ]);

const sessionTags = ['sessions'];

export const sessionRoutes: RouteModule = async (app, deps) => {
  const { pool, clock } = deps;
  // Only routes that ask for it (config.rateLimit) are limited.
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) =>
      new AppError('rate_limited', `Too many requests from this address; retry in ${context.after}`, {
        details: { retryAfterSeconds: Math.ceil(context.ttl / 1000) },
      }),
  });

  app.post(
    '/session',
    {
      config: {
        public: true,
        auditRedact: ['password', 'totp', 'recoveryCode'],
        rateLimit: addressLimit(deps),
      },
      schema: {
        tags: sessionTags,
        summary: 'Sign in to the console',
        description:
          'Signs an agent in with their email address and password and answers the new session, with the ' +
          '`rd_session` cookie (HttpOnly, SameSite=Lax, Secure behind TLS). The console then sends the ' +
          "session's `csrfToken` as `X-CSRF-Token` with every write.\n\n" +
          '401 `invalid_credentials` for an unknown address, a wrong password, a contact, a suspended or ' +
          'invited person, one without a password, or a tenant that allows single sign-on only: the same ' +
          'answer after the same work for all. 401 `second_factor_required` when the password is right and ' +
          'the account has TOTP: send everything again with `totp` (or `recoveryCode`); a wrong code is ' +
          '401 `invalid_credentials`. 409 `tenant_required` (with `tenants`, their names) when the address ' +
          'and password match agents of several tenants and `tenant` was not given. 429 `rate_limited` with ' +
          'Retry-After after repeated failures on the account (it locks for a minute, then longer) or too ' +
          'many requests from the address.',
        body: SignInBody,
        response: {
          200: SessionAnswer,
          ...problemResponses,
          409: ProblemSchema,
          429: ProblemSchema,
        },
      },
    },
    async (request, reply) => {
      const who = await withRetryAfter(reply, () =>
        checkPasswordSignIn(
          { pool, clock, secretKey: secretKeyOf(deps), accountFailures: accountFailuresOf(deps) },
          request.body,
        ),
      );
      const session = await startSession(pool, clock, reply, { ...who, method: 'password' });
      actAs(request, session);
      return { session };
    },
  );

  app.get(
    '/session',
    {
      config: { beforeSecondFactor: true },
      schema: {
        tags: sessionTags,
        summary: 'Describe the console session',
        description:
          'The calling session: its person, tenant, CSRF token, when it ends (`expiresAt`, absolute; ' +
          '`idleExpiresAt`, unless used before) and whether TOTP is on or required. Each request ' +
          'with the session moves `idleExpiresAt` on (at most once a minute).\n\n' +
          '401 `unauthorized` without a session (an API token is not one), 401 `session_expired` for ' +
          'one that has ended.',
        response: { 200: SessionAnswer, ...problemResponses },
      },
    },
    async (request) => {
      const p = sessionOf(request);
      return { session: await withTenantRead(pool, p.tenantId, (tx) => sessionInfo(tx, p.tokenId)) };
    },
  );

  app.delete(
    '/session',
    {
      config: { beforeSecondFactor: true },
      schema: {
        tags: sessionTags,
        summary: 'Sign out',
        description:
          'Ends the calling session and clears its cookie. Answers 204. Like every write of a ' +
          'session, it needs `X-CSRF-Token` (403 `csrf_failed` without).\n\n' +
          '401 `unauthorized` without a session.',
        response: { 204: Type.Null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      const p = sessionOf(request);
      await endSession(pool, p.tenantId, p.tokenId);
      clearSessionCookie(reply);
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/sessions',
    {
      config: { beforeSecondFactor: true },
      schema: {
        tags: sessionTags,
        summary: 'Sign out everywhere',
        description:
          "Ends every console session of the caller's person, in every browser, this one included " +
          '(its cookie is cleared). Answers 204. With an API token it ends the sessions of the ' +
          "token's person (the token itself stays valid).",
        response: { 204: Type.Null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      await withTenant(pool, p.tenantId, (tx) => endAllSessions(tx, p.personId));
      if (p.via === 'session') clearSessionCookie(reply);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/session/totp',
    {
      config: { beforeSecondFactor: true, audit: 'session.totp.start' },
      schema: {
        tags: sessionTags,
        summary: 'Start enrolling an authenticator app',
        description:
          'Makes a new TOTP secret (RFC 6238: SHA-1, 6 digits, 30 seconds) and answers it as `secret` ' +
          '(base32) and `otpauthUri` (for a QR code). Nothing changes until `POST /session/totp/confirm` ' +
          'sends its first code; starting again replaces the secret waiting for it.\n\n' +
          '409 `conflict` when TOTP is on already (turn it off first). 401 `unauthorized` without a session.',
        response: {
          200: Type.Object({ secret: Type.String(), otpauthUri: Type.String() }),
          ...problemResponses,
          409: ProblemSchema,
        },
      },
    },
    async (request) => {
      const p = sessionOf(request);
      const now = clock.now();
      return withTenant(pool, p.tenantId, async (tx) => {
        const credentials = await lockCredentials(tx, p.personId);
        if (credentials?.totpEnabled)
          throw conflict('TOTP is on already: turn it off first (DELETE /session/totp)');
        const info = await sessionInfo(tx, p.tokenId);
        const label = `${info.person.email ?? info.person.displayName} (${info.tenant.name})`;
        const created = newTotpSecret(secretKeyOf(deps), label);
        await savePendingTotp(tx, p.personId, created.sealed, now);
        return { secret: created.secret, otpauthUri: created.uri };
      });
    },
  );

  app.post(
    '/session/totp/confirm',
    {
      config: { beforeSecondFactor: true, audit: 'session.totp.confirm', auditRedact: ['code'] },
      schema: {
        tags: sessionTags,
        summary: 'Turn TOTP on',
        description:
          'Sends the first code of the authenticator app enrolled with `POST /session/totp`: TOTP is on ' +
          'from now on (sign-in asks for a code), and the answer carries ten recovery codes, shown this ' +
          'once, each good for one sign-in without the app.\n\n' +
          '400 `validation_failed` (`/code`) for a wrong code; repeated wrong codes lock the account like ' +
          'wrong passwords (429 `rate_limited`). 409 `conflict` when no enrolment was started.',
        body: Type.Object({ code: TotpCode }, { additionalProperties: false }),
        response: { 200: RecoveryCodes, ...problemResponses, 409: ProblemSchema, 429: ProblemSchema },
      },
    },
    async (request, reply) => {
      const p = sessionOf(request);
      const now = clock.now();
      const outcome = await withRetryAfter(reply, () =>
        withTenant(pool, p.tenantId, async (tx) => {
          const credentials = await lockCredentials(tx, p.personId);
          if (credentials?.lockedUntil && credentials.lockedUntil > now)
            throw lockedError(credentials.lockedUntil, now);
          if (!credentials?.totpPendingSecret)
            throw conflict('No enrolment is waiting for its code: start one with POST /session/totp');
          const step = totpStep(
            secretKeyOf(deps),
            credentials.totpPendingSecret,
            request.body.code.trim(),
            now,
            null,
          );
          if (step === undefined) {
            await recordFailure(tx, p.personId, now, accountFailuresOf(deps));
            return undefined;
          }
          await enableTotp(tx, p.personId, step, now);
          await clearFailures(tx, p.personId, now);
          return replaceRecoveryCodes(tx, p.personId, now);
        }),
      );
      if (!outcome) throw wrongCode();
      return { recoveryCodes: outcome };
    },
  );

  /** Checks a code of a person with TOTP on; then `then` runs in the same transaction. */
  const withCode = <T>(
    request: { body: { code: string } } & Parameters<typeof sessionOf>[0],
    reply: Parameters<typeof withRetryAfter>[0],
    then: (tx: Parameters<Parameters<typeof withTenant>[2]>[0], now: Date) => Promise<T>,
  ) => {
    const p = sessionOf(request);
    const now = clock.now();
    return withRetryAfter(reply, async () => {
      const outcome = await withTenant(pool, p.tenantId, async (tx) => {
        const credentials = await lockCredentials(tx, p.personId);
        if (credentials?.lockedUntil && credentials.lockedUntil > now)
          throw lockedError(credentials.lockedUntil, now);
        if (!credentials?.totpEnabled) throw conflict('TOTP is not on');
        const code = request.body.code.trim();
        const numeric = /^\d{6}$/.test(code);
        const result = await checkSecondFactor(tx, {
          secretKey: secretKeyOf(deps),
          personId: p.personId,
          credentials,
          ...(numeric ? { totp: code } : { recoveryCode: code }),
          now,
        });
        if (result !== 'ok') {
          await recordFailure(tx, p.personId, now, accountFailuresOf(deps));
          return { wrong: true as const };
        }
        await clearFailures(tx, p.personId, now);
        return { value: await then(tx, now) };
      });
      if ('wrong' in outcome) throw wrongCode();
      return outcome.value;
    });
  };

  app.delete(
    '/session/totp',
    {
      config: { auditRedact: ['code'] },
      schema: {
        tags: sessionTags,
        summary: 'Turn TOTP off',
        description:
          'Turns TOTP off and voids the recovery codes, given a current code of the app or an unused ' +
          'recovery code (`code`). Answers 204. In a tenant that requires TOTP the session is then ' +
          'restricted until a new app is enrolled (the way to replace a lost one).\n\n' +
          '400 `validation_failed` (`/code`) for a wrong code (repeated ones lock the account: 429). ' +
          '409 `conflict` when TOTP is not on.',
        body: CodeBody,
        response: { 204: Type.Null(), ...problemResponses, 409: ProblemSchema, 429: ProblemSchema },
      },
    },
    async (request, reply) => {
      await withCode(request, reply, (tx, now) => disableTotp(tx, sessionOf(request).personId, now));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/session/recovery-codes',
    {
      config: { auditRedact: ['code'] },
      schema: {
        tags: sessionTags,
        summary: 'Make new recovery codes',
        description:
          'Answers ten new recovery codes (shown this once); the old ones stop working. Needs a current ' +
          'code of the app or an unused recovery code (`code`).\n\n' +
          '400 `validation_failed` (`/code`) for a wrong code (repeated ones lock the account: 429). ' +
          '409 `conflict` when TOTP is not on.',
        body: CodeBody,
        response: { 200: RecoveryCodes, ...problemResponses, 409: ProblemSchema, 429: ProblemSchema },
      },
    },
    async (request, reply) => ({
      recoveryCodes: await withCode(request, reply, (tx, now) =>
        replaceRecoveryCodes(tx, sessionOf(request).personId, now),
      ),
    }),
  );

  await accountRoutes(app, deps);
};
