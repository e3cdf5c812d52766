import { Type } from 'typebox';
import { withTenant, withTenantAutocommit, withTenantRead } from '../../platform/db/tx.ts';
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
import { createTicket, createTicketForKnownRequester } from './create.ts';
import { appendMessage, listMessages } from './messages.ts';
import { sanitizeBodyHtml, TICKET_PRIORITIES, TICKET_STATUSES, VISIBILITIES } from './model.ts';
import { getTicket, listTickets } from './queries.ts';

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

const CreateMessage = Type.Object(
  { text: Text, html: Type.Optional(Html), visibility: Visibility },
  { additionalProperties: false },
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
    sort: Type.Optional(OneOf(['created', 'due'] as const)),
  },
  { additionalProperties: false },
);

export const ticketRoutes: RouteModule = (app, { pool }) => {
  app.post(
    '/tickets',
    {
      config: { permission: 'tickets:write' },
      schema: { tags: ['tickets'], body: CreateTicket, response: { 201: TicketSchema, ...problemResponses } },
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
      // A known requester: one statement, sent with its BEGIN and COMMIT (the ticket counter is then
      // locked only while PostgreSQL runs them). An unknown address: a transaction that creates the
      // contact too.
      const ticket =
        (await withTenantAutocommit(pool, principal.tenantId, (tx) =>
          createTicketForKnownRequester(tx, input),
        )) ?? (await withTenant(pool, principal.tenantId, (tx) => createTicket(tx, input)));
      return reply.code(201).header('location', `/api/v1/tickets/${ticket.id}`).send(ticket);
    },
  );

  app.get(
    '/tickets',
    {
      config: { permission: 'tickets:read' },
      schema: {
        tags: ['tickets'],
        querystring: TicketListQuery,
        response: { 200: Page(TicketSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => listTickets(tx, request.query)),
  );

  app.get(
    '/tickets/:id',
    {
      config: { permission: 'tickets:read' },
      schema: { tags: ['tickets'], params: IdParams, response: { 200: TicketSchema, ...problemResponses } },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => getTicket(tx, request.params.id)),
  );

  app.delete(
    '/tickets/:id',
    {
      config: { permission: 'tickets:delete' },
      schema: {
        tags: ['tickets'],
        description:
          'Deletes the ticket: 404 from then on and left out of lists; its SLA clocks are cancelled; a reply by mail opens a new ticket.',
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
    '/tickets/:id/messages',
    {
      config: { permission: 'tickets:write' },
      schema: {
        tags: ['tickets'],
        params: IdParams,
        body: CreateMessage,
        response: { 201: MessageSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { html, ...body } = request.body;
      const message = await withTenant(pool, principal.tenantId, (tx) =>
        appendMessage(tx, {
          ...body,
          ...(html === undefined ? {} : { html: sanitizeBodyHtml(html) }),
          ticketId: request.params.id,
          authorId: principal.personId,
        }),
      );
      return reply.code(201).send(message);
    },
  );

  app.get(
    '/tickets/:id/messages',
    {
      config: { permission: 'tickets:read' },
      schema: {
        tags: ['tickets'],
        params: IdParams,
        querystring: Type.Object(
          { ...ListQuery, visibility: Type.Optional(Visibility) },
          { additionalProperties: false },
        ),
        response: { 200: Page(MessageSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) =>
        listMessages(tx, { ...request.query, ticketId: request.params.id }),
      ),
  );
};
