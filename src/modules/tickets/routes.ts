import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { validation } from '../../platform/errors.ts';
import {
  IdParams,
  ListQuery,
  Nullable,
  OneOf,
  Page,
  problemResponses,
  Timestamp,
  Uuid,
} from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import { deleteTicket, updateTicket } from './changes.ts';
import { createTicket } from './create.ts';
import { createTicketTogether } from './create-together.ts';
import { sanitizeBodyHtml, TICKET_PRIORITIES, TICKET_STATUSES, VISIBILITIES } from './model.ts';
import {
  leavePresence,
  PRESENCE_STATES,
  type PresenceOrder,
  ticketPresence,
  touchPresence,
} from './presence.ts';
import {
  getTicketView,
  listTickets,
  MAX_SEARCH_LENGTH,
  SLA_SUMMARY_STATES,
  TICKET_VIEWS,
} from './queries.ts';
import { bulkUpdateTickets, MAX_BULK } from './bulk.ts';

const Status = OneOf(TICKET_STATUSES);
const Priority = OneOf(TICKET_PRIORITIES);
const Visibility = OneOf(VISIBILITIES);
const Text = Type.String({ minLength: 1, maxLength: 1_000_000 });
const Html = Type.String({ maxLength: 5_000_000 });

export const TicketSchema = Type.Object({
  id: Uuid,
  number: Type.String({ pattern: '^T-[0-9]+$' }),
  subject: Type.String(),
  status: Status,
  priority: Priority,
  requesterId: Uuid,
  assigneeId: Nullable(Uuid),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

export const TicketViewSchema = Type.Object({
  ...TicketSchema.properties,
  requester: Type.Object({ id: Uuid, displayName: Type.String(), email: Nullable(Type.String()) }),
  assignee: Nullable(Type.Object({ id: Uuid, displayName: Type.String() })),
  sla: Nullable(
    Type.Object(
      {
        state: OneOf(SLA_SUMMARY_STATES),
        dueAt: Nullable(Timestamp),
      },
      { description: 'As the SLA scheduler last evaluated it; null when the ticket has no SLA clocks.' },
    ),
  ),
});

const PresentPeople = Type.Object({
  people: Type.Array(
    Type.Object({ id: Uuid, displayName: Type.String(), state: OneOf(PRESENCE_STATES), since: Timestamp }),
  ),
});

const BulkChanges = Type.Object(
  {
    ticketIds: Type.Array(Uuid, { minItems: 1, maxItems: MAX_BULK, uniqueItems: true }),
    changes: Type.Object(
      {
        status: Type.Optional(Status),
        priority: Type.Optional(Priority),
        assigneeId: Type.Optional(Nullable(Uuid)),
      },
      { additionalProperties: false, minProperties: 1 },
    ),
  },
  { additionalProperties: false },
);

export const MessageSchema = Type.Object({
  id: Uuid,
  ticketId: Uuid,
  authorId: Uuid,
  visibility: Visibility,
  direction: Type.Union([Type.Literal('inbound'), Type.Literal('outbound')]),
  text: Type.String(),
  html: Nullable(Type.String()),
  messageId: Nullable(Type.String()),
  mail: Nullable(
    Type.Object({
      from: Nullable(Type.String()),
      to: Type.Array(Type.Object({ address: Type.String(), name: Type.String() })),
      cc: Type.Array(Type.Object({ address: Type.String(), name: Type.String() })),
      subject: Nullable(Type.String()),
      replyText: Nullable(Type.String()),
      classification: Nullable(Type.Record(Type.String(), Type.Unknown())),
      attachments: Type.Array(
        Type.Object({
          id: Uuid,
          filename: Type.String(),
          contentType: Type.String(),
          size: Type.Integer(),
          inline: Type.Boolean(),
          contentId: Nullable(Type.String()),
        }),
      ),
    }),
  ),
  delivery: Nullable(
    Type.Object(
      {
        id: Uuid,
        status: Type.String(),
        attempt: Type.Integer({ description: "The latest attempt's number" }),
        attempts: Type.Integer({ description: 'How many attempts the mail has had' }),
        errorCode: Nullable(Type.String()),
        errorMessage: Nullable(Type.String()),
        lastError: Nullable(
          Type.String({ description: 'The error of the latest attempt that failed or bounced, if any' }),
        ),
        sentAt: Nullable(Timestamp),
      },
      {
        description:
          'For a public message an agent sent: its latest delivery attempt by mail (see `/deliveries`); null otherwise.',
      },
    ),
  ),
  createdAt: Timestamp,
});

const CreateTicket = Type.Object(
  {
    subject: Type.String({ minLength: 1, maxLength: 998 }),
    requester: Type.Union([
      Type.Object({ personId: Uuid }, { additionalProperties: false }),
      Type.Object(
        {
          email: Type.String({ minLength: 3, maxLength: 254 }),
          name: Type.Optional(Type.String({ maxLength: 200 })),
        },
        { additionalProperties: false },
      ),
    ]),
    priority: Type.Optional(Priority),
    assigneeId: Type.Optional(Nullable(Uuid)),
    message: Type.Optional(
      Type.Object({ text: Text, html: Type.Optional(Html) }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);

const UpdateTicket = Type.Object(
  {
    status: Type.Optional(Status),
    priority: Type.Optional(Priority),
    assigneeId: Type.Optional(Nullable(Uuid)),
    subject: Type.Optional(Type.String({ minLength: 1, maxLength: 998 })),
  },
  { additionalProperties: false, minProperties: 1 },
);

const TicketListQuery = Type.Object(
  {
    ...ListQuery,
    status: Type.Optional(Status),
    priority: Type.Optional(Priority),
    assigneeId: Type.Optional(Uuid),
    requesterId: Type.Optional(Uuid),
    q: Type.Optional(Type.String({ maxLength: 200 })),
    sla: Type.Optional(OneOf(['breached', 'at_risk', 'paused'] as const)),
    view: Type.Optional(OneOf(TICKET_VIEWS)),
    mailboxId: Type.Optional(Uuid),
    search: Type.Optional(Type.String({ maxLength: MAX_SEARCH_LENGTH })),
    sort: Type.Optional(OneOf(['created', 'due'] as const)),
  },
  { additionalProperties: false },
);

export const ticketRoutes: RouteModule = (app, { pool, clock }) => {
  app.post(
    '/tickets',
    {
      config: { permission: 'tickets:write' },
      schema: {
        tags: ['tickets'],
        summary: 'Create a ticket',
        description:
          'Creates a ticket numbered `T-<n>` (per tenant, increasing and without gaps: a creation that ' +
          'fails takes no number), with status `new` and priority `normal` unless `priority` is given. The requester is ' +
          'a person of the tenant (`{personId}`) or an address (`{email, name?}`): matched ' +
          "case-insensitively against every person's addresses, and when no one has it a contact is " +
          "created for it (named `name`, else the address's local part). `assigneeId` must be an " +
          'agent. The optional `message` becomes the first message: public, inbound and written by the ' +
          'requester, whoever calls; its `html` is stored sanitised (no scripts, event handlers or ' +
          "remote loads). The status history records the creation by the calling token's person, and " +
          'the SLA clocks of the first matching policy start. Answers 201 with the ticket and a ' +
          '`Location` header. Not idempotent: the same request sent twice creates two tickets.\n\n' +
          'Needs `tickets:write` (admin, agent, integration). 400 `validation_failed` when ' +
          '`requester.personId` or `assigneeId` is not a person of this tenant, the assignee is not an ' +
          'agent, or the address is not one.',
        body: CreateTicket,
        response: { 201: TicketSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { message, ...rest } = request.body;
      const input = {
        ...rest,
        ...(message
          ? {
              message: {
                text: message.text,
                html: message.html === undefined ? null : sanitizeBodyHtml(message.html),
              },
            }
          : {}),
        actorId: principal.personId,
      };
      // A known requester: written together with the tenant's other creations in flight
      // (create-together.ts). An unknown address: a transaction that creates the contact too.
      const ticket =
        (await createTicketTogether(pool, principal.tenantId, input)) ??
        (await withTenant(pool, principal.tenantId, (tx) => createTicket(tx, input)));
      return reply.code(201).header('location', `/api/v1/tickets/${ticket.id}`).send(ticket);
    },
  );

  app.get(
    '/tickets',
    {
      config: { permission: 'tickets:read' },
      schema: {
        tags: ['tickets'],
        summary: 'List tickets',
        description:
          "The tenant's tickets, deleted ones left out, newest first. Filters, all optional and " +
          'combined: `status`, `priority`, `assigneeId`, `requesterId`, `q` (a case-insensitive part of ' +
          'the subject) and `sla` (`breached`, `at_risk`, `paused`: the SLA state as the scheduler last ' +
          'evaluated it, usually seconds ago; a ticket without SLA clocks never matches). `sort=due` ' +
          'orders by the soonest SLA due time (tickets without one last) and answers a single page: ' +
          '`nextCursor` is null and `cursor` is not used. Paged otherwise: `limit` (default 50, max ' +
          "200) and `cursor` (the previous page's `nextCursor`; anything else is 400 `invalid_cursor`).\n\n" +
          'The views of the inbox, `view`, keep open tickets only (not `solved` or `closed`): `mine` ' +
          "(assigned to the caller's person), `unassigned`, `open`, `at_risk` and `breached` (their SLA " +
          'state, as `sla`). `mailboxId` keeps tickets with mail that came in through that mailbox. ' +
          '`search` is a full-text search over the subject and the text of every message (internal notes ' +
          'included): every word must occur, the last one also as the beginning of a word when it has ' +
          'three characters or more (so a search can run while it is typed); words are compared in any ' +
          'language as they are written, lower-cased, without stemming (`invoice` does not find ' +
          '`invoices`, `invoi` does); an address or a ticket tag is one word. Matches are ordered like ' +
          'every list (newest first, or by `sort`), not by relevance.\n\n' +
          'Each ticket comes with its `requester` (name and primary address), `assignee` (or null) and ' +
          '`sla` (`state` and the soonest `dueAt`, or null without SLA clocks).\n\n' +
          'Needs `tickets:read` (every role). 404 is never answered: a `mailboxId` of another tenant ' +
          'finds nothing.',
        querystring: TicketListQuery,
        response: { 200: Page(TicketViewSchema), ...problemResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return withTenantRead(pool, principal.tenantId, (tx) =>
        listTickets(tx, { ...request.query, personId: principal.personId }),
      );
    },
  );

  app.get(
    '/tickets/:id',
    {
      config: { permission: 'tickets:read' },
      schema: {
        tags: ['tickets'],
        summary: 'Get a ticket',
        description:
          'One ticket: number, subject, status, priority, requester, assignee, creation and last ' +
          'change, with the requester (name and primary address), the assignee (name) and the SLA ' +
          'summary (`state`, soonest `dueAt`) as the list shows them. Its messages are at ' +
          '`/tickets/{id}/messages`, its SLA at `/tickets/{id}/sla`, its history at ' +
          '`/tickets/{id}/history`.\n\n' +
          'Needs `tickets:read` (every role). 404 `not_found` when the id is not a ticket of this tenant ' +
          "(another tenant's included) or the ticket was deleted.",
        params: IdParams,
        response: { 200: TicketViewSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => getTicketView(tx, request.params.id)),
  );

  app.delete(
    '/tickets/:id',
    {
      config: { permission: 'tickets:delete' },
      schema: {
        tags: ['tickets'],
        summary: 'Delete a ticket',
        description:
          'Marks the ticket deleted; its rows are kept, but from then on it is answered 404 and left ' +
          'out of lists, its messages, SLA and attachments are no longer served, its SLA clocks are ' +
          'cancelled (`cancelled` events with reason `ticket_deleted`), and a mail reply to it opens a ' +
          'new ticket. There is no undelete in the API. Answers 204.\n\n' +
          'Needs `tickets:delete` (admin, agent). 404 `not_found` when the id is not a ticket of this ' +
          'tenant or it is already deleted (a second DELETE is a 404).',
        params: IdParams,
        response: { 204: Type.Null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await withTenant(pool, principal.tenantId, (tx) =>
        deleteTicket(tx, { ticketId: request.params.id, actorId: principal.personId }),
      );
      return reply.code(204).send(null);
    },
  );

  app.patch(
    '/tickets/:id',
    {
      config: { permission: 'tickets:write' },
      schema: {
        tags: ['tickets'],
        summary: 'Update a ticket',
        description:
          'Changes any of `status`, `priority`, `assigneeId` (null unassigns) and `subject`; at least ' +
          'one is required and the others stay. Any status may follow any other. A status change is ' +
          "appended to the ticket's status history with the calling token's person; a status or " +
          'priority change has the SLA clocks recomputed (a new priority can select other targets or ' +
          'another policy). The last write wins: there is no version check.\n\n' +
          'Needs `tickets:write` (admin, agent, integration). 404 `not_found` when the id is not a ' +
          'ticket of this tenant or it was deleted; 400 `validation_failed` when `assigneeId` is not an ' +
          'agent of this tenant.',
        params: IdParams,
        body: UpdateTicket,
        response: { 200: TicketSchema, ...problemResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return withTenant(pool, principal.tenantId, (tx) =>
        updateTicket(tx, { ...request.body, ticketId: request.params.id, actorId: principal.personId }),
      );
    },
  );

  app.post(
    '/tickets/bulk',
    {
      config: { permission: 'tickets:write', audit: 'tickets.bulk_update' },
      schema: {
        tags: ['tickets'],
        summary: 'Change many tickets at once',
        description:
          'Applies `changes` (any of `status`, `priority`, `assigneeId`; null unassigns) to each of ' +
          `\`ticketIds\` (1 to ${MAX_BULK}, no repeats), in the order given, exactly as ` +
          '`PATCH /tickets/{id}` would (status history, events, SLA recomputed). Each ticket is changed ' +
          'in a transaction of its own: one that cannot be changed does not hold back the others. ' +
          'Answers 200 with one result per ticket, in the same order: `ok`, or `code` saying why not ' +
          "(`not_found` for an id that is not a ticket of this tenant, another tenant's included, or a " +
          'deleted one). The audit trail records one `tickets.bulk_update` event per ticket, with its ' +
          'outcome.\n\n' +
          'Needs `tickets:write` (admin, agent, integration). 400 `validation_failed` when ' +
          '`changes.assigneeId` is not an agent of this tenant (nothing is changed).',
        body: BulkChanges,
        response: {
          200: Type.Object({
            results: Type.Array(
              Type.Object({ ticketId: Uuid, ok: Type.Boolean(), code: Type.Optional(Type.String()) }),
            ),
          }),
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const results = await bulkUpdateTickets(pool, {
        tenantId: principal.tenantId,
        ticketIds: request.body.ticketIds,
        changes: request.body.changes,
        actorId: principal.personId,
      });
      request.auditTargets = results.map((r) => ({
        targetType: 'tickets',
        targetId: r.ticketId,
        ok: r.ok,
        errorCode: r.code ?? null,
      }));
      return { results };
    },
  );

  const presenceDescription =
    'Presence says who has the ticket open in the console right now, and whether they are writing a ' +
    'reply (collision detection). ';
  const orderDescription =
    '\n\nA page may name itself (`page`, its own random id) and number its presence requests (`seq`, ' +
    'rising): the two go together. Requests can overtake each other on the way, and one of that page ' +
    'numbered before the last one taken is then ignored; a leave with them is kept as a marker until it ' +
    'expires, so a heartbeat overtaken by the leave does not bring its sender back.';
  const orderFields = {
    page: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        pattern: '^[A-Za-z0-9_-]+$',
        description: "The sending page's id (with seq)",
      }),
    ),
    seq: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: Number.MAX_SAFE_INTEGER,
        description: "The request's number among the page's presence requests (with page)",
      }),
    ),
  };
  const orderOf = (
    given: { page?: string | undefined; seq?: number | undefined },
    where: 'body' | 'query',
  ): PresenceOrder | undefined => {
    if (given.page === undefined && given.seq === undefined) return undefined;
    if (given.page === undefined || given.seq === undefined)
      throw validation('page and seq go together: give both or neither', [
        {
          path: given.page === undefined ? '/page' : '/seq',
          message: 'is required with the other',
          in: where,
        },
      ]);
    return { page: given.page, seq: given.seq };
  };
  app.put(
    '/tickets/:id/presence',
    {
      // A heartbeat every few seconds per open ticket: not worth an audit event each.
      config: { permission: 'tickets:read', audit: false },
      schema: {
        tags: ['tickets'],
        summary: 'Say that you have the ticket open',
        description:
          presenceDescription +
          "Records the caller's person on the ticket, `viewing` or `replying`, for 30 seconds: the " +
          'console repeats it (every 10 to 15 seconds) while the ticket is on screen. Others see it ' +
          'through `GET /tickets/{id}/presence` and the `presence` events of `GET /stream` (sent when ' +
          'someone arrives, leaves or changes state, not on every heartbeat). Answers 204. Not in the ' +
          'audit trail.\n\n' +
          'Needs `tickets:read` (every role). 404 `not_found` when the id is not a ticket of this ' +
          'tenant or it was deleted.' +
          orderDescription,
        params: IdParams,
        body: Type.Object({ state: OneOf(PRESENCE_STATES), ...orderFields }, { additionalProperties: false }),
        response: { 204: Type.Null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await withTenant(pool, principal.tenantId, (tx) =>
        touchPresence(tx, {
          ticketId: request.params.id,
          personId: principal.personId,
          state: request.body.state,
          now: clock.now(),
          order: orderOf(request.body, 'body'),
        }),
      );
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/tickets/:id/presence',
    {
      config: { permission: 'tickets:read', audit: false },
      schema: {
        tags: ['tickets'],
        summary: 'Say that you closed the ticket',
        description:
          presenceDescription +
          "Removes the caller's person from the ticket at once (without it, they disappear 30 seconds " +
          'after their last heartbeat). Answers 204, also when they were not on it. Not in the audit ' +
          'trail.\n\n' +
          'Needs `tickets:read` (every role). 404 `not_found` when the id is not a ticket of this ' +
          'tenant or it was deleted.' +
          orderDescription,
        params: IdParams,
        querystring: Type.Object(orderFields, { additionalProperties: false }),
        response: { 204: Type.Null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await withTenant(pool, principal.tenantId, (tx) =>
        leavePresence(tx, {
          ticketId: request.params.id,
          personId: principal.personId,
          now: clock.now(),
          order: orderOf(request.query, 'query'),
        }),
      );
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/tickets/:id/presence',
    {
      config: { permission: 'tickets:read' },
      schema: {
        tags: ['tickets'],
        summary: 'Who else has the ticket open',
        description:
          presenceDescription +
          "The people other than the caller's person whose last heartbeat is less than 30 seconds " +
          'old, those replying first: `id`, `displayName`, `state` and `since` (the last heartbeat).\n\n' +
          'Needs `tickets:read` (every role). 404 `not_found` when the id is not a ticket of this ' +
          'tenant or it was deleted.',
        params: IdParams,
        response: { 200: PresentPeople, ...problemResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const people = await withTenantRead(pool, principal.tenantId, (tx) =>
        ticketPresence(tx, {
          ticketId: request.params.id,
          now: clock.now(),
          exceptPersonId: principal.personId,
        }),
      );
      return { people };
    },
  );
};
