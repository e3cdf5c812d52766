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
import { PERSON_ROLES } from '../tokens/person-roles.ts';
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
      role: Type.Optional(
        OneOf(PERSON_ROLES, { description: 'Everyone active with this role hears of the escalation.' }),
      ),
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
      schema: {
        tags: ['sla'],
        summary: 'Create a business calendar',
        description:
          'Stores a business calendar for SLA policies to count business time on. ' +
          'The body is the calendar file format: `timeZone` (an IANA name) with either `weekly` opening ' +
          'windows per weekday (`mon` to `sun`, lists of `["HH:MM", "HH:MM"]`, half-open; a window whose end ' +
          'is not after its start runs overnight), optional `holidays` (`YYYY-MM-DD`) and ' +
          '`recurringHolidays` (`MM-DD`), or `alwaysOpen: true`; plus an optional `name` (default: ' +
          '`<timeZone> calendar`). ' +
          'Answers 201 with the calendar (its time zone in canonical form).\n\n' +
          'Needs `sla:manage` (admin). 400 `invalid_calendar`, `invalid_time_zone` or ' +
          '`calendar_has_no_business_time` when the calendar breaks a rule (the message says which), ' +
          '`validation_failed` for a bad `name`.',
        body: CalendarBody,
        response: { 201: CalendarSchema, ...problemResponses },
      },
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
        summary: 'List business calendars',
        description:
          "The tenant's calendars, newest first, each with its name and definition. Paged: `limit` " +
          "(default 50, max 200) and `cursor` (the previous page's `nextCursor`).\n\n" +
          'Needs `tickets:read` (every role).',
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
      schema: {
        tags: ['sla'],
        summary: 'Get a business calendar',
        description:
          'One calendar with its name and definition.\n\n' +
          'Needs `tickets:read` (every role). 404 `not_found` when the id is not a calendar of this tenant.',
        params: IdParams,
        response: { 200: CalendarSchema, ...problemResponses },
      },
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
        summary: 'Replace a business calendar',
        description:
          'Replaces the definition and the name of the calendar with the body, in the same format as ' +
          'creating one: a `name` left out goes back to `<timeZone> calendar`. The running SLA clocks ' +
          'computed on this calendar are woken in the same transaction and recomputed by the ' +
          'scheduler (`recomputed` events where a due time moves). Answers 200.\n\n' +
          'Needs `sla:manage` (admin). 404 `not_found` when the id is not a calendar of this tenant; 400 ' +
          'as for creating one.',
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
        summary: 'Delete a business calendar',
        description:
          'Deletes a calendar that no SLA policy uses. Answers 204.\n\n' +
          'Needs `sla:manage` (admin). 409 `conflict` while policies use it (point them at another ' +
          'calendar first); 404 `not_found` when the id is not a calendar of this tenant (also on a ' +
          'second DELETE).',
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
      schema: {
        tags: ['sla'],
        summary: 'Create an SLA policy',
        description:
          'Adds an SLA policy. ' +
          'Which policy a ticket gets: the first, by `position` (then by creation), whose `conditions` ' +
          "hold and that has targets for the ticket's priority. Conditions are optional lists, each met " +
          "by any of its values: `priorities`, `requesterDomains` (the domain of the requester's primary " +
          "address) and `mailboxIds` (the mailbox the ticket's first mail came through). `targets` gives, " +
          'per priority, the business seconds for `firstResponse`, `nextResponse` and `resolution`, ' +
          'counted on the calendar `calendarId` (null: every second counts). `pauseStatuses` lists per ' +
          'metric the ticket statuses that stop its clock (default: `pending` and `on_hold` pause ' +
          'resolution only). `thresholds` are whole percentages from 1 to 100 that must include 100, the ' +
          'breach (default 50, 75, 90, 100). `escalations` are levels at any percentage from 1 to 1000 ' +
          'with actions: `reassign` to a person, `set_priority`, `notify` a role (`admin`, `agent` or ' +
          '`viewer`: everyone active with it) or a person, who hear of it as an `sla.escalated` ' +
          'notification on their preferred channel. `reopen` says whether a reopened ' +
          "ticket's resolution clock continues (default) or restarts. " +
          "The tenant's open tickets are woken in the same transaction and re-evaluated under the new " +
          'set of policies. Answers 201 with the policy, defaults filled in.\n\n' +
          'Needs `sla:manage` (admin). 400 `validation_failed` for an unknown `calendarId` or ' +
          'escalation person, no target at all, thresholds without 100, or a `notify` with neither ' +
          'role nor person.',
        body: PolicyBody,
        response: { 201: PolicySchema, ...problemResponses },
      },
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
        summary: 'List SLA policies',
        description:
          "All the tenant's SLA policies in the order they are tried (by `position`, then by " +
          'creation), in one answer (not paged).\n\n' +
          'Needs `tickets:read` (every role).',
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
      schema: {
        tags: ['sla'],
        summary: 'Get an SLA policy',
        description:
          'One SLA policy, defaults filled in.\n\n' +
          'Needs `tickets:read` (every role). 404 `not_found` when the id is not a policy of this tenant.',
        params: IdParams,
        response: { 200: PolicySchema, ...problemResponses },
      },
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
        summary: 'Replace an SLA policy',
        description:
          'Replaces the whole policy with the body (same fields as creating one; optional fields left ' +
          "out go back to their defaults). The tenant's open tickets are woken in the same transaction " +
          'and recomputed (`recomputed` events where a due time moves). Answers 200.\n\n' +
          'Needs `sla:manage` (admin). 404 `not_found` when the id is not a policy of this tenant; 400 ' +
          'as for creating one.',
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
      schema: {
        tags: ['sla'],
        summary: 'Delete an SLA policy',
        description:
          'Deletes the policy. Its tickets fall to the next matching policy, or to none (their clocks ' +
          'are then cancelled), when the scheduler re-evaluates the open tickets woken in the same ' +
          'transaction. Answers 204.\n\n' +
          'Needs `sla:manage` (admin). 404 `not_found` when the id is not a policy of this tenant (also ' +
          'on a second DELETE).',
        params: IdParams,
        response: { 204: Type.Null(), ...problemResponses },
      },
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
        summary: "Get a ticket's SLA clocks",
        description:
          "The ticket's SLA at this moment, computed from its status history and public messages under " +
          'the first matching policy (`policyId`; null, with no metrics, when none applies). One entry ' +
          'per metric (`first_response`, `next_response`, `resolution`) and cycle (each wait for a next ' +
          'response is a cycle; a restarted resolution is another): `status` (`active`, `paused`, ' +
          '`fulfilled`, `breached`), start, due time (null while paused before it is known), target, ' +
          'business seconds elapsed and remaining (negative once breached), percent used, when it was ' +
          'breached and fulfilled, and each threshold and escalation level with its due time and when ' +
          'the scheduler fired it.\n\n' +
          'Needs `tickets:read` (every role). 404 `not_found` when the id is not a ticket of this tenant ' +
          'or it was deleted.',
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
        summary: "List a ticket's SLA events",
        description:
          "What happened to the ticket's SLA clocks, newest first: `started`, `paused`, `resumed`, " +
          '`threshold`, `breached`, `escalation`, `fulfilled`, `recomputed` (with the values before and ' +
          'after) and `cancelled`, each with its metric, cycle and `data`. `at` is the instant it ' +
          'happened; for a threshold, its due time (`data.firedAt` says when the scheduler recorded ' +
          'it). The scheduler writes the events as it evaluates the ticket, so the newest can appear a ' +
          'little after the change behind them. Paged: `limit` (default 50, max 200) and `cursor` (the ' +
          "previous page's `nextCursor`).\n\n" +
          'Needs `tickets:read` (every role). 404 `not_found` when the id is not a ticket of this tenant ' +
          'or it was deleted.',
        params: IdParams,
        querystring: Type.Object(ListQuery, { additionalProperties: false }),
        response: {
          200: Page(
            Type.Object({
              id: Uuid,
              metric: Type.String(),
              cycle: Type.Integer(),
              type: Type.String(),
              at: Timestamp,
              data: Type.Unknown(),
            }),
          ),
          ...problemResponses,
        },
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
