// Single sign-on settings over HTTP: an admin sets up, shows and removes the tenant's OpenID
// providers (the client secret is kept sealed and never answered); the sign-in page lists the
// providers a tenant's people can use (public: it says nothing but their kinds and labels).
import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
import type { Principal } from '../../platform/http/auth.ts';
import { OneOf, problemResponses, Timestamp } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import { recordAudit } from '../audit/audit.ts';
import {
  DEFAULT_LABELS,
  deleteSsoProvider,
  enabledSsoProviders,
  getSsoProvider,
  saveSsoProvider,
  SSO_PROVIDERS,
} from './providers.ts';
import { resolveSignInTenant, ssoRedirectUriOf } from './sign-in.ts';

const Provider = OneOf(SSO_PROVIDERS, {
  description: '`entra` (Microsoft Entra ID), `google`, or `oidc` (any other OpenID provider)',
});
const ProviderParams = Type.Object({ provider: Provider }, { additionalProperties: false });

const ProviderSchema = Type.Object({
  provider: Provider,
  issuer: Type.String({ description: "The provider's issuer identifier, as its metadata names it" }),
  clientId: Type.String(),
  enabled: Type.Boolean(),
  allowedDomains: Type.Array(Type.String(), {
    description: 'Only people whose verified email is in one of these domains may sign in; empty: any',
  }),
  label: Type.String({ description: 'What the sign-in page calls it' }),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const ProviderBody = Type.Object(
  {
    issuer: Type.String({
      minLength: 1,
      maxLength: 500,
      description:
        'The issuer identifier: Entra `https://login.microsoftonline.com/{directory id}/v2.0`, Google ' +
        '`https://accounts.google.com`, or the issuer of any other OpenID provider. https only (plain ' +
        'http only for a provider on this machine: localhost, 127.0.0.1, ::1)',
    }),
    clientId: Type.String({ minLength: 1, maxLength: 500, description: 'The client (application) id' }),
    clientSecret: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 2000,
        description:
          "The client's secret: kept encrypted, never answered. Required to set a provider up and when " +
          'the issuer or client id changes; omitted otherwise, the stored one is kept',
      }),
    ),
    enabled: Type.Optional(
      Type.Boolean({ description: 'Whether people can sign in with it (default true)' }),
    ),
    allowedDomains: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 253 }), {
        maxItems: 50,
        description:
          'Email domains (e.g. `contoso.com`) whose people may sign in through it, matched exactly against ' +
          'the verified email the provider sends; omitted or empty: any',
      }),
    ),
    label: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 60,
        description: `What the sign-in page calls it (default ${Object.values(DEFAULT_LABELS)
          .map((l) => `"${l}"`)
          .join(', ')} by kind)`,
      }),
    ),
  },
  { additionalProperties: false },
);

/** How the caller acts (the server's principal says `via` once console sessions exist). */
const viaOf = (principal: Principal): string => (principal as Principal & { via?: string }).via ?? 'token';

