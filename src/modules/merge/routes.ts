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
        summary: 'Merge another person into this one',
        description:
          'Merges the person `sourceId` into the person in the path (the target), in one transaction: ' +
          "the source's email addresses (as non-primary ones when the target has a primary address), " +
          'external identities, API tokens (they keep working, as tokens of the target), the tickets it ' +
          'requested or is assigned, the messages it wrote and its entries in status histories all move ' +
          "to the target, and the source is deleted. The target's identity log records `manual_merge` " +
          'with what the source had and how many tickets and messages moved. Answers 200 with the ' +
          'target. Not repeatable: once merged, the source is gone (404).\n\n' +
          'Needs `people:write` (admin, agent, integration). 400 `merge_into_self` when both are the ' +
          'same person; 404 `not_found` when either person is not in this tenant.',
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
