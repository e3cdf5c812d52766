import { Type } from 'typebox';
import { withTenant } from '../../platform/db/tx.ts';
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
import { createPerson, getPerson, listPeople, PERSON_KINDS, updatePerson } from './service.ts';

const Kind = OneOf(PERSON_KINDS);
const EmailAddress = Type.String({ minLength: 3, maxLength: 254 });

export const PersonSchema = Type.Object({
  id: Uuid,
  displayName: Type.String(),
  kind: Kind,
  status: Type.String(),
  email: Nullable(Type.String()),
  emails: Type.Array(Type.Object({ address: Type.String(), primary: Type.Boolean() })),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const CreatePerson = Type.Object(
  {
    displayName: Type.String({ minLength: 1, maxLength: 200 }),
    kind: Kind,
    email: Type.Optional(EmailAddress),
    emails: Type.Optional(Type.Array(EmailAddress, { maxItems: 50 })),
  },
  { additionalProperties: false },
);

const UpdatePerson = Type.Object(
  {
    displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    kind: Type.Optional(Kind),
    email: Type.Optional(EmailAddress),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const peopleRoutes: RouteModule = (app, { pool }) => {
  app.post(
    '/people',
    {
      config: { permission: 'people:write' },
      schema: {
        tags: ['people'],
        body: CreatePerson,
        response: { 201: PersonSchema, 409: problemResponses[400], ...problemResponses },
      },
    },
    async (request, reply) => {
      const { tenantId } = principalOf(request);
      const { email, emails, ...rest } = request.body;
      const all = [...(email ? [email] : []), ...(emails ?? [])];
      const person = await withTenant(pool, tenantId, (tx) => createPerson(tx, { ...rest, emails: all }));
      return reply.code(201).send(person);
    },
  );

  app.get(
    '/people',
    {
      config: { permission: 'people:read' },
      schema: {
        tags: ['people'],
        querystring: Type.Object(
          { ...ListQuery, kind: Type.Optional(Kind), q: Type.Optional(Type.String({ maxLength: 200 })) },
          { additionalProperties: false },
        ),
        response: { 200: Page(PersonSchema), ...problemResponses },
      },
    },
    async (request) => withTenant(pool, principalOf(request).tenantId, (tx) => listPeople(tx, request.query)),
  );

  app.get(
    '/people/:id',
    {
      config: { permission: 'people:read' },
      schema: { tags: ['people'], params: IdParams, response: { 200: PersonSchema, ...problemResponses } },
    },
    async (request) =>
      withTenant(pool, principalOf(request).tenantId, (tx) => getPerson(tx, request.params.id)),
  );

  app.patch(
    '/people/:id',
    {
      config: { permission: 'people:write' },
      schema: {
        tags: ['people'],
        params: IdParams,
        body: UpdatePerson,
        response: { 200: PersonSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenant(pool, principalOf(request).tenantId, (tx) =>
        updatePerson(tx, request.params.id, request.body),
      ),
  );
};
