// The tenant's Slack workspace over HTTP: connect it with a bot token, see whether it is connected,
// disconnect it. The token is never answered, only a hint of it.
import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
import { Nullable, ProblemSchema, problemResponses, Timestamp } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import { recordAudit } from '../audit/audit.ts';
import { deleteSlackIntegration, getSlackIntegration } from './integration.ts';
import { connectSlack } from './service.ts';

const IntegrationSchema = Type.Object({
  configured: Type.Boolean(),
  apiBaseUrl: Type.String({
    description: 'Where the Web API is called (`https://slack.com/api` by default)',
  }),
  tokenHint: Nullable(
    Type.String({ description: 'The token\'s kind and last four characters: "xoxb-…abcd"' }),
  ),
  teamId: Nullable(Type.String({ description: 'The workspace, as auth.test named it' })),
  teamName: Nullable(Type.String()),
  botUserId: Nullable(Type.String({ description: "The bot's own Slack user id" })),
  updatedAt: Nullable(Timestamp),
});

const IntegrationBody = Type.Object(
  {
    botToken: Type.String({
      minLength: 10,
      maxLength: 255,
      pattern: '^\\s*xoxb-[A-Za-z0-9-]+\\s*$',
      description: 'A bot token (`xoxb-…`) of the Slack app, with the `chat:write` scope',
    }),
    apiBaseUrl: Type.Optional(
      Type.String({
        maxLength: 500,
        description:
          "Slack's Web API (default `https://slack.com/api`); another origin only where the operator allows it (RELAYDESK_PROVIDER_ORIGINS)",
      }),
    ),
  },
  { additionalProperties: false },
);

export const slackIntegrationRoutes: RouteModule = (app, { pool, secretKey, clock, config, logger }) => {
  const manage = { config: { permission: 'integrations:manage' as const } };
  // PUT and DELETE record their own audit events (connect, disconnect: the token left out of the
  // hash), so the generic per-request one would be a second record of the same action.
  const manageAudited = { config: { permission: 'integrations:manage' as const, audit: false as const } };
  const key = () => {
    if (!secretKey) throw new AppError('internal_error', 'no secret key configured');
    return secretKey;
  };

  app.get(
    '/integrations/slack',
    {
      ...manage,
      schema: {
        tags: ['integrations'],
        summary: 'Show the Slack integration',
        description:
          "Whether the tenant's Slack workspace is connected, the Web API's base URL, a hint of the bot " +
          'token (its kind and last four characters; never the token) and the workspace and bot user ' +
          'that auth.test named when it was saved. Not connected: `configured` false and the rest ' +
          'null (the base URL the default).\n\nNeeds `integrations:manage` (admin).',
        response: { 200: IntegrationSchema, ...problemResponses },
      },
    },
    async (request) => withTenantRead(pool, principalOf(request).tenantId, getSlackIntegration),
  );

  app.put(
    '/integrations/slack',
    {
      ...manageAudited,
      schema: {
        tags: ['integrations'],
        summary: 'Connect Slack',
        description:
          'Connects the tenant to a Slack workspace with a bot token (`xoxb-…`, scope `chat:write`), ' +
          'replacing an earlier one. The token is checked first with `auth.test`; only a token Slack ' +
          'accepts is kept, encrypted, and it is never answered. Notifications then reach people by ' +
          "their `slack` identity (a Slack user id, in the app's DM) and channels a rule names by id " +
          '(the bot must be invited to a channel). Answers 200 as the GET does.\n\n' +
          'Needs `integrations:manage` (admin). 400 `provider_credentials_rejected` when Slack refuses ' +
          'the token (`providerError`: `invalid_auth`, `token_revoked`, `account_inactive`, ...); 400 ' +
          "`validation_failed` for a base URL that is not Slack's nor allowed by the operator; 503 " +
          '`provider_unavailable` when Slack cannot be asked right now (retry).',
        body: IntegrationBody,
        response: { 200: IntegrationSchema, ...problemResponses, 503: ProblemSchema },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const audit = {
        tenantId: principal.tenantId,
        actorId: principal.personId,
        actorVia: principal.via,
        action: 'integrations.slack.connect',
        targetType: 'slack_integration',
        requestId: request.id,
        // Only the hash of the request is kept; the token is left out of it all the same.
        payload: { apiBaseUrl: request.body.apiBaseUrl ?? null },
      };
      try {
        const saved = await connectSlack({
          pool,
          secretKey: key(),
          clock,
          tenantId: principal.tenantId,
          botToken: request.body.botToken,
          apiBaseUrl: request.body.apiBaseUrl,
          operatorOrigins: config.providerOrigins ?? [],
        });
        await recordAudit({ pool, logger }, { ...audit, targetId: saved.teamId, outcome: 'success' });
        return saved;
      } catch (err) {
        const code = err instanceof AppError ? err.code : 'internal_error';
        await recordAudit(
          { pool, logger },
          { ...audit, outcome: code === 'provider_unavailable' ? 'unavailable' : 'failed', errorCode: code },
        );
        throw err;
      }
    },
  );

  app.delete(
    '/integrations/slack',
    {
      ...manageAudited,
      schema: {
        tags: ['integrations'],
        summary: 'Disconnect Slack',
        description:
          "Forgets the tenant's Slack token: nothing more is sent to Slack (attempts still queued fail " +
          'as `auth`). The Slack app itself stays installed in the workspace. Answers 204.\n\n' +
          'Needs `integrations:manage` (admin). 404 `not_found` when Slack is not connected.',
        response: { 204: Type.Null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await withTenant(pool, principal.tenantId, deleteSlackIntegration);
      await recordAudit(
        { pool, logger },
        {
          tenantId: principal.tenantId,
          actorId: principal.personId,
          actorVia: principal.via,
          action: 'integrations.slack.disconnect',
          targetType: 'slack_integration',
          requestId: request.id,
          outcome: 'success',
          payload: null,
        },
      );
      return reply.code(204).send(null);
    },
  );
};
