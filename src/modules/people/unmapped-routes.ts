// The triage list of unmapped identities: sightings of external identities nobody is linked to.
import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { type RouteModule, principalOf } from '../../platform/http/server.ts';
import {
  IdParams,
  ListQuery,
  Nullable,
  Page,
  ProblemSchema,
  problemResponses,
  Timestamp,
  Uuid,
} from '../../platform/http/schemas.ts';
import { actorOf } from './events.ts';
import { PersonSchema } from './routes.ts';
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
        summary: 'List unmapped identities',
        description:
          'The triage list: identities of other systems (chat users and the like) that a channel saw ' +
          'but that are linked to no person, most recently seen first. Each has its number of ' +
          'sightings, first and last sighting, a short sample of what was seen, the name and email the ' +
          'channel showed, and up to five `suggestions`: people whose display name equals that name ' +
          '(case-insensitive). Suggestions only: nothing is linked automatically. Entries not seen for ' +
          '30 days are left out, and later deleted. `kind` keeps one kind of identity. Paged: `limit` ' +
          "(default 50, max 200) and `cursor` (the previous page's `nextCursor`).\n\n" +
          'Needs `people:read` (every role).',
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
        summary: 'Link an unmapped identity to a person',
        description:
          'Links the identity to the person `personId` (recorded as `identity_added`, as with ' +
          '`POST /people/{id}/identities`) and takes it off the triage list, in one transaction. ' +
          'Answers 200 with that person.\n\n' +
          'Needs `people:write` (admin, agent, integration). 404 `not_found` when the entry or the ' +
          'person is not in this tenant; 409 `identity_taken` when another person has the identity by now.',
        params: IdParams,
        body: Type.Object({ personId: Uuid }, { additionalProperties: false }),
        response: { 200: PersonSchema, 409: ProblemSchema, ...problemResponses },
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
      schema: {
        tags: ['people'],
        summary: 'Dismiss an unmapped identity',
        description:
          'Takes the entry off the triage list without linking it. A later sighting of the same ' +
          'identity lists it again. Answers 204.\n\n' +
          'Needs `people:write` (admin, agent, integration). 404 `not_found` when the entry is not in ' +
          'this tenant (also on a second DELETE).',
        params: IdParams,
        response: { 204: Type.Null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      await withTenant(pool, principalOf(request).tenantId, (tx) => dismissUnmapped(tx, request.params.id));
      return reply.code(204).send(null);
    },
  );
};
