// Mail templates over HTTP: keep them, and preview them rendered with a ticket's values or samples.
import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
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
import { principalOf, type RouteModule } from '../../platform/http/server.ts';
import type { TenantTx } from '../../platform/db/tx.ts';
import { conversationMailbox } from '../inbound/mailboxes.ts';
import { MAX_TEMPLATE_LENGTH, renderMailTemplate, SAMPLE_VARIABLES } from './template-render.ts';
import {
  createTemplate,
  deleteTemplate,
  getTemplate,
  listTemplates,
  type MailTemplateInput,
  TEMPLATE_KINDS,
  type TemplateSource,
  ticketVariables,
  updateTemplate,
} from './templates.ts';

const Kind = OneOf(TEMPLATE_KINDS);
const Source = (description: string) => Type.String({ maxLength: MAX_TEMPLATE_LENGTH, description });

const TemplateBody = Type.Object(
  {
    kind: Kind,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    subject: Type.Optional(Source('Liquid; required for an acknowledgement')),
    text: Source('Liquid: the plain-text body'),
    html: Type.Optional(Nullable(Source('Liquid: the HTML body (its variables are HTML-escaped)'))),
  },
  { additionalProperties: false },
);

const TemplateSchema = Type.Object({
  id: Uuid,
  kind: Kind,
  name: Type.String(),
  subject: Type.String(),
  text: Type.String(),
  html: Nullable(Type.String()),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const PreviewBody = Type.Object(
  {
    kind: Type.Optional(Kind),
    subject: Type.Optional(Source('Liquid')),
    text: Source('Liquid'),
    html: Type.Optional(Nullable(Source('Liquid'))),
    ticketId: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);

const SavedPreviewBody = Type.Object({ ticketId: Type.Optional(Uuid) }, { additionalProperties: false });

const Rendered = Type.Object({ subject: Type.String(), text: Type.String(), html: Nullable(Type.String()) });

const VARIABLES =
  'Variables (Liquid, e.g. `{{ ticket.number }}`): `ticket.number` (`T-12`), `ticket.subject`, ' +
  '`ticket.status`, `ticket.priority`, `requester.name`, `requester.email`, `agent.name`, `agent.email` ' +
  '(the replying agent, or for an acknowledgement the assignee; empty when none), `mailbox.address`, ' +
  "`mailbox.name` (the mailbox the mail goes out from), `portal.link` (the ticket in the desk's " +
  'customer portal, from the mailbox setting `outbound.portalLink`; empty without it). An unknown variable ' +
  'renders empty; an unknown filter is an error. The subject and the text are not escaped; in the ' +
  'HTML body every variable is HTML-escaped (`| raw` opts out). No tag reads files: `include`, ' +
  '`render` and `layout` are refused. A render is bounded (loops, strings built, time): a template ' +
  'that goes past a bound is refused like one that does not parse. The subject is one line (line ' +
  'breaks become spaces), at most 998 characters.';

const SAMPLES =
  'Without `ticketId` the sample values are used: `ticket.number` `T-1234`, `ticket.subject` ' +
  '`Printer on floor 3 is jammed`, `ticket.status` `new`, `ticket.priority` `normal`, `requester` ' +
  '`Carol Customer` <`carol@example.com`>, `agent` `Alex Agent` <`alex@example.com`>, `mailbox` ' +
  '`Support` <`support@example.com`>, `portal.link` ' +
  '`https://portal.example.com/requests/T-1234`. With ' +
  "`ticketId`, that ticket's values, the calling token's person as `agent`, and the mailbox its " +
  "conversation's mail goes out through (the tenant's first mailbox for a ticket without mail).";

/** The body of a POST or PUT as stored: what is left out is empty (PUT replaces everything). */
const asInput = (body: {
  kind: MailTemplateInput['kind'];
  name: string;
  subject?: string;
  text: string;
  html?: string | null;
}): Required<MailTemplateInput> => ({
  kind: body.kind,
  name: body.name,
  subject: body.subject ?? '',
  text: body.text,
  html: body.html ?? null,
});

export const mailTemplateRoutes: RouteModule = (app, { pool }) => {
  const manage = { config: { permission: 'templates:manage' as const } };

  async function preview(
    tx: TenantTx,
    source: TemplateSource,
    ticketId: string | undefined,
    agentId: string,
  ) {
    const vars = ticketId
      ? await ticketVariables(tx, { ticketId, agentId, mailbox: await conversationMailbox(tx, ticketId) })
      : SAMPLE_VARIABLES;
    return renderMailTemplate(source, vars);
  }

  app.post(
    '/mail-templates',
    {
      ...manage,
      schema: {
        tags: ['mail templates'],
        summary: 'Create a mail template',
        description:
          'Stores a mail template: `kind` `acknowledgement` (the answer to a new ticket; needs a ' +
          "`subject`) or `signature` (under agents' replies; its `subject` is not used), a `name` " +
          'unique per kind regardless of case, and Liquid `subject`, `text` and optional `html` ' +
          '(left out or null: text only). Sending uses the template of the kind named `default` (any ' +
          'case), else the one changed last, else the built-in one. Each part must parse and render ' +
          '(with the sample values of the preview) within the bounds. Answers 201 with the template ' +
          'and a `Location` header.\n\n' +
          VARIABLES +
          '\n\nNeeds `templates:manage` (admin). 400 `validation_failed` with `errors` naming the part ' +
          "(`/subject`, `/text`, `/html`) and the parser's message (line, column) when one does not " +
          'parse or render; 409 `conflict` when the kind already has a template of that name.',
        body: TemplateBody,
        response: { 201: TemplateSchema, 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const created = await withTenant(pool, principalOf(request).tenantId, (tx) =>
        createTemplate(tx, asInput(request.body)),
      );
      return reply.code(201).header('location', `/api/v1/mail-templates/${created.id}`).send(created);
    },
  );

  app.get(
    '/mail-templates',
    {
      ...manage,
      schema: {
        tags: ['mail templates'],
        summary: 'List mail templates',
        description:
          "The tenant's mail templates, newest first, with their sources; `kind` keeps one kind. " +
          "Paged: `limit` (default 50, max 200) and `cursor` (the previous page's `nextCursor`; " +
          'anything else is 400 `invalid_cursor`).\n\n' +
          'Needs `templates:manage` (admin).',
        querystring: Type.Object(
          { ...ListQuery, kind: Type.Optional(Kind) },
          { additionalProperties: false },
        ),
        response: { 200: Page(TemplateSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => listTemplates(tx, request.query)),
  );

  app.get(
    '/mail-templates/:id',
    {
      ...manage,
      schema: {
        tags: ['mail templates'],
        summary: 'Get a mail template',
        description:
          'One mail template with its kind, name and Liquid sources.\n\n' +
          'Needs `templates:manage` (admin). 404 `not_found` when the id is not a template of this ' +
          "tenant (another tenant's included).",
        params: IdParams,
        response: { 200: TemplateSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => getTemplate(tx, request.params.id)),
  );

  app.put(
    '/mail-templates/:id',
    {
      ...manage,
      schema: {
        tags: ['mail templates'],
        summary: 'Replace a mail template',
        description:
          'Replaces the kind, name and sources of the template with the body, in the same form as ' +
          'creating one: a `subject` or `html` left out becomes empty. Mail rendered from then on ' +
          'uses the new version. Answers 200.\n\n' +
          'Needs `templates:manage` (admin). 404 `not_found` when the id is not a template of this ' +
          'tenant; 400 and 409 as for creating one.',
        params: IdParams,
        body: TemplateBody,
        response: { 200: TemplateSchema, 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenant(pool, principalOf(request).tenantId, (tx) =>
        updateTemplate(tx, request.params.id, asInput(request.body)),
      ),
  );

  app.delete(
    '/mail-templates/:id',
    {
      ...manage,
      schema: {
        tags: ['mail templates'],
        summary: 'Delete a mail template',
        description:
          'Deletes the template; sending then uses the next one of its kind (see creating one) or ' +
          'the built-in one. Answers 204.\n\n' +
          'Needs `templates:manage` (admin). 404 `not_found` when the id is not a template of this ' +
          'tenant (also on a second DELETE).',
        params: IdParams,
        response: { 204: Type.Null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      await withTenant(pool, principalOf(request).tenantId, (tx) => deleteTemplate(tx, request.params.id));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/mail-templates/preview',
    {
      ...manage,
      schema: {
        tags: ['mail templates'],
        summary: 'Preview an unsaved mail template',
        description:
          'Renders the template in the body (not stored) and answers 200 `{subject, text, html}` as ' +
          'the mail would carry them (`html` null when the template has none). `kind` is accepted ' +
          'for symmetry with creating one and changes nothing. ' +
          SAMPLES +
          '\n\n' +
          VARIABLES +
          '\n\nNeeds `templates:manage` (admin). 400 `validation_failed` naming the part that does not ' +
          'parse or render; 404 `not_found` when `ticketId` is not a ticket of this tenant.',
        body: PreviewBody,
        response: { 200: Rendered, ...problemResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { subject, text, html, ticketId } = request.body;
      return withTenantRead(pool, principal.tenantId, (tx) =>
        preview(tx, { subject: subject ?? '', text, html: html ?? null }, ticketId, principal.personId),
      );
    },
  );

  app.post(
    '/mail-templates/:id/preview',
    {
      ...manage,
      schema: {
        tags: ['mail templates'],
        summary: 'Preview a mail template',
        description:
          'Renders the stored template and answers 200 `{subject, text, html}` as the mail would ' +
          'carry them. The body is `{}` or `{ticketId}`. ' +
          SAMPLES +
          '\n\nNeeds `templates:manage` (admin). 404 `not_found` when the id is not a template of ' +
          'this tenant, or `ticketId` not a ticket of it; 400 `validation_failed` naming the part ' +
          "when the ticket's values push the template past a bound.",
        params: IdParams,
        body: SavedPreviewBody,
        response: { 200: Rendered, ...problemResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return withTenantRead(pool, principal.tenantId, async (tx) => {
        const template = await getTemplate(tx, request.params.id);
        return preview(tx, template, request.body.ticketId, principal.personId);
      });
    },
  );
};
