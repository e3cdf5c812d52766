// The schema validator of every route: TypeBox's, with one rule added for text that becomes numbers.
// Query strings and path parameters arrive as text, which TypeBox converts before checking, and its
// conversion reads a number the way Number() does: "1.5" becomes 1 for an integer, and "0x10", "1e1",
// " 5" and "+5" all become numbers. An integer parameter must be written as a plain decimal integer.
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import type { TSchema } from 'typebox';

const DECIMAL_INTEGER = /^-?[0-9]+$/;

export const validatorCompiler: FastifySchemaCompiler<TSchema> = (route) => {
  const check = TypeBoxValidatorCompiler(route);
  if (route.httpPart !== 'querystring' && route.httpPart !== 'params') return check;
  const properties = (route.schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
  const integers = Object.keys(properties).filter((name) => properties[name]!.type === 'integer');
  if (integers.length === 0) return check;
  return (value: unknown) => {
    const given = (value ?? {}) as Record<string, unknown>;
    const error: FastifySchemaValidationError[] = integers
      .filter((name) => given[name] !== undefined)
      .filter((name) => typeof given[name] !== 'string' || !DECIMAL_INTEGER.test(given[name]))
      .map((name) => ({
        keyword: 'type',
        instancePath: `/${name}`,
        schemaPath: `#/properties/${name}/type`,
        params: {},
        message: 'must be an integer written in decimal digits',
      }));
    return error.length > 0 ? { error } : check(value);
  };
};
