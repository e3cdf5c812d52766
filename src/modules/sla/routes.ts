import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { notFound } from '../../platform/errors.ts';
import { clampLimit, decodeCursor, toPage } from '../../platform/pagination.ts';
import { type RouteModule, principalOf } from '../../platform/http/server.ts';
import {
  IdParams,
  ListQuery,
  Nullable,
  OneOf,
  Page,
  ProblemSchema,
  problemResponses,
  Timestamp,
  Uuid,
} from '../../platform/http/schemas.ts';
import { TICKET_PRIORITIES, TICKET_STATUSES } from '../tickets/model.ts';
import {
  createCalendar,
  createPolicy,
  deleteCalendar,
  deletePolicy,
  getCalendar,
  getPolicy,
  listCalendars,
  listPolicies,
  type PolicyInput,
  replaceCalendar,
  replacePolicy,
} from './config.ts';
import { ticketSla } from './ticket-sla.ts';

const CalendarBody = Type.Record(Type.String(), Type.Unknown(), {
  description: 'The calendar file format, with an optional name',
});
const CalendarSchema = Type.Object({
  id: Uuid,
  name: Type.String(),
  calendar: Type.Record(Type.String(), Type.Unknown()),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const Seconds = Type.Integer({ minimum: 1, description: 'business seconds' });
const MetricTargets = Type.Object(
  {
    firstResponse: Type.Optional(Seconds),
    nextResponse: Type.Optional(Seconds),
    resolution: Type.Optional(Seconds),
  },
  { additionalProperties: false },
);
const Statuses = Type.Array(OneOf(TICKET_STATUSES), { maxItems: 6 });
const Action = Type.Union([
  Type.Object({ type: Type.Literal('reassign'), personId: Uuid }, { additionalProperties: false }),
  Type.Object(
    { type: Type.Literal('set_priority'), priority: OneOf(TICKET_PRIORITIES) },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal('notify'),
      role: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
      personId: Type.Optional(Uuid),
    },
    { additionalProperties: false },
  ),
]);
const PolicyBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    position: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    conditions: Type.Optional(
      Type.Object(
        {
          priorities: Type.Optional(Type.Array(OneOf(TICKET_PRIORITIES), { maxItems: 4 })),
          requesterDomains: Type.Optional(
            Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 100 }),
          ),
          mailboxIds: Type.Optional(Type.Array(Uuid, { maxItems: 100 })),
        },
        { additionalProperties: false },
      ),
    ),
    calendarId: Nullable(Uuid),
    targets: Type.Object(
      Object.fromEntries(TICKET_PRIORITIES.map((p) => [p, Type.Optional(MetricTargets)])) as Record<
        (typeof TICKET_PRIORITIES)[number],
        ReturnType<typeof Type.Optional<typeof MetricTargets>>
      >,
      { additionalProperties: false },
    ),
    pauseStatuses: Type.Optional(
      Type.Object(
        {
          firstResponse: Type.Optional(Statuses),
          nextResponse: Type.Optional(Statuses),
          resolution: Type.Optional(Statuses),
        },
        { additionalProperties: false },
      ),
    ),
    thresholds: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1, maximum: 100 }), { minItems: 1, maxItems: 20 }),
    ),
    escalations: Type.Optional(
      Type.Array(
        Type.Object(
          {
            percent: Type.Integer({ minimum: 1, maximum: 1000 }),
            actions: Type.Array(Action, { minItems: 1, maxItems: 10 }),
          },
          { additionalProperties: false },
        ),
        {
          maxItems: 10,
        },
      ),
    ),
    reopen: Type.Optional(OneOf(['continue', 'restart'] as const)),
  },
  { additionalProperties: false },
);
const PolicySchema = Type.Object({
  id: Uuid,
  name: Type.String(),
  position: Type.Integer(),
  conditions: Type.Record(Type.String(), Type.Unknown()),
  calendarId: Nullable(Uuid),
  targets: Type.Record(Type.String(), Type.Unknown()),
  pauseStatuses: Type.Record(Type.String(), Type.Unknown()),
  thresholds: Type.Array(Type.Integer()),
  escalations: Type.Array(Type.Unknown()),
  reopen: Type.String(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

export const slaRoutes: RouteModule = (app, { pool, clock }) => {
  const read = { config: { permission: 'tickets:read' as const } };
  const manage = { config: { permission: 'sla:manage' as const } };

  app.post(
    '/calendars',
    {
      ...manage,
      schema: { tags: ['sla'], body: CalendarBody, response: { 201: CalendarSchema, ...problemResponses } },
    },
    async (request, reply) =>
      reply
        .code(201)
        .send(
          await withTenant(pool, principalOf(request).tenantId, (tx) => createCalendar(tx, request.body)),
        ),
  );
  app.get(
    '/calendars',
    {
      ...read,
      schema: {
        tags: ['sla'],
        querystring: Type.Object(ListQuery, { additionalProperties: false }),
        response: { 200: Page(CalendarSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => listCalendars(tx, request.query)),
  );
  app.get(
    '/calendars/:id',
    {
      ...read,
      schema: { tags: ['sla'], params: IdParams, response: { 200: CalendarSchema, ...problemResponses } },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => getCalendar(tx, request.params.id)),
  );
  app.put(
    '/calendars/:id',
    {
      ...manage,
      schema: {
        tags: ['sla'],
        params: IdParams,
        body: CalendarBody,
        response: { 200: CalendarSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenant(pool, principalOf(request).tenantId, (tx) =>
        replaceCalendar(tx, request.params.id, request.body),
      ),
  );
  app.delete(
    '/calendars/:id',
    {
      ...manage,
      schema: {
        tags: ['sla'],
        params: IdParams,
        response: { 204: Type.Null(), 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      await withTenant(pool, principalOf(request).tenantId, (tx) => deleteCalendar(tx, request.params.id));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/sla-policies',
    {
      ...manage,
      schema: { tags: ['sla'], body: PolicyBody, response: { 201: PolicySchema, ...problemResponses } },
    },
    async (request, reply) =>
      reply
        .code(201)
        .send(
          await withTenant(pool, principalOf(request).tenantId, (tx) =>
            createPolicy(tx, request.body as PolicyInput),
          ),
        ),
  );
  app.get(
    '/sla-policies',
    {
      ...read,
      schema: {
        tags: ['sla'],
        response: { 200: Type.Object({ items: Type.Array(PolicySchema) }), ...problemResponses },
      },
    },
    async (request) => ({
      items: await withTenantRead(pool, principalOf(request).tenantId, (tx) => listPolicies(tx)),
    }),
  );
  app.get(
    '/sla-policies/:id',
    {
      ...read,
      schema: { tags: ['sla'], params: IdParams, response: { 200: PolicySchema, ...problemResponses } },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => getPolicy(tx, request.params.id)),
  );
  app.put(
    '/sla-policies/:id',
    {
      ...manage,
      schema: {
        tags: ['sla'],
        params: IdParams,
        body: PolicyBody,
        response: { 200: PolicySchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenant(pool, principalOf(request).tenantId, (tx) =>
        replacePolicy(tx, request.params.id, request.body as PolicyInput),
      ),
  );
  app.delete(
    '/sla-policies/:id',
    {
      ...manage,
      schema: { tags: ['sla'], params: IdParams, response: { 204: Type.Null(), ...problemResponses } },
    },
    async (request, reply) => {
      await withTenant(pool, principalOf(request).tenantId, (tx) => deletePolicy(tx, request.params.id));
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/tickets/:id/sla',
    {
      ...read,
      schema: {
        tags: ['sla'],
        params: IdParams,
        response: {
          200: Type.Object({
            policyId: Nullable(Uuid),
            metrics: Type.Array(
              Type.Object({
                metric: Type.String(),
                cycle: Type.Integer(),
                status: Type.String(),
                startedAt: Timestamp,
                dueAt: Nullable(Timestamp),
                targetSeconds: Type.Integer(),
                elapsedSeconds: Type.Integer(),
                remainingSeconds: Type.Integer(),
                percent: Type.Number(),
                breachedAt: Nullable(Timestamp),
                fulfilledAt: Nullable(Timestamp),
                thresholds: Type.Array(
                  Type.Object({
                    percent: Type.Integer(),
                    dueAt: Nullable(Timestamp),
                    firedAt: Nullable(Timestamp),
                  }),
                ),
              }),
            ),
          }),
          ...problemResponses,
        },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) =>
        ticketSla(tx, request.params.id, Math.floor(clock.now().getTime() / 1000)),
      ),
  );

  app.get(
    '/tickets/:id/sla/events',
    {
      ...read,
      schema: {
        tags: ['sla'],
        params: IdParams,
        querystring: Type.Object(ListQuery, { additionalProperties: false }),
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, async (tx) => {
        const { rows: ticket } = await tx.query(
          'SELECT 1 FROM tickets WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL',
          [tx.tenantId, request.params.id],
        );
        if (ticket.length === 0) throw notFound('ticket');
        const limit = clampLimit(request.query.limit);
        const cursor = decodeCursor(request.query.cursor);
        const { rows } = await tx.query<{
          id: string;
          metric: string;
          cycle: number;
          type: string;
          at: string;
          data: unknown;
          created_at: string;
        }>(
          `SELECT id, metric, cycle, type, at, data, at AS created_at FROM sla_events
            WHERE tenant_id = $1 AND ticket_id = $2 AND ($3::timestamptz IS NULL OR (at, id) < ($3::timestamptz, $4::uuid))
            ORDER BY at DESC, id DESC LIMIT $5`,
          [tx.tenantId, request.params.id, cursor?.createdAt ?? null, cursor?.id ?? null, limit + 1],
        );
        return toPage(rows, limit, (r) => ({
          id: r.id,
          metric: r.metric,
          cycle: r.cycle,
          type: r.type,
          at: r.at,
          data: r.data,
        }));
      }),
  );
};