export const ssoSettingsRoutes: RouteModule = (app, { pool, secretKey, clock, logger }) => {
  const manage = { config: { permission: 'integrations:manage' as const } };
  // PUT and DELETE record their own audit event, with the secret left out of the hashed payload.
  const manageAudited = { config: { permission: 'integrations:manage' as const, audit: false as const } };
  const key = () => {
    if (!secretKey) throw new AppError('internal_error', 'no secret key configured');
    return secretKey;
  };
  const redirectNote =
    'The redirect URI to register with the provider is `{RELAYDESK_PUBLIC_URL}/auth/oidc/callback` ' +
    `(e.g. \`${ssoRedirectUriOf('https://desk.example.com')}\`); people sign in at ` +
    '`/auth/oidc/{provider}/start?tenant={tenant name}`.';

  app.get(
    '/integrations/oidc/:provider',
    {
      ...manage,
      schema: {
        tags: ['integrations'],
        summary: 'Show a single sign-on provider',
        description:
          "The tenant's OpenID Connect provider of this kind: issuer, client id, whether it is enabled, " +
          'the allowed email domains and its label; never the client secret.\n\n' +
          'Needs `integrations:manage` (admin). 404 `not_found` when the tenant has none of this kind.',
        params: ProviderParams,
        response: { 200: ProviderSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) =>
        getSsoProvider(tx, request.params.provider),
      ),
  );

  app.put(
    '/integrations/oidc/:provider',
    {
      ...manageAudited,
      schema: {
        tags: ['integrations'],
        summary: 'Set up a single sign-on provider',
        description:
          "Sets up (or replaces) the tenant's OpenID Connect provider of this kind: `entra` (Microsoft " +
          'Entra ID, one directory), `google` or `oidc` (any other). Agents then sign in to the console ' +
          'through it with the authorization code flow (PKCE, state and nonce); the provider must give ' +
          'the scopes `openid email profile`. A person is recognised by their identity of this kind ' +
          '(`entra`: the object id `oid`; otherwise the subject `sub`), else by a verified email of an ' +
          'agent, which is then linked as that identity. Contacts, suspended people and unknown people ' +
          'cannot sign in (unknown identities appear in the unmapped-identity triage). The client ' +
          'secret is kept encrypted and never answered. Nothing is fetched from the provider here: ' +
          'its metadata is discovered at the first sign-in. Answers 200 as the GET does.\n\n' +
          `${redirectNote}\n\n` +
          'Needs `integrations:manage` (admin). 400 `validation_failed` for an issuer that is not https ' +
          '(or http on loopback), has a query or fragment, or is an Entra multi-tenant authority ' +
          '(`common`, `organizations`, `consumers`); for a domain that is not one; and when ' +
          '`clientSecret` is missing while setting the provider up or changing its issuer or client id.',
        params: ProviderParams,
        body: ProviderBody,
        response: { 200: ProviderSchema, ...problemResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { clientSecret: _secret, ...rest } = request.body;
      const audit = {
        tenantId: principal.tenantId,
        actorId: principal.personId,
        actorVia: viaOf(principal),
        action: 'integrations.oidc.update',
        targetType: 'sso_provider',
        targetId: request.params.provider,
        requestId: request.id,
        payload: { ...rest, clientSecretGiven: _secret !== undefined },
      };
      try {
        const saved = await withTenant(pool, principal.tenantId, (tx) =>
          saveSsoProvider(tx, {
            provider: request.params.provider,
            issuer: request.body.issuer,
            clientId: request.body.clientId,
            clientSecret: request.body.clientSecret,
            enabled: request.body.enabled,
            allowedDomains: request.body.allowedDomains,
            label: request.body.label,
            secretKey: key(),
            now: clock.now(),
          }),
        );
        await recordAudit({ pool, logger }, { ...audit, outcome: 'success' });
        return saved;
      } catch (err) {
        const code = err instanceof AppError ? err.code : 'internal_error';
        await recordAudit({ pool, logger }, { ...audit, outcome: 'failed', errorCode: code });
        throw err;
      }
    },
  );

  app.delete(
    '/integrations/oidc/:provider',
    {
      ...manageAudited,
      schema: {
        tags: ['integrations'],
        summary: 'Remove a single sign-on provider',
        description:
          'Forgets the provider of this kind and its secret; sign-ins started through it and not ' +
          'finished yet fail. Identities people signed in with stay on their people. Answers 204.\n\n' +
          'Needs `integrations:manage` (admin). 404 `not_found` when the tenant has none of this kind.',
        params: ProviderParams,
        response: { 204: Type.Null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const audit = {
        tenantId: principal.tenantId,
        actorId: principal.personId,
        actorVia: viaOf(principal),
        action: 'integrations.oidc.delete',
        targetType: 'sso_provider',
        targetId: request.params.provider,
        requestId: request.id,
        payload: null,
      };
      try {
        await withTenant(pool, principal.tenantId, (tx) => deleteSsoProvider(tx, request.params.provider));
      } catch (err) {
        const code = err instanceof AppError ? err.code : 'internal_error';
        await recordAudit({ pool, logger }, { ...audit, outcome: 'failed', errorCode: code });
        throw err;
      }
      await recordAudit({ pool, logger }, { ...audit, outcome: 'success' });
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/sso/providers',
    {
      config: { public: true },
      schema: {
        tags: ['sso'],
        summary: 'List the single sign-on providers of a tenant (sign-in page)',
        security: [],
        description:
          'The enabled single sign-on providers people of the tenant can sign in with, for the sign-in ' +
          'page to show: `{providers: [{provider, label}]}`, each started at ' +
          "`/auth/oidc/{provider}/start?tenant={tenant}`. `tenant` is the tenant's name (or id); " +
          "without it, the install's only tenant. Public: it needs no token. A tenant that does not " +
          'exist (or is not named where there are several) has no providers: the answer is the same ' +
          'empty list, so that it tells nobody which tenants exist.',
        querystring: Type.Object(
          {
            tenant: Type.Optional(
              Type.String({ minLength: 1, maxLength: 200, description: "The tenant's name (or id)" }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            providers: Type.Array(Type.Object({ provider: Provider, label: Type.String() })),
          }),
          400: problemResponses[400],
          503: problemResponses[503],
        },
      },
    },
    async (request) => {
      const tenantId = await resolveSignInTenant(pool, request.query.tenant);
      if (!tenantId) return { providers: [] };
      return { providers: await withTenantRead(pool, tenantId, enabledSsoProviders) };
    },
  );
};
