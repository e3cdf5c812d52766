// A person's API tokens, and the triage list of unmapped identities.
import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { forbidden } from '../../platform/errors.ts';
import { type RouteModule, principalOf } from '../../platform/http/server.ts';
import {
  IdParams,
  ListQuery,
  Nullable,
  Page,
  problemResponses,
  Timestamp,
  Uuid,
} from '../../platform/http/schemas.ts';
import { canGrantRole, roleAllows } from '../tokens/permissions.ts';
import { MintedSchema, Role, TokenSchema } from '../tokens/schema.ts';
import { listTokens, mintToken, type Principal, revokeToken } from '../tokens/service.ts';
import { actorOf } from './routes.ts';
import { getPerson } from './service.ts';
import { dismissUnmapped, linkUnmapped, listUnmapped } from './unmapped.ts';

const UnmappedSchema = Type.Object({
  id: Uuid,
  kind: Type.String(),
  externalId: Type.String(),
  firstSeenAt: Timestamp,
  lastSeenAt: Timestamp,
  sightings: Type.Integer(),
  sampleEventType: Nullable(Type.String()),
  sampleContext: Nullable(Type.String()),
  displayName: Nullable(Type.String()),
  email: Nullable(Type.String()),
  suggestions: Type.Array(Type.Object({ personId: Uuid, displayName: Type.String() })),
});

/** Anyone may manage their own tokens; another person's need tokens:manage (admin). */
function assertMayManageTokensOf(p: Principal, personId: string): void {
  if (personId !== p.personId && !roleAllows(p.role, 'tokens:manage')) {
    throw forbidden(`A ${p.role} token may only manage its own person's tokens`);
  }
}

export const identityRoutes: RouteModule = (app, { pool }) => {
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
      if (!canGrantRole(p.role, request.body.role)) {
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

  app.get(
    '/unmapped-identities',
    {
      config: { permission: 'people:read' },
      schema: {
        tags: ['people'],
        querystring: Type.Object(
          { ...ListQuery, kind: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_-]{1,31}$' })) },
          { additionalProperties: false },
        ),
        response: { 200: Page(UnmappedSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => listUnmapped(tx, request.query)),
  );

  app.post(
    '/unmapped-identities/:id/link',
    {
      config: { permission: 'people:write' },
      schema: {
        tags: ['people'],
        params: IdParams,
        body: Type.Object({ personId: Uuid }, { additionalProperties: false }),
        response: { 200: Type.Unknown(), ...problemResponses },
      },
    },
    async (request) => {
      const p = principalOf(request);
      return withTenant(pool, p.tenantId, async (tx) => {
        await linkUnmapped(tx, { id: request.params.id, personId: request.body.personId, actor: actorOf(p) });
        return getPerson(tx, request.body.personId);
      });
    },
  );

  app.delete(
    '/unmapped-identities/:id',
    {
      config: { permission: 'people:write' },
      schema: { tags: ['people'], params: IdParams, response: { 204: Type.Null(), ...problemResponses } },
    },
    async (request, reply) => {
      await withTenant(pool, principalOf(request).tenantId, (tx) => dismissUnmapped(tx, request.params.id));
      return reply.code(204).send(null);
    },
  );
};
