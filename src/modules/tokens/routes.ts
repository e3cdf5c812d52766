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
        body: CreateToken,
        response: { 201: MintedForPersonSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      if (!canGrantRole(roleOf(p), request.body.role))
        throw forbidden(`A ${p.role} token cannot mint a ${request.body.role} token`);
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
      schema: { tags: ['tokens'], params: IdParams, response: { 200: TokenSchema, ...problemResponses } },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => getToken(tx, request.params.id)),
  );

  app.delete(
    '/tokens/:id',
    {
      config: { permission: 'tokens:manage' },
      schema: { tags: ['tokens'], params: IdParams, response: { 200: TokenSchema, ...problemResponses } },
    },
    async (request) =>
      withTenant(pool, principalOf(request).tenantId, (tx) =>
        revokeToken(tx, request.params.id, `person:${principalOf(request).personId}`),
      ),
  );
};
