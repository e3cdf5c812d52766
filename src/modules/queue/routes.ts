// Queue health through the API. Queues are shared by all tenants, so a tenant sees and re-drives only
// its own jobs (every tenant job carries tenantId in its payload); operators see everything through
// `relaydesk queue` and /metrics.
import { Type } from 'typebox';
import { AppError, notFound } from '../../platform/errors.ts';
import { Nullable, problemResponses, Timestamp } from '../../platform/http/schemas.ts';
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
        summary: "Show this tenant's job queue depth",
        description:
          "Per job queue (or only the one named by `queue`), counting only this tenant's jobs: how " +
          'many are ready to run, deferred (waiting for a later start, such as a retry back-off), ' +
          'active, the age in seconds of the oldest ready one, and how many are dead-lettered. Queues ' +
          'are shared by all tenants; operators see the totals with `relaydesk queue` and `/metrics`.\n\n' +
          'Needs `queue:manage` (admin). 404 `not_found` for an unknown queue name; 503 ' +
          '`queue_unavailable` from a process that does not run the queue.',
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
    {
      config: { permission: 'queue:manage' },
      schema: {
        tags: ['queue'],
        summary: 'List dead-lettered jobs',
        description:
          "This tenant's jobs that used up their retries or failed for good and wait in a dead-letter " +
          'queue, oldest first, at most 100 (not paged): id, job queue, the id of the job that failed ' +
          'when known, its payload and its last error. `queue` keeps one job queue. Once the cause is ' +
          'fixed, `POST /queue/dlq/redrive` runs them again.\n\n' +
          'Needs `queue:manage` (admin). 404 `not_found` for an unknown queue name; 503 ' +
          '`queue_unavailable` from a process that does not run the queue.',
        querystring: QueueQuery,
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                id: Type.String(),
                queue: Type.String(),
                sourceId: Nullable(Type.String()),
                payload: Type.Unknown(),
                error: Type.Unknown(),
                createdAt: Timestamp,
              }),
            ),
          }),
          ...problemResponses,
        },
      },
    },
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
        summary: 'Re-drive dead-lettered jobs',
        description:
          "Moves this tenant's dead-lettered jobs (of every job queue, or only `queue`) back to their " +
          "queue to run again, and answers how many moved. Other tenants' jobs stay where they are. A " +
          'second call moves only what was dead-lettered in between (often 0).\n\n' +
          'Needs `queue:manage` (admin). 404 `not_found` for an unknown queue name; 503 ' +
          '`queue_unavailable` from a process that does not run the queue.',
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
