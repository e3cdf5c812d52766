// The triage list of unmapped identities: sightings of external identities nobody is linked to.
import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
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
import { actorOf } from './events.ts';
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

export const unmappedRoutes: RouteModule = (app, { pool }) => {
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
