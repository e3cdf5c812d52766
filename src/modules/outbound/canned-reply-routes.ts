// Canned replies over HTTP: agents list and render them, template managers keep them.
import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { IdParams, ListQuery, Page, problemResponses, Timestamp, Uuid } from '../../platform/http/schemas.ts';
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import { conversationMailbox } from '../inbound/mailboxes.ts';
import {
  createCannedReply,
  deleteCannedReply,
  getCannedReply,
  listCannedReplies,
  MAX_SHORTCUT_LENGTH,
  renderCannedReply,
  updateCannedReply,
} from './canned-replies.ts';
import { MAX_TEMPLATE_LENGTH } from './template-render.ts';
import { ticketVariables } from './templates.ts';

const CannedReplySchema = Type.Object({
  id: Uuid,
  shortcut: Type.String(),
  title: Type.String(),
  body: Type.String(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const CannedReplyBody = Type.Object(
  {
    shortcut: Type.String({
      minLength: 1,
      maxLength: MAX_SHORTCUT_LENGTH,
      description: 'One word: letters, digits, `-`, `_`, `.` (e.g. `thanks`); unique per tenant in any case',
    }),
    title: Type.String({ minLength: 1, maxLength: 200 }),
    body: Type.String({ minLength: 1, maxLength: MAX_TEMPLATE_LENGTH, description: 'Liquid' }),
  },
  { additionalProperties: false },
);

const ABOUT =
  "Canned replies are a tenant's ready-made texts that an agent inserts into a reply by typing the " +
  'shortcut. Their body is Liquid with the variables of mail templates, among them ' +
  '`{{ ticket.number }}`, `{{ ticket.subject }}`, `{{ requester.name }}` and `{{ agent.name }}` (the ' +
  'agent rendering it), also `ticket.status`, `ticket.priority`, `requester.email`, `agent.email`, ' +
  '`mailbox.address`, `mailbox.name` and `portal.link`; an unknown variable renders empty, an unknown ' +
  'filter is refused, and a render is bounded as for templates. ';

const READ = 'Needs `tickets:write` (admin, agent, integration: whoever may reply). ';
const WRITE = 'Needs `templates:manage` (admin). ';

export const cannedReplyRoutes: RouteModule = (app, { pool }) => {
  app.get(
    '/canned-replies',
    {
      config: { permission: 'tickets:write' },
      schema: {
        tags: ['canned replies'],
        summary: 'List canned replies',
        description:
          ABOUT +
          'Newest first. `q` keeps those whose shortcut starts with it or whose title contains it (any ' +
          "case). Paged: `limit` (default 50, max 200) and `cursor` (the previous page's `nextCursor`).\n\n" +
          READ,
        querystring: Type.Object(
          { ...ListQuery, q: Type.Optional(Type.String({ maxLength: 200 })) },
          { additionalProperties: false },
        ),
        response: { 200: Page(CannedReplySchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => listCannedReplies(tx, request.query)),
  );

  app.post(
    '/canned-replies',
    {
      config: { permission: 'templates:manage' },
      schema: {
        tags: ['canned replies'],
        summary: 'Add a canned reply',
        description:
          ABOUT +
          'Answers 201 with it. The body must parse and render (with sample values).\n\n' +
          WRITE +
          '400 `validation_failed` for a shortcut that is not one word or a body that does not work; 409 ' +
          '`conflict` when the shortcut is taken (in any case).',
        body: CannedReplyBody,
        response: { 201: CannedReplySchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const created = await withTenant(pool, principalOf(request).tenantId, (tx) =>
        createCannedReply(tx, request.body),
      );
      return reply.code(201).header('location', `/api/v1/canned-replies/${created.id}`).send(created);
    },
  );

  app.get(
    '/canned-replies/:id',
    {
      config: { permission: 'tickets:write' },
      schema: {
        tags: ['canned replies'],
        summary: 'Get a canned reply',
        description: ABOUT + '\n\n' + READ + '404 `not_found` when the id is not one of this tenant.',
        params: IdParams,
        response: { 200: CannedReplySchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => getCannedReply(tx, request.params.id)),
  );

  app.put(
    '/canned-replies/:id',
    {
      config: { permission: 'templates:manage' },
      schema: {
        tags: ['canned replies'],
        summary: 'Change a canned reply',
        description:
          ABOUT +
          'Replaces shortcut, title and body.\n\n' +
          WRITE +
          '404 `not_found` when the id is not one of this tenant; 400 and 409 as for creating one.',
        params: IdParams,
        body: CannedReplyBody,
        response: { 200: CannedReplySchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenant(pool, principalOf(request).tenantId, (tx) =>
        updateCannedReply(tx, request.params.id, request.body),
      ),
  );

  app.delete(
    '/canned-replies/:id',
    {
      config: { permission: 'templates:manage' },
      schema: {
        tags: ['canned replies'],
        summary: 'Delete a canned reply',
        description:
          ABOUT + 'Answers 204.\n\n' + WRITE + '404 `not_found` when the id is not one of this tenant.',
        params: IdParams,
        response: { 204: Type.Null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      await withTenant(pool, principalOf(request).tenantId, (tx) => deleteCannedReply(tx, request.params.id));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/canned-replies/:id/render',
    {
      // Changes nothing: no audit event.
      config: { permission: 'tickets:write', audit: false },
      schema: {
        tags: ['canned replies'],
        summary: 'Render a canned reply for a ticket',
        description:
          ABOUT +
          "Answers `{text}`: the body with the ticket's values, `agent` being the caller's person and " +
          "`mailbox` the one the ticket's replies go out from. Changes nothing.\n\n" +
          READ +
          '404 `not_found` when the id is not a canned reply of this tenant or `ticketId` not a ticket ' +
          "of this tenant (another tenant's included); 400 `validation_failed` when the ticket's values " +
          'push the render past a bound.',
        params: IdParams,
        body: Type.Object({ ticketId: Uuid }, { additionalProperties: false }),
        response: { 200: Type.Object({ text: Type.String() }), ...problemResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return withTenantRead(pool, principal.tenantId, async (tx) => {
        const canned = await getCannedReply(tx, request.params.id);
        const mailbox = await conversationMailbox(tx, request.body.ticketId);
        const vars = await ticketVariables(tx, {
          ticketId: request.body.ticketId,
          agentId: principal.personId,
          mailbox,
        });
        return { text: renderCannedReply(canned, vars) };
      });
    },
  );
};
