// POST /hooks/teams: the messaging endpoint of every tenant's bot. No API token: the Bot Framework
// connector's JWT is the proof, verified before anything is stored (a missing token 401, any other
// failure 403). The integration is found by the token's audience (the bot's app id, unique in the
// installation) read unverified, and the token is then verified for that integration.
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { AppError } from '../../platform/errors.ts';
import { ProblemSchema } from '../../platform/http/schemas.ts';
import type { RouteModule } from '../../platform/http/server.ts';
import { type Activity, receiveActivity } from './activities.ts';
import { BotConnector } from './connector.ts';
import { integrationByAppId } from './integrations.ts';
import {
  BotKeys,
  bearerToken,
  TokenMissing,
  TokenRejected,
  unverifiedAudience,
  verifyActivityToken,
} from './jwt.ts';

const ActivityBody = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 64 }),
    channelId: Type.String({ minLength: 1, maxLength: 64 }),
    serviceUrl: Type.String({ minLength: 1, maxLength: 2048 }),
  },
  { additionalProperties: true },
);

export const teamsHookRoutes: RouteModule = (app, deps) => {
  const { pool, logger, clock } = deps;
  const keys = new BotKeys({ clock });
  const connector = new BotConnector({ clock });
  const tenantOf = new WeakMap<FastifyRequest, string>();

  app.post(
    '/hooks/teams',
    {
      config: { public: true },
      bodyLimit: 256 * 1024,
      // The proof first, before the body is validated: an unproven request learns nothing.
      preValidation: async (request) => {
        try {
          const token = bearerToken(request.headers.authorization);
          const integration = await integrationByAppId(pool, unverifiedAudience(token));
          if (!integration) throw new TokenRejected('no bot with this app id');
          const body = (request.body ?? {}) as Record<string, unknown>;
          await verifyActivityToken(keys, clock, {
            token,
            appId: integration.appId,
            metadataUrl: integration.openIdMetadataUrl,
            channelId: body['channelId'],
            serviceUrl: body['serviceUrl'],
          });
          tenantOf.set(request, integration.tenantId);
        } catch (err) {
          if (err instanceof TokenMissing) throw new AppError('unauthorized', err.message);
          if (err instanceof TokenRejected) {
            logger.info({ reason: err.message }, 'a Teams activity was refused');
            throw new AppError('forbidden', err.message);
          }
          throw err;
        }
      },
      schema: {
        tags: ['hooks'],
        summary: 'Receive Microsoft Teams activities (Bot Framework messaging endpoint)',
        security: [],
        description:
          "The messaging endpoint of every tenant's Teams bot. It takes no API token: the Bot " +
          "Framework connector's JWT (`Authorization: Bearer`) is verified before anything is stored, " +
          'by the connector authentication rules: RS256, signed by a key of the JWKS named by the ' +
          "integration's OpenID metadata (refreshed daily and on an unknown key id), the key endorsed " +
          "for the activity's `channelId`, issuer `https://api.botframework.com`, audience the bot's " +
          'app id (which also picks the tenant), valid with 5 minutes of skew, and its `serviceurl` ' +
          "claim equal to the activity's `serviceUrl`.\n\n" +
          'Every verified activity stores or refreshes the conversation reference of its sender ' +
          '(user, conversation, serviceUrl, conversation type, Entra tenant); a sender linked to no ' +
          'person (identity kinds `teams`, `entra`) is recorded for triage (`/unmapped-identities`). ' +
          'An `invoke` named `adaptiveCard/action` (Action.Execute with verb `assignToMe`, `addNote`, ' +
          '`reply` or `changeStatus` and `data.ticketId`) is carried out as that person, with their ' +
          'permissions, and answered with 200 and `{statusCode: 200, type: ' +
          '"application/vnd.microsoft.card.adaptive", value: <the refreshed card>}`; the message ' +
          'action `composeExtension/submitAction` with `commandId` `createTicket` creates a ticket ' +
          'from the message. A message with a command (`ticket <subject>`, `assign T-12`, `note T-12 ' +
          '<text>`, `reply T-12 <text>`, `status T-12 <status>`, `help`) is carried out and answered ' +
          'in the conversation. Every action is in the audit trail.\n\n' +
          'Errors: 401 `unauthorized` without a token; 403 `forbidden` for a token that does not ' +
          'verify (nothing is stored); 400 `validation_failed` for an activity without `type`, ' +
          '`channelId` or `serviceUrl`.',
        body: ActivityBody,
        response: {
          200: Type.Object({}, { additionalProperties: true, description: 'The invoke answer, or {}' }),
          400: ProblemSchema,
          401: ProblemSchema,
          403: ProblemSchema,
          501: Type.Object(
            {},
            { additionalProperties: true, description: 'An invoke the bot does not implement' },
          ),
          503: ProblemSchema,
        },
      },
    },
    async (request, reply) => {
      const tenantId = tenantOf.get(request);
      if (!tenantId) throw new AppError('forbidden', 'the Bot Framework token was not verified');
      if (!deps.secretKey) throw new Error('the Teams endpoint needs the secret key');
      const answer = await receiveActivity(
        {
          pool,
          logger,
          clock,
          secretKey: deps.secretKey,
          queue: deps.queue,
          connector,
        },
        tenantId,
        request.body as Activity,
        request.id,
      );
      return reply.code(answer.status as 200).send(answer.body as never);
    },
  );
};
