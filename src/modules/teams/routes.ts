// The tenant's Teams integration: PUT and GET /integrations/teams (admin). The app password is
// sealed and never returned.
import { Type } from 'typebox';
import { withTenantRead } from '../../platform/db/tx.ts';
import { validation } from '../../platform/errors.ts';
import { Nullable, ProblemSchema, problemResponses, Timestamp } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import { operatorAllows } from '../inbound/mailboxes.ts';
import { DEFAULT_TOKEN_URL, getIntegration, putIntegration } from './integrations.ts';
import { DEFAULT_OPENID_METADATA_URL } from './jwt.ts';

const Url = Type.String({ minLength: 8, maxLength: 2048 });

const PutBody = Type.Object(
  {
    appId: Type.String({ minLength: 1, maxLength: 200, description: "The bot's Microsoft App ID" }),
    appPassword: Type.String({
      minLength: 1,
      maxLength: 1024,
      description: 'Its client secret; never returned',
    }),
    tokenUrl: Type.Optional(Url),
    openIdMetadataUrl: Type.Optional(Url),
  },
  { additionalProperties: false },
);

const IntegrationSchema = Type.Object({
  appId: Type.String(),
  tokenUrl: Nullable(Type.String()),
  openIdMetadataUrl: Nullable(Type.String()),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

/**
 * Where the endpoints may point: the Bot Framework's own origins, or what the operator allows
 * (RELAYDESK_PROVIDER_ORIGINS). A tenant admin sets them and the server then sends the bot's secret
 * (tokenUrl) or trusts the keys found there (openIdMetadataUrl): anywhere else would let a tenant
 * reach into the network Relaydesk runs in, or vouch for its own tokens.
 */
const ORIGINS = {
  tokenUrl: [new URL(DEFAULT_TOKEN_URL).origin, 'https://login.microsoftonline.us'],
  openIdMetadataUrl: [new URL(DEFAULT_OPENID_METADATA_URL).origin, 'https://login.botframework.azure.us'],
};

function checkEndpoint(
  key: keyof typeof ORIGINS,
  value: string | undefined,
  operatorOrigins: readonly string[],
) {
  if (value === undefined) return;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || url.username || url.password || url.hash || !/^https?:$/.test(url.protocol))
    throw validation(`${key} must be an http(s) URL without credentials`, [
      { path: `/${key}`, message: 'must be a URL without credentials' },
    ]);
  if (!ORIGINS[key].includes(url.origin) && !operatorAllows(url, operatorOrigins)) {
    const message = `must be on ${ORIGINS[key].join(', ')} (or an origin the operator allows in RELAYDESK_PROVIDER_ORIGINS)`;
    throw validation(`${key} ${message}`, [{ path: `/${key}`, message }]);
  }
}

export const teamsRoutes: RouteModule = (app, deps) => {
  const { pool } = deps;

  app.put(
    '/integrations/teams',
    {
      // The audit trail hashes the request without the password (an unsalted hash of it would be
      // a fast hash of the password).
      config: { permission: 'integrations:manage', auditRedact: ['appPassword'] },
      schema: {
        tags: ['integrations'],
        summary: 'Connect the Microsoft Teams bot',
        description:
          "Sets the tenant's Teams integration (one per tenant): the bot's `appId` and `appPassword` " +
          '(sealed, never returned), and optionally `tokenUrl` (client credentials; default ' +
          `\`${DEFAULT_TOKEN_URL}\`) and \`openIdMetadataUrl\` (the connector's signing keys; default ` +
          `\`${DEFAULT_OPENID_METADATA_URL}\`), which must be on the Bot Framework's origins or one the ` +
          'operator allows (RELAYDESK_PROVIDER_ORIGINS). Replaces the whole integration. The bot ' +
          'receives activities at `/hooks/teams`.\n\n' +
          'Needs `integrations:manage` (admin). 409 `conflict` when another tenant of this ' +
          'installation already connected the same `appId`; 400 `validation_failed` for an endpoint ' +
          'elsewhere.',
        body: PutBody,
        response: { 200: IntegrationSchema, ...problemResponses, 409: ProblemSchema },
      },
    },
    async (request) => {
      const body = request.body as {
        appId: string;
        appPassword: string;
        tokenUrl?: string;
        openIdMetadataUrl?: string;
      };
      const origins = deps.config.providerOrigins ?? [];
      checkEndpoint('tokenUrl', body.tokenUrl, origins);
      checkEndpoint('openIdMetadataUrl', body.openIdMetadataUrl, origins);
      if (!deps.secretKey) throw new Error('the Teams integration needs the secret key');
      return putIntegration(pool, deps.secretKey, {
        tenantId: principalOf(request).tenantId,
        appId: body.appId.trim(),
        appPassword: body.appPassword,
        tokenUrl: body.tokenUrl,
        openIdMetadataUrl: body.openIdMetadataUrl,
      });
    },
  );

  app.get(
    '/integrations/teams',
    {
      config: { permission: 'integrations:manage' },
      schema: {
        tags: ['integrations'],
        summary: 'Get the Microsoft Teams integration',
        description:
          "The tenant's Teams integration, without its password. Needs `integrations:manage` (admin). " +
          '404 `not_found` when the tenant has none.',
        response: { 200: IntegrationSchema, ...problemResponses },
      },
    },
    async (request) => withTenantRead(pool, principalOf(request).tenantId, (tx) => getIntegration(tx)),
  );
};
