// Invitations, password resets and the tenant's sign-in settings: POST /people/:id/invitation,
// POST /invitations/accept, POST /password-reset, POST /password-reset/complete, GET|PUT /auth-settings.
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { forbidden } from '../../platform/errors.ts';
import { IdParams, ProblemSchema, problemResponses, Timestamp } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule, type ServerDeps } from '../../platform/http/server.ts';
import { messageIdKey } from '../inbound/signing.ts';
import type { NotificationMailDeps } from '../outbound/notification-mail.ts';
import { getPerson } from '../people/service.ts';
import { completeLink, inviteAgent, requestPasswordReset } from './accounts.ts';
import type { LinkPurpose } from './links.ts';
import {
  accountFailuresOf,
  actAs,
  addressLimit,
  AuthSettingsSchema,
  Email,
  LinkToken,
  NewPassword,
  RecoveryCode,
  SessionAnswer,
  TenantName,
  secretKeyOf,
  TotpCode,
  withRetryAfter,
} from './schema.ts';
import { startSession } from './sessions.ts';
import { getAuthSettings, putAuthSettings } from './settings.ts';

/** How sign-in links are mailed: the outbound module's notification mail, when a queue runs here. */
export function linkMail(deps: ServerDeps): NotificationMailDeps | undefined {
  const { queue, secretKey } = deps;
  if (!queue || !secretKey) return undefined;
  return {
    messageIdKey: messageIdKey(secretKey),
    send: (job, payload, options) => queue.send(job, payload, options ?? {}),
  };
}

/** Where links lead: RELAYDESK_PUBLIC_URL, else the origin the admin's request came to. */
const baseUrlOf = (deps: ServerDeps, request: FastifyRequest): string =>
  deps.config.publicUrl ?? `${request.protocol}://${request.host}`;

const accountTags = ['sessions'];

