import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { AppError, forbidden } from '../../platform/errors.ts';
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
import { addEmail, removeEmail } from './emails.ts';
import { actorOf, IDENTITY_EVENT_TYPES, listEvents } from './events.ts';
import { addIdentity, removeIdentity, resolvePerson } from './identities.ts';
import {
  CHANNELS,
  createPerson,
  deletePerson,
  getPerson,
  listPeople,
  normalizeEmail,
  PERSON_CHANNELS,
  PERSON_KINDS,
  PERSON_ROLES,
  PERSON_STATUSES,
  updatePerson,
} from './service.ts';

const Kind = OneOf(PERSON_KINDS);
const Status = OneOf(PERSON_STATUSES);
const Channel = OneOf(CHANNELS);
const EmailAddress = Type.String({ minLength: 3, maxLength: 254 });
const IdentityKind = Type.String({ pattern: '^[a-z][a-z0-9_-]{1,31}$' });
const ExternalId = Type.String({ minLength: 1, maxLength: 512 });
const Metadata = Type.Record(Type.String(), Type.Unknown());

const NotificationSettingsSchema = Type.Object(
  {
    fallback: Type.Optional(
      Type.Array(OneOf(PERSON_CHANNELS), {
        maxItems: 3,
        uniqueItems: true,
        description: 'Channels to try, in order, after `preferredChannel`.',
      }),
    ),
    quietHours: Type.Optional(
      Type.Object(
        {
          start: Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' }),
          end: Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' }),
        },
        {
          additionalProperties: false,
          description:
            "A daily window in the person's `timeZone` (UTC without one) in which notifications of all but urgent events (an SLA breach) wait until it ends; a start after the end spans midnight.",
        },
      ),
    ),
  },
  { additionalProperties: false },
);

