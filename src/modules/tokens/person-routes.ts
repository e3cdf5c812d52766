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

/** Anyone may manage their own tokens; another person's need tokens:manage (admin). */
function assertMayManageTokensOf(p: Principal, personId: string): void {
  if (personId !== p.personId && !roleAllows(roleOf(p), 'tokens:manage')) {
    throw forbidden(`A ${p.role} token may only manage its own person's tokens`);
  }
}

export const personTokenRoutes: RouteModule = (app, { pool }) => {
  app.post(
    '/people/:id/tokens',
    {
      schema: {
        tags: ['people'],
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
        throw forbidden(`A ${p.role} token cannot mint a ${request.body.role} token`);
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
        tags: ['people'],
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
        tags: ['people'],
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
