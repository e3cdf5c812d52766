// Schemas shared by routes: ids, list queries, pages, problems.
import { type TEnum, type TSchema, Type } from 'typebox';

export const Uuid = Type.String({ format: 'uuid' });
export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false });
export const Timestamp = Type.String({ format: 'date-time' });

export const ListQuery = {
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 200, description: 'Page size (default 50, max 200)' }),
  ),
  cursor: Type.Optional(
    Type.String({ maxLength: 200, description: 'nextCursor of the previous page, as received' }),
  ),
};

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String(),
  },
  { additionalProperties: true },
);

export const Page = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) });

/** Standard error responses documented on every authenticated route. */
export const problemResponses = {
  400: ProblemSchema,
  401: ProblemSchema,
  403: ProblemSchema,
  404: ProblemSchema,
  503: ProblemSchema,
};

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** One of a readonly tuple of strings (JSON Schema enum), keeping the literal types. */
export const OneOf = <const T extends readonly string[]>(values: T, options: { description?: string } = {}) =>
  Type.Enum(values as unknown as [...T], options) as TEnum<[...T]>;
