import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { forbidden } from '../../platform/errors.ts';
import { IdParams, ListQuery, Page, problemResponses, Uuid } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import { PersonSchema } from '../people/routes.ts';
import { getPerson } from '../people/service.ts';
import { canGrantRole, roleOf } from './permissions.ts';
import { MintedForPersonSchema, Role, TokenSchema } from './schema.ts';
import { getToken, listTokens, mintToken, revokeToken } from './service.ts';
import { withArticle, withArticleCapital } from '../../platform/text.ts';

const CreateToken = Type.Object(
  {
    role: Role,
    label: Type.Optional(Type.String({ maxLength: 200 })),
    personId: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);

export const tokenRoutes: RouteModule = (app, { pool }) => {
  app.get(
    '/me',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Describe the calling token',
        description:
          "Who is calling: the tenant (id and name), the token's person (as `GET /people/{id}` shows it), " +
          'the token (id, `preview` of its last four characters, role) and the permissions its role grants. ' +
          "Use it to check a token, or to learn the caller's person id (for `/people/{id}/tokens`).\n\n" +
          'Any valid token may call it; no permission is needed. 401 `unauthorized` when the token is ' +
          'missing, malformed, unknown or revoked, or its person is suspended.',
        response: {
          200: Type.Object({
            tenant: Type.Object({ id: Uuid, name: Type.String() }),
            person: PersonSchema,
            token: Type.Object({ id: Uuid, preview: Type.String(), role: Role }),
            permissions: Type.Array(Type.String()),
          }),
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const p = principalOf(request);
      return withTenantRead(pool, p.tenantId, async (tx) => {
        const { rows } = await tx.query<{ id: string; name: string }>(
          'SELECT id, name FROM tenants WHERE id = $1',
          [p.tenantId],
        );
        return {
          tenant: rows[0]!,
          person: await getPerson(tx, p.personId),
          token: { id: p.tokenId, preview: p.preview, role: roleOf(p) },
          permissions: [...p.permissions],
        };
      });
    },
  );

  app.post(
    '/tokens',
    {
      config: { permission: 'tokens:manage' },
      schema: {
        tags: ['tokens'],
        summary: 'Create an API token',
        description:
          "Mints a token (`rd_...`) for a person of this tenant (`personId`; the caller's own person when " +
          'left out) with the given `role` and an optional `label`. The answer (201) is the only time the ' +
          'plaintext `token` is shown: only its SHA-256 is stored, so keep it now; later reads show its ' +
          "last four characters (`preview`). The person's identity log records `token_minted`. A token " +
          'minted for a suspended person is created but does not authenticate while the person stays ' +
          'suspended. Not idempotent: each call mints another token.\n\n' +
          'Needs `tokens:manage` (admin). 404 `not_found` when `personId` is not a person of this tenant ' +
          "(another tenant's person included).",
        body: CreateToken,
        response: { 201: MintedForPersonSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      if (!canGrantRole(roleOf(p), request.body.role))
        throw forbidden(
          `${withArticleCapital(p.role)} token cannot mint ${withArticle(request.body.role)} token`,
        );
      const minted = await withTenant(pool, p.tenantId, async (tx) => {
        const personId = request.body.personId ?? p.personId;
        await getPerson(tx, personId);
        return mintToken(tx, {
          personId,
          role: request.body.role,
          label: request.body.label ?? '',
          actor: `person:${p.personId}`,
        });
      });
      return reply.code(201).send({
        id: minted.id,
        token: minted.token,
        preview: minted.preview,
        role: minted.role,
        label: minted.label,
        personId: minted.personId,
        createdAt: minted.createdAt,
      });
    },
  );

  app.get(
    '/tokens',
    {
      config: { permission: 'tokens:manage' },
      schema: {
        tags: ['tokens'],
        summary: 'List API tokens',
        description:
          "The tenant's tokens, revoked ones included (`revokedAt` set), newest first; `personId` keeps " +
          "one person's. Each shows its id, person, `preview` (last four characters), role, label, " +
          '`createdAt`, `lastUsedAt` (written at most once a minute) and `revokedAt`, never the plaintext. ' +
          'Paged: `limit` (default 50, max 200) and `cursor` (the `nextCursor` of the previous page; ' +
          'anything else is 400 `invalid_cursor`).\n\n' +
          'Needs `tokens:manage` (admin).',
        querystring: Type.Object(
          { ...ListQuery, personId: Type.Optional(Uuid) },
          { additionalProperties: false },
        ),
        response: { 200: Page(TokenSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => listTokens(tx, request.query)),
  );

  app.get(
    '/tokens/:id',
    {
      config: { permission: 'tokens:manage' },
      schema: {
        tags: ['tokens'],
        summary: 'Get an API token',
        description:
          "One token's details (never its plaintext).\n\n" +
          'Needs `tokens:manage` (admin). 404 `not_found` when the id is not a token of this tenant ' +
          "(another tenant's token is not found either).",
        params: IdParams,
        response: { 200: TokenSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => getToken(tx, request.params.id)),
  );

  app.delete(
    '/tokens/:id',
    {
      config: { permission: 'tokens:manage' },
      schema: {
        tags: ['tokens'],
        summary: 'Revoke an API token',
        description:
          'Revokes the token: from then on a request with it is answered 401. The token stays listed, ' +
          'with `revokedAt`, and is returned (200). Idempotent: revoking a revoked token answers 200 ' +
          'with its first `revokedAt` and records nothing; the first revocation records `token_revoked` ' +
          "in its person's identity log. A token may revoke itself.\n\n" +
          'Needs `tokens:manage` (admin). 404 `not_found` when the id is not a token of this tenant.',
        params: IdParams,
        response: { 200: TokenSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenant(pool, principalOf(request).tenantId, (tx) =>
        revokeToken(tx, request.params.id, `person:${principalOf(request).personId}`),
      ),
  );
};
