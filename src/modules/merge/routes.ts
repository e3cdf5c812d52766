// The merge route: POST /people/:id/merge (the target is the path's person).
import { Type } from 'typebox';
import { withTenant } from '../../platform/db/tx.ts';
import { IdParams, problemResponses, Uuid } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import { actorOf } from '../people/events.ts';
import { PersonSchema } from '../people/routes.ts';
import { mergePeople } from './service.ts';

export const mergeRoutes: RouteModule = (app, { pool }) => {
  app.post(
    '/people/:id/merge',
    {
      config: { permission: 'people:write' },
      schema: {
        tags: ['people'],
        description: 'Merges the source person into this one (the target) and removes the source.',
        params: IdParams,
        body: Type.Object({ sourceId: Uuid }, { additionalProperties: false }),
        response: { 200: PersonSchema, ...problemResponses },
      },
    },
    async (request) => {
      const p = principalOf(request);
      return withTenant(pool, p.tenantId, (tx) =>
        mergePeople(tx, { sourceId: request.body.sourceId, targetId: request.params.id, actor: actorOf(p) }),
      );
    },
  );
};