export const PersonSchema = Type.Object({
  id: Uuid,
  displayName: Type.String(),
  kind: Kind,
  status: Status,
  timeZone: Nullable(Type.String()),
  preferredChannel: Nullable(Channel),
  metadata: Metadata,
  role: Nullable(OneOf(PERSON_ROLES)),
  notifications: NotificationSettingsSchema,
  email: Nullable(Type.String()),
  emails: Type.Array(Type.Object({ address: Type.String(), primary: Type.Boolean() })),
  identities: Type.Array(Type.Object({ kind: Type.String(), externalId: Type.String() })),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const profileFields = {
  status: Type.Optional(Status),
  emails: Type.Optional(Type.Array(EmailAddress, { maxItems: 50 })),
  email: Type.Optional(EmailAddress),
  timeZone: Type.Optional(Nullable(Type.String({ maxLength: 64 }))),
  preferredChannel: Type.Optional(Nullable(Channel)),
  metadata: Type.Optional(Metadata),
  role: Type.Optional(
    OneOf(PERSON_ROLES, {
      description:
        'Of an agent: what they may do acting as themselves (from Teams, the console); default `agent`. Setting it needs `tokens:manage` (admin).',
    }),
  ),
  notifications: Type.Optional(NotificationSettingsSchema),
};

const CreatePerson = Type.Object(
  { displayName: Type.String({ minLength: 1, maxLength: 200 }), kind: Kind, ...profileFields },
  { additionalProperties: false },
);
const UpdatePerson = Type.Object(
  {
    displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    kind: Type.Optional(Kind),
    ...profileFields,
  },
  { additionalProperties: false, minProperties: 1 },
);

const EventSchema = Type.Object({
  id: Uuid,
  personId: Uuid,
  type: OneOf(IDENTITY_EVENT_TYPES),
  actor: Type.String(),
  before: Type.Unknown(),
  after: Type.Unknown(),
  createdAt: Timestamp,
});

const conflictResponses = { ...problemResponses, 409: ProblemSchema };

/** A person's role is what they may do as themselves: only who may mint admin tokens may set it. */
function mayGrantRoles(p: { permissions: readonly string[] }): void {
  if (!p.permissions.includes('tokens:manage')) throw forbidden('Setting a role needs tokens:manage');
}

export const peopleRoutes: RouteModule = (app, { pool }) => {
  app.post(
    '/people',
    {
      config: { permission: 'people:write' },
      schema: {
        tags: ['people'],
        summary: 'Create a person',
        description:
          'Creates an agent or a contact with its profile and email addresses. `emails` lists addresses ' +
          'in order and `email` names the primary one (it goes first; the first address is primary); ' +
          'with neither, the person has no address. An address belongs to one person of the tenant; ' +
          'addresses match case-insensitively and a `+tag` is significant. `status` defaults to ' +
          '`active`; `timeZone` must be an IANA name (stored in its canonical form); `metadata` is a ' +
          'JSON object of at most 16 KiB. Answers 201 with the person and a `Location` header. The ' +
          'identity log records the profile and each address. Not idempotent.\n\n' +
          'Needs `people:write` (admin, agent, integration). 409 `conflict` (with `field: "email"` and ' +
          'the `value`) when another person has one of the addresses; 400 `validation_failed` for an ' +
          'invalid address, time zone or metadata, or an address listed twice.',
        body: CreatePerson,
        response: { 201: PersonSchema, ...conflictResponses },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      if (request.body.role !== undefined) mayGrantRoles(p);
      const { email, emails, ...rest } = request.body;
      const all = [
        ...(email ? [email] : []),
        ...(emails ?? []).filter((e) => !email || normalizeEmail(e) !== normalizeEmail(email)),
      ];
      const person = await withTenant(pool, p.tenantId, (tx) =>
        createPerson(tx, { ...rest, emails: all, actor: actorOf(p) }),
      );
      return reply.code(201).header('location', `/api/v1/people/${person.id}`).send(person);
    },
  );

  app.get(
    '/people',
    {
      config: { permission: 'people:read' },
      schema: {
        tags: ['people'],
        summary: 'List people',
        description:
          "The tenant's people, newest first, with their addresses and external identities. Filters: " +
          '`kind` (agent, contact), `status` (invited, active, suspended) and `q` (a case-insensitive ' +
          'part of the display name or of an address). Paged: `limit` (default 50, max 200) and ' +
          "`cursor` (the previous page's `nextCursor`; anything else is 400 `invalid_cursor`).\n\n" +
          'Needs `people:read` (every role).',
        querystring: Type.Object(
          {
            ...ListQuery,
            kind: Type.Optional(Kind),
            status: Type.Optional(Status),
            q: Type.Optional(Type.String({ maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Page(PersonSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => listPeople(tx, request.query)),
  );

  app.get(
    '/people/resolve',
    {
      config: { permission: 'people:read' },
      schema: {
        tags: ['people'],
        summary: 'Find the person behind an identity or address',
        description:
          'Answers which person an external identity (`kind` and `externalId` together, e.g. ' +
          "`?kind=slack&externalId=U024BE7LH`) or an email address (`?email=`, any of a person's " +
          'addresses, case-insensitive) belongs to. Pass exactly one of the two forms; anything else is ' +
          '400 `validation_failed`. Names are never matched. A suspended person is returned too, with ' +
          "its `status`: what to do with one is the caller's decision.\n\n" +
          'Needs `people:read` (every role). 404 `not_found` when no person of this tenant has that ' +
          'identity or address.',
        querystring: Type.Object(
          {
            kind: Type.Optional(IdentityKind),
            externalId: Type.Optional(ExternalId),
            email: Type.Optional(EmailAddress),
          },
          { additionalProperties: false },
        ),
        response: { 200: PersonSchema, ...problemResponses },
      },
    },
    async (request) => {
      const { kind, externalId, email } = request.query;
      const byIdentity = kind !== undefined && externalId !== undefined;
      if (
        byIdentity === (email !== undefined) ||
        (!byIdentity && (kind !== undefined || externalId !== undefined))
      ) {
        throw new AppError('validation_failed', 'pass either kind and externalId, or email');
      }
      const person = await withTenantRead(pool, principalOf(request).tenantId, (tx) =>
        resolvePerson(tx, byIdentity ? { kind: kind!, externalId: externalId! } : { email: email! }),
      );
      if (!person) throw new AppError('not_found', 'no person has that identity or address');
      return person;
    },
  );

  app.get(
    '/people/:id',
    {
      config: { permission: 'people:read' },
      schema: {
        tags: ['people'],
        summary: 'Get a person',
        description:
          'One person with its profile, email addresses (primary first) and external identities.\n\n' +
          'Needs `people:read` (every role). 404 `not_found` when the id is not a person of this tenant ' +
          "(another tenant's person is not found either).",
        params: IdParams,
        response: { 200: PersonSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => getPerson(tx, request.params.id)),
  );

  app.patch(
    '/people/:id',
    {
      config: { permission: 'people:write' },
      schema: {
        tags: ['people'],
        summary: 'Update a person',
        description:
          'Changes the fields given (at least one); the others stay. `emails` replaces the whole set of ' +
          'addresses (the first becomes primary; addresses left out are removed; `[]` removes all); ' +
          '`email` makes that address primary, adding it when the person does not have it. `timeZone` ' +
          'or `preferredChannel` set to null clears it. Setting `status` to `suspended` makes every ' +
          'token of the person answer 401 until the status changes back. Each change is recorded in the ' +
          'identity log (`profile_changed`, `status_changed`, `email_added`, `email_removed`).\n\n' +
          'Needs `people:write` (admin, agent, integration). 404 `not_found` when the person is not in ' +
          'this tenant; 409 `conflict` (`field: "email"`) when an address belongs to another person; ' +
          '400 `validation_failed` for an invalid address, time zone or metadata.',
        params: IdParams,
        body: UpdatePerson,
        response: { 200: PersonSchema, ...conflictResponses },
      },
    },
    async (request) => {
      const p = principalOf(request);
      if (request.body.role !== undefined) mayGrantRoles(p);
      return withTenant(pool, p.tenantId, (tx) =>
        updatePerson(tx, request.params.id, { ...request.body, actor: actorOf(p) }),
      );
    },
  );

  app.delete(
    '/people/:id',
    {
      config: { permission: 'people:write' },
      schema: {
        tags: ['people'],
        summary: 'Delete a person',
        description:
          'Removes the person with its email addresses, external identities and API tokens (which stop ' +
          'working at once); the identity log keeps the events of the removal. A person who is the ' +
          'requester or assignee of a ticket, or wrote a message, cannot be deleted: merge them into ' +
          'another person instead (`POST /people/{id}/merge`). Answers 204.\n\n' +
          'Needs `people:write` (admin, agent, integration). 409 `conflict` when the person has tickets ' +
          'or messages; 404 `not_found` when the person is not in this tenant (also on a second DELETE).',
        params: IdParams,
        response: { 204: Type.Null(), ...conflictResponses },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      await withTenant(pool, p.tenantId, (tx) => deletePerson(tx, request.params.id, actorOf(p)));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/people/:id/emails',
    {
      config: { permission: 'people:write' },
      schema: {
        tags: ['people'],
        summary: 'Add an email address to a person',
        description:
          'Adds one address to the person. With `primary: true`, or when the person had no address, it ' +
          'becomes the primary one; `primary: true` for an address the person already has only makes ' +
          'it primary. Answers 201 with the whole person. A new address records `email_added`.\n\n' +
          'Needs `people:write` (admin, agent, integration). 409 `conflict` (`field: "email"`) when ' +
          'another person has the address, and also when this person already has it and `primary` is ' +
          'not set; 400 `validation_failed` for an invalid address; 404 `not_found` when the person is ' +
          'not in this tenant.',
        params: IdParams,
        body: Type.Object(
          { address: EmailAddress, primary: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
        response: { 201: PersonSchema, ...conflictResponses },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      const person = await withTenant(pool, p.tenantId, (tx) =>
        addEmail(tx, {
          personId: request.params.id,
          address: request.body.address,
          primary: request.body.primary ?? false,
          actor: actorOf(p),
        }),
      );
      return reply.code(201).send(person);
    },
  );

  app.delete(
    '/people/:id/emails/:address',
    {
      config: { permission: 'people:write' },
      schema: {
        tags: ['people'],
        summary: 'Remove an email address from a person',
        description:
          'Removes one address of the person (matched case-insensitively; URL-encode it in the path). ' +
          "When it was the primary address, the person's oldest remaining address becomes primary. " +
          'Answers 200 with the person. Records `email_removed`.\n\n' +
          'Needs `people:write` (admin, agent, integration). 404 `not_found` when the person is not in ' +
          'this tenant or does not have that address (also on a second DELETE).',
        params: Type.Object(
          { id: Uuid, address: Type.String({ minLength: 1, maxLength: 254 }) },
          { additionalProperties: false },
        ),
        response: { 200: PersonSchema, ...problemResponses },
      },
    },
    async (request) => {
      const p = principalOf(request);
      return withTenant(pool, p.tenantId, (tx) =>
        removeEmail(tx, { personId: request.params.id, address: request.params.address, actor: actorOf(p) }),
      );
    },
  );

  app.post(
    '/people/:id/identities',
    {
      config: { permission: 'people:write' },
      schema: {
        tags: ['people'],
        summary: 'Link an external identity to a person',
        description:
          'Links an identity of another system to the person: `kind` is a lower-case slug naming the ' +
          'system (`entra`, `teams`, `slack`, `github`, ...), `externalId` its id there (trimmed, 1 to ' +
          '512 characters). `GET /people/resolve` and the channels then find the person by it. ' +
          'Idempotent: linking an identity the person already has answers 201 again and records ' +
          'nothing. A new link records `identity_added` and takes the identity off the unmapped ' +
          'identities list. Answers 201 with the person.\n\n' +
          'Needs `people:write` (admin, agent, integration). 409 `identity_taken` when the identity ' +
          'belongs to another person (unlink it there, or merge the two); 404 `not_found` when the ' +
          'person is not in this tenant.',
        params: IdParams,
        body: Type.Object({ kind: IdentityKind, externalId: ExternalId }, { additionalProperties: false }),
        response: { 201: PersonSchema, ...conflictResponses },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      const person = await withTenant(pool, p.tenantId, async (tx) => {
        await addIdentity(tx, request.params.id, request.body, actorOf(p));
        return getPerson(tx, request.params.id);
      });
      return reply.code(201).send(person);
    },
  );

  app.delete(
    '/people/:id/identities/:kind/:externalId',
    {
      config: { permission: 'people:write' },
      schema: {
        tags: ['people'],
        summary: 'Unlink an external identity from a person',
        description:
          'Removes the link between the person and the identity (`externalId` URL-encoded in the path). ' +
          'Answers 200 with the person. Records `identity_removed`.\n\n' +
          'Needs `people:write` (admin, agent, integration). 404 `not_found` when the person is not in ' +
          'this tenant or does not have that identity (also on a second DELETE).',
        params: Type.Object(
          { id: Uuid, kind: IdentityKind, externalId: ExternalId },
          { additionalProperties: false },
        ),
        response: { 200: PersonSchema, ...problemResponses },
      },
    },
    async (request) => {
      const p = principalOf(request);
      const { id, kind, externalId } = request.params;
      return withTenant(pool, p.tenantId, async (tx) => {
        await removeIdentity(tx, id, { kind, externalId }, actorOf(p));
        return getPerson(tx, id);
      });
    },
  );

  app.get(
    '/people/:id/events',
    {
      config: { permission: 'people:read' },
      schema: {
        tags: ['people'],
        summary: "List a person's identity events",
        description:
          "The person's identity event log, newest first: `identity_added`, `identity_removed`, " +
          '`email_added`, `email_removed`, `auto_merge`, `manual_merge`, `token_minted`, ' +
          '`token_revoked`, `status_changed`, `profile_changed`, each with its actor (`person:<id>`, ' +
          '`token:<preview>` or `system:<component>`) and the values `before` and `after`. The log is ' +
          'append-only and never holds a token or a secret. Paged: `limit` (default 50, max 200) and ' +
          "`cursor` (the previous page's `nextCursor`).\n\n" +
          'Needs `people:read` (every role). 404 `not_found` when the person is not in this tenant; the ' +
          'events of a deleted or merged-away person are kept but not served here.',
        params: IdParams,
        querystring: Type.Object({ ...ListQuery }, { additionalProperties: false }),
        response: { 200: Page(EventSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, async (tx) => {
        // Events outlive a deleted person, but the route is for people that exist.
        await getPerson(tx, request.params.id);
        return listEvents(tx, { ...request.query, personId: request.params.id });
      }),
  );
};