export const accountRoutes: RouteModule = (app, deps) => {
  const { pool, clock } = deps;

  app.post(
    '/people/:id/invitation',
    {
      config: { permission: 'people:write' },
      schema: {
        tags: ['people', ...accountTags],
        summary: 'Invite an agent to the console',
        description:
          'Sends the agent (status `invited`, or `active` without a password) a single-use link ' +
          "`<public URL>/console/accept?token=…`, good for 7 days, by mail through the tenant's first " +
          'mailbox; an earlier invitation link of theirs stops working. Following it they choose a ' +
          'password (`POST /invitations/accept`) and become `active`. Answers 202 `{expiresAt}`, with ' +
          '`link` only when no mailbox can send it (hand it over yourself). The link leads to ' +
          'RELAYDESK_PUBLIC_URL, or to the address this request came to.\n\n' +
          'Needs `people:write`; inviting an agent whose role is `admin` needs `tokens:manage` (admin). ' +
          '404 `not_found` for a person not of this tenant. 409 `conflict` for a contact, a suspended ' +
          'person, one with a password already (they reset it) or without an email address, and when ' +
          'the tenant allows single sign-on only.',
        params: IdParams,
        response: {
          202: Type.Object({
            expiresAt: Timestamp,
            link: Type.Optional(Type.String({ description: 'Only when no mailbox could send it.' })),
          }),
          ...problemResponses,
          409: ProblemSchema,
        },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      const invitation = await withTenant(pool, p.tenantId, async (tx) => {
        const person = await getPerson(tx, request.params.id);
        if (person.role === 'admin' && !p.permissions.includes('tokens:manage'))
          throw forbidden('Inviting an admin needs tokens:manage');
        return inviteAgent(tx, {
          personId: person.id,
          createdBy: p.personId,
          baseUrl: baseUrlOf(deps, request),
          now: clock.now(),
          mail: linkMail(deps),
        });
      });
      return reply.code(202).send({
        expiresAt: invitation.expiresAt.toISOString(),
        ...(invitation.mailed ? {} : { link: invitation.link }),
      });
    },
  );

  const complete =
    (purpose: LinkPurpose) =>
    async (
      request: FastifyRequest<{
        Body: { token: string; password: string; displayName?: string; totp?: string; recoveryCode?: string };
      }>,
      reply: Parameters<typeof withRetryAfter>[0],
    ) => {
      const who = await withRetryAfter(reply, () =>
        completeLink(
          { pool, clock, secretKey: secretKeyOf(deps), accountFailures: accountFailuresOf(deps) },
          { purpose, ...request.body },
        ),
      );
      const session = await startSession(pool, clock, reply, { ...who, method: 'password' });
      actAs(request, session);
      return { session };
    };

  const completeResponses = { 200: SessionAnswer, ...problemResponses, 429: ProblemSchema };
  app.post(
    '/invitations/accept',
    {
      config: {
        public: true,
        audit: 'invitations.accept',
        auditRedact: ['token', 'password', 'totp', 'recoveryCode'],
        rateLimit: addressLimit(deps),
      },
      schema: {
        tags: accountTags,
        summary: 'Accept an invitation',
        description:
          'Follows an invitation link: `token` from the link, the `password` chosen (12 to 256 ' +
          'characters) and optionally the `displayName` the person goes by. The person becomes ' +
          '`active` and is signed in: the answer is the new session, with its cookie. The link works once.\n\n' +
          '400 `invalid_token` for a link that is unknown, used, expired or whose person was suspended ' +
          'meanwhile; 400 `validation_failed` for a password too short or too long; 403 `forbidden` ' +
          'when the tenant allows single sign-on only.',
        body: Type.Object(
          {
            token: LinkToken,
            password: NewPassword,
            displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: completeResponses,
      },
    },
    complete('invitation'),
  );

  app.post(
    '/password-reset',
    {
      config: { public: true, rateLimit: addressLimit(deps) },
      schema: {
        tags: accountTags,
        summary: 'Ask for a password reset',
        description:
          'Mails a single-use link `<public URL>/console/reset?token=…`, good for one hour, to the ' +
          'active agent with this address (in the tenant named, or in each tenant where there is one); ' +
          'at most one a minute per person. Always answers 202 `{}`, whether or not the address is ' +
          'known: the answer tells nothing. Links are only made with RELAYDESK_PUBLIC_URL set (a ' +
          "request's own Host header could lead the link elsewhere); without it nothing is sent " +
          '(`relaydesk user reset-password` prints a link instead).',
        body: Type.Object(
          { email: Email, tenant: Type.Optional(TenantName) },
          { additionalProperties: false },
        ),
        response: { 202: Type.Object({}), ...problemResponses, 429: ProblemSchema },
      },
    },
    async (request, reply) => {
      await requestPasswordReset(
        { pool, clock, logger: deps.logger, mail: linkMail(deps) },
        { email: request.body.email, tenant: request.body.tenant, baseUrl: deps.config.publicUrl },
      );
      return reply.code(202).send({});
    },
  );

  app.post(
    '/password-reset/complete',
    {
      config: {
        public: true,
        audit: 'password_reset.complete',
        auditRedact: ['token', 'password', 'totp', 'recoveryCode'],
        rateLimit: addressLimit(deps),
      },
      schema: {
        tags: accountTags,
        summary: 'Set a new password',
        description:
          'Follows a reset link: `token` from the link and the new `password` (12 to 256 characters). ' +
          'Every other session of the person ends, and they are signed in: the answer is the new ' +
          'session, with its cookie. The link works once. An account with TOTP sends its code too ' +
          '(`totp` or `recoveryCode`; without: 401 `second_factor_required`, the link still unused), ' +
          'so that a mailbox alone does not open it.\n\n' +
          '400 `invalid_token` for a link that is unknown, used or expired; 400 `validation_failed` ' +
          'for a password too short or too long; 401 `invalid_credentials` for a wrong code.',
        body: Type.Object(
          {
            token: LinkToken,
            password: NewPassword,
            totp: Type.Optional(TotpCode),
            recoveryCode: Type.Optional(RecoveryCode),
          },
          { additionalProperties: false },
        ),
        response: completeResponses,
      },
    },
    complete('password_reset'),
  );

  app.get(
    '/auth-settings',
    {
      config: { permission: 'tokens:manage' },
      schema: {
        tags: accountTags,
        summary: "Get the tenant's sign-in settings",
        description:
          'Whether TOTP is required, the idle and absolute session timeouts, and whether password ' +
          'sign-in is allowed (the defaults until changed: false, 480 minutes, 168 hours, true).\n\n' +
          'Needs `tokens:manage` (admin).',
        response: { 200: AuthSettingsSchema, ...problemResponses },
      },
    },
    async (request) => withTenantRead(pool, principalOf(request).tenantId, getAuthSettings),
  );

  app.put(
    '/auth-settings',
    {
      config: { permission: 'tokens:manage' },
      schema: {
        tags: accountTags,
        summary: "Change the tenant's sign-in settings",
        description:
          'Replaces the settings (all four fields). They apply at once, to sessions already running ' +
          'too: a shorter timeout ends the sessions it has passed; `requireTotp` restricts the ' +
          'sessions of agents without TOTP to enrolling it; `passwordSignIn: false` leaves single ' +
          'sign-on as the only way in (running sessions stay). `idleTimeoutMinutes` 5 to 10080, ' +
          '`absoluteTimeoutHours` 1 to 2160.\n\n' +
          'Needs `tokens:manage` (admin).',
        body: AuthSettingsSchema,
        response: { 200: AuthSettingsSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenant(pool, principalOf(request).tenantId, (tx) => putAuthSettings(tx, request.body, clock.now())),
  );
};
