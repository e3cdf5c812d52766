// A person's API tokens: anyone may manage their own; another person's need tokens:manage.
import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { forbidden } from '../../platform/errors.ts';
import type { Principal } from '../../platform/http/auth.ts';
import { IdParams, ListQuery, Page, problemResponses, Uuid } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import { actorOf } from '../people/events.ts';
import { getPerson } from '../people/service.ts';
import { canGrantRole, roleAllows, roleOf } from './permissions.ts';
import { MintedSchema, Role, TokenSchema } from './schema.ts';
import { listTokens, mintToken, revokeToken } from './service.ts';
import { withArticle, withArticleCapital } from '../../platform/text.ts';

/** Anyone may manage their own tokens; another person's need tokens:manage (admin). */
function assertMayManageTokensOf(p: Principal, personId: string): void {
  if (personId !== p.personId && !roleAllows(roleOf(p), 'tokens:manage')) {
    throw forbidden(`${withArticleCapital(p.role)} token may only manage its own person's tokens`);
  }
}

export const personTokenRoutes: RouteModule = (app, { pool }) => {
  app.post(
    '/people/:id/tokens',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Create a token for a person',
        description:
          'Mints a token for the person in the path with the given `role` and `label`. Anyone may mint ' +
          "tokens for their own person (the calling token's person); another person's need " +
          "`tokens:manage` (admin). The new role may not grant a permission the caller's role lacks: " +
          'an agent may mint agent and viewer tokens, an integration integration and viewer tokens, a ' +
          'viewer viewer tokens. The answer (201) is the only time the plaintext `token` is shown; only ' +
          "its hash is stored. Records `token_minted` in the person's identity log. Not idempotent.\n\n" +
          "403 `forbidden` for another person's tokens without `tokens:manage`, for a role beyond the " +
          "caller's, or when the person is suspended; 404 `not_found` when the person is not in this tenant.",
        params: IdParams,
        body: Type.Object(
          { label: Type.String({ maxLength: 200 }), role: Role },
          { additionalProperties: false },
        ),
        response: { 201: MintedSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      assertMayManageTokensOf(p, request.params.id);
      if (!canGrantRole(roleOf(p), request.body.role)) {
        throw forbidden(
          `${withArticleCapital(p.role)} token cannot mint ${withArticle(request.body.role)} token`,
        );
      }
      const minted = await withTenant(pool, p.tenantId, async (tx) => {
        const person = await getPerson(tx, request.params.id);
        if (person.status === 'suspended') throw forbidden('a suspended person cannot hold tokens');
        return mintToken(tx, {
          personId: person.id,
          role: request.body.role,
          label: request.body.label,
          actor: actorOf(p),
        });
      });
      const { id, token, preview, role, label, createdAt } = minted;
      return reply.code(201).send({ id, token, preview, role, label, createdAt });
    },
  );

  app.get(
    '/people/:id/tokens',
    {
      schema: {
        tags: ['tokens'],
        summary: "List a person's tokens",
        description:
          "The person's tokens, revoked ones included, newest first, never with their plaintext. Paged: " +
          "`limit` (default 50, max 200) and `cursor` (the previous page's `nextCursor`).\n\n" +
          "Anyone may list their own person's tokens; another person's need `tokens:manage` (admin), " +
          'else 403 `forbidden`. 404 `not_found` when the person is not in this tenant.',
        params: IdParams,
        querystring: Type.Object({ ...ListQuery }, { additionalProperties: false }),
        response: { 200: Page(TokenSchema), ...problemResponses },
      },
    },
    async (request) => {
      const p = principalOf(request);
      assertMayManageTokensOf(p, request.params.id);
      return withTenantRead(pool, p.tenantId, async (tx) => {
        await getPerson(tx, request.params.id);
        return listTokens(tx, { ...request.query, personId: request.params.id });
      });
    },
  );

  app.delete(
    '/people/:id/tokens/:tokenId',
    {
      schema: {
        tags: ['tokens'],
        summary: "Revoke a person's token",
        description:
          "Revokes one of the person's tokens (it is answered 401 from then on) and returns it with " +
          '`revokedAt` (200). Idempotent: revoking it again answers 200 with the first `revokedAt` and ' +
          'records nothing; the first revocation records `token_revoked`. A token may revoke itself.\n\n' +
          "Anyone may revoke their own person's tokens; another person's need `tokens:manage` (admin), " +
          "else 403 `forbidden`. 404 `not_found` when the token is not one of this person's in this tenant.",
        params: Type.Object({ id: Uuid, tokenId: Uuid }, { additionalProperties: false }),
        response: { 200: TokenSchema, ...problemResponses },
      },
    },
    async (request) => {
      const p = principalOf(request);
      assertMayManageTokensOf(p, request.params.id);
      return withTenant(pool, p.tenantId, (tx) =>
        revokeToken(tx, request.params.tokenId, actorOf(p), request.params.id),
      );
    },
  );
};
