import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
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
  PERSON_KINDS,
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

export const PersonSchema = Type.Object({
  id: Uuid,
  displayName: Type.String(),
  kind: Kind,
  status: Status,
  timeZone: Nullable(Type.String()),
  preferredChannel: Nullable(Channel),
  metadata: Metadata,
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

export const peopleRoutes: RouteModule = (app, { pool }) => {
  app.post(
    '/people',
    {
      config: { permission: 'people:write' },
      schema: { tags: ['people'], body: CreatePerson, response: { 201: PersonSchema, ...conflictResponses } },
    },
    async (request, reply) => {
      const p = principalOf(request);
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
        description:
          'The person behind an external identity (kind + externalId) or an email address; 404 person_not_found if none.',
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
      schema: { tags: ['people'], params: IdParams, response: { 200: PersonSchema, ...problemResponses } },
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
        params: IdParams,
        body: UpdatePerson,
        response: { 200: PersonSchema, ...conflictResponses },
      },
    },
    async (request) => {
      const p = principalOf(request);
      return withTenant(pool, p.tenantId, (tx) =>
        updatePerson(tx, request.params.id, { ...request.body, actor: actorOf(p) }),
      );
    },
  );

  app.delete(
    '/people/:id',
    {
      config: { permission: 'people:write' },
      schema: { tags: ['people'], params: IdParams, response: { 204: Type.Null(), ...conflictResponses } },
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
