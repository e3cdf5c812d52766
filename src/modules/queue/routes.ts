// Queue health through the API. Queues are shared by all tenants, so a tenant sees and re-drives only
// its own jobs (every tenant job carries tenantId in its payload); operators see everything through
// `relaydesk queue` and /metrics.
import { Type } from 'typebox';
import { AppError, notFound } from '../../platform/errors.ts';
import { problemResponses } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';

const QueueQuery = Type.Object(
  { queue: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);

export const queueRoutes: RouteModule = (app, { queue }) => {
  const q = () => {
    if (!queue) throw new AppError('queue_unavailable', 'the queue does not run in this process');
    return queue;
  };
  /** The queue named in the query, if any; an unknown name is a 404 (never a 500 from deeper down). */
  const named = async (name: string | undefined): Promise<{ queue?: string }> => {
    if (name === undefined) return {};
    if (!(await q().queueNames()).includes(name)) throw notFound(`queue ${name}`);
    return { queue: name };
  };

  app.get(
    '/queue/stats',
    {
      config: { permission: 'queue:manage' },
      schema: {
        tags: ['queue'],
        querystring: QueueQuery,
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                queue: Type.String(),
                ready: Type.Integer(),
                deferred: Type.Integer(),
                active: Type.Integer(),
                oldestAgeSeconds: Type.Number(),
                deadLettered: Type.Integer(),
              }),
            ),
          }),
          ...problemResponses,
        },
      },
    },
    async (request) => ({
      items: await q().stats({
        tenantId: principalOf(request).tenantId,
        ...(await named(request.query.queue)),
      }),
    }),
  );

  app.get(
    '/queue/dlq',
    { config: { permission: 'queue:manage' }, schema: { tags: ['queue'], querystring: QueueQuery } },
    async (request) => ({
      items: await q().deadLetters({
        tenantId: principalOf(request).tenantId,
        ...(await named(request.query.queue)),
      }),
    }),
  );

  app.post(
    '/queue/dlq/redrive',
    {
      config: { permission: 'queue:manage' },
      schema: {
        tags: ['queue'],
        querystring: QueueQuery,
        response: { 200: Type.Object({ redriven: Type.Integer() }), ...problemResponses },
      },
    },
    async (request) => ({
      redriven: await q().redrive({
        tenantId: principalOf(request).tenantId,
        ...(await named(request.query.queue)),
      }),
    }),
  );
};
