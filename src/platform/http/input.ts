// What any request may carry, checked in one place for every route before validation and handlers
// run (server.ts registers it), so that no hostile input reaches a handler or the database:
//
// - Text PostgreSQL can store. PostgreSQL keeps text and jsonb as UTF-8 without U+0000: a NUL in a
//   text parameter fails the statement (22021), a NUL escape in jsonb too (22P05). An unpaired UTF-16
//   surrogate (JSON allows the escape "\ud800") is not a character at all: in jsonb it fails the
//   statement (22P02), and in a text parameter the driver's UTF-8 encoder silently turns it into
//   U+FFFD. So no string anywhere (body, query string, path, object keys included) may hold either.
// - Numbers JavaScript can hold: JSON.parse reads 1e400 as Infinity, which JSON.stringify would then
//   write as null.
// - Nesting at most MAX_JSON_DEPTH levels: validation, JSON.stringify and PostgreSQL's jsonb parser
//   all recurse, and JSON nested thousands deep exhausts their stacks.
// - Free-form JSON (a field whose shape is the client's, like metadata or a calendar) at most
//   FREE_FORM_MAX_BYTES as JSON.
// - A query string that is percent-encoded UTF-8 (the router refuses a path that is not; the query
//   string parser would keep a bad sequence as it stands, or decode it to U+FFFD).
import type { TSchema } from 'typebox';
import type { FieldError } from '../errors.ts';

export const MAX_JSON_DEPTH = 32;
export const FREE_FORM_MAX_BYTES = 64 * 1024;
/** Problems reported at most, like schema validation's. */
const MAX_PROBLEMS = 20;

// In a `u` regex a well-formed surrogate pair is one code point, so \p{Cs} matches unpaired halves only.
const UNSTORABLE = /[\0\p{Cs}]/u;

const pointerPart = (key: string): string =>
  key
    .replace(/~/g, '~0')
    .replace(/\//g, '~1')
    .replace(/[\0\p{Cs}]/gu, '\ufffd');

function textProblem(text: string): string | undefined {
  if (!UNSTORABLE.test(text)) return undefined;
  return text.includes('\0')
    ? 'must not contain the NUL character (U+0000)'
    : 'must not contain an unpaired UTF-16 surrogate (not a Unicode character)';
}

/**
 * The problems of one part of a request (parsed JSON body, query, path parameters): unstorable text
 * in values and keys, numbers out of range, nesting deeper than MAX_JSON_DEPTH. Iterative, so that
 * any depth can be inspected.
 */
export function inputProblems(value: unknown, where: NonNullable<FieldError['in']>): FieldError[] {
  const problems: FieldError[] = [];
  const stack: { value: unknown; path: string; depth: number }[] = [{ value, path: '', depth: 0 }];
  while (stack.length > 0 && problems.length < MAX_PROBLEMS) {
    const { value: v, path, depth } = stack.pop()!;
    if (typeof v === 'string') {
      const problem = textProblem(v);
      if (problem) problems.push({ path: path || '/', message: problem, in: where });
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v))
        problems.push({ path: path || '/', message: 'is a number out of range', in: where });
    } else if (v !== null && typeof v === 'object') {
      if (depth >= MAX_JSON_DEPTH) {
        problems.push({
          path: path || '/',
          message: `is nested deeper than ${MAX_JSON_DEPTH} levels`,
          in: where,
        });
        continue;
      }
      const entries = Array.isArray(v) ? v.map((item, i) => [String(i), item] as const) : Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, item] = entries[i]!;
        const at = `${path}/${pointerPart(key)}`;
        const keyProblem = Array.isArray(v) ? undefined : textProblem(key);
        if (keyProblem) problems.push({ path: at, message: `has a name that ${keyProblem}`, in: where });
        else stack.push({ value: item, path: at, depth: depth + 1 });
      }
    }
  }
  return problems.slice(0, MAX_PROBLEMS);
}

type Schema = TSchema & {
  type?: unknown;
  properties?: Record<string, Schema>;
  patternProperties?: Record<string, Schema>;
  additionalProperties?: unknown;
  items?: Schema;
  anyOf?: Schema[];
  maxItems?: number;
};

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** A schema that leaves the shape to the client: a record of anything, or anything. */
function isFreeForm(schema: Schema): boolean {
  if (schema.type === undefined && !schema.anyOf && !schema.properties) return true;
  return (
    schema.type === 'object' &&
    schema.properties === undefined &&
    (schema.patternProperties !== undefined ||
      schema.additionalProperties === true ||
      isObject(schema.additionalProperties))
  );
}

/**
 * Free-form JSON larger than FREE_FORM_MAX_BYTES, and arrays longer than their schema's maxItems,
 * found by following the body's schema (only after inputProblems found nothing: the value is then
 * shallow enough to serialise). The second is the validator's own rule, checked first here because
 * the validator's report of a long array is slow: for 20,000 equal items where `uniqueItems` holds,
 * TypeBox's error list took 10 s of CPU.
 */
export function freeFormProblems(schema: Schema | undefined, value: unknown, path = ''): FieldError[] {
  if (schema === undefined || value === undefined) return [];
  if (isFreeForm(schema)) {
    if (value === null || typeof value !== 'object') return [];
    const bytes = Buffer.byteLength(JSON.stringify(value));
    return bytes > FREE_FORM_MAX_BYTES
      ? [
          {
            path: path || '/',
            message: `must be at most ${FREE_FORM_MAX_BYTES} bytes as JSON (it is ${bytes})`,
            in: 'body',
          },
        ]
      : [];
  }
  if (Array.isArray(value) && typeof schema.maxItems === 'number' && value.length > schema.maxItems)
    return [
      {
        path: path || '/',
        message: `must have at most ${schema.maxItems} items (it has ${value.length})`,
        in: 'body',
      },
    ];
  if (schema.anyOf)
    return schema.anyOf.flatMap((branch) => freeFormProblems(branch, value, path)).slice(0, 1);
  if (isObject(value) && schema.properties) {
    return Object.entries(schema.properties).flatMap(([key, sub]) =>
      freeFormProblems(sub, value[key], `${path}/${pointerPart(key)}`),
    );
  }
  if (Array.isArray(value) && schema.items) {
    const items = schema.items;
    return value.flatMap((item, i) => freeFormProblems(items, item, `${path}/${i}`)).slice(0, MAX_PROBLEMS);
  }
  return [];
}

/**
 * Whether the query string of `url` is well-formed: every name and value percent-encoded UTF-8
 * ('+' for a space).
 */
export function queryStringReadable(url: string): boolean {
  const start = url.indexOf('?');
  if (start < 0) return true;
  for (const part of url.slice(start + 1).split('&')) {
    try {
      decodeURIComponent(part.replace(/\+/g, ' '));
    } catch {
      return false;
    }
  }
  return true;
}
