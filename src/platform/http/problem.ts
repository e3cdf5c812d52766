// The one place where errors become HTTP answers: application/problem+json (RFC 9457) with a stable
// `code` from the catalogue (errors.ts). Nothing else in the codebase decides status codes for errors.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorCode, type FieldError, isDatabaseUnavailable } from '../errors.ts';

export const PROBLEM_TYPE_BASE = 'https://relaydesk.dev/problems/';

/** The HTTP status of every code in the catalogue (the compiler insists on all of them). */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  unauthorized: 401,
  forbidden: 403,
  invalid_credentials: 401,
  second_factor_required: 401,
  second_factor_enrollment_required: 403,
  tenant_required: 409,
  csrf_failed: 403,
  session_expired: 401,
  bad_request: 400,
  uri_too_long: 414,
  headers_too_large: 431,
  request_timeout: 408,
  not_found: 404,
  method_not_allowed: 405,
  validation_failed: 400,
  invalid_cursor: 400,
  invalid_token: 400,
  invalid_json: 400,
  unsupported_media_type: 415,
  payload_too_large: 413,
  conflict: 409,
  ticket_changed: 409,
  identity_taken: 409,
  merge_into_self: 400,
  invalid_calendar: 400,
  calendar_has_no_business_time: 400,
  invalid_time_zone: 400,
  invalid_instant: 400,
  deadline_out_of_range: 400,
  webhook_signature_invalid: 401,
  provider_credentials_rejected: 400,
  rate_limited: 429,
  database_unavailable: 503,
  provider_unavailable: 503,
  queue_unavailable: 503,
  migrations_pending: 503,
  console_not_built: 503,
  internal_error: 500,
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  errors?: FieldError[];
  [key: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  431: 'Request Header Fields Too Large',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function problem(code: ErrorCode, detail: string, extra: Record<string, unknown> = {}): Problem {
  const status = HTTP_STATUS[code];
  return { type: PROBLEM_TYPE_BASE + code, title: TITLES[status] ?? 'Error', status, detail, code, ...extra };
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  if (p.status === 401) reply.header('www-authenticate', 'Bearer realm="relaydesk"');
  return reply.code(p.status).type('application/problem+json').send(p);
}

interface SchemaError {
  keyword?: string;
  schemaPath?: string;
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

const PARTS: Record<string, FieldError['in']> = {
  body: 'body',
  querystring: 'query',
  params: 'path',
  headers: 'headers',
};

/**
 * The errors of a union (anyOf) reduced to what a person needs: a union of constants becomes one
 * "must be one of" list; a union of shapes keeps the errors of the shape the input came closest to
 * (fewest errors), or, when each shape only misses its own field, says which fields would do.
 */
function reduceUnions(list: SchemaError[]): SchemaError[] {
  const unions = new Map<string, Map<number, SchemaError[]>>();
  const rest: SchemaError[] = [];
  for (const e of list) {
    const m = /^(.*?)\/anyOf\/(\d+)/.exec(e.schemaPath ?? '');
    if (!m) {
      rest.push(e);
      continue;
    }
    const branches = unions.get(m[1]!) ?? new Map<number, SchemaError[]>();
    unions.set(m[1]!, branches);
    const branch = Number(m[2]);
    branches.set(branch, [...(branches.get(branch) ?? []), e]);
  }
  const out = rest.filter((e) => !(e.keyword === 'anyOf' && unions.has(e.schemaPath ?? '')));
  for (const branches of unions.values()) {
    const all = [...branches.values()];
    const path = all[0]![0]!.instancePath ?? '';
    if (all.every((b) => b.length === 1 && b[0]!.keyword === 'const')) {
      out.push({
        keyword: 'oneOfValues',
        instancePath: path,
        params: { values: all.map((b) => b[0]!.params?.['allowedValue']) },
      });
    } else if (all.every((b) => b.length === 1 && b[0]!.keyword === 'required')) {
      const names = all.flatMap((b) =>
        [b[0]!.params?.['requiredProperties'] ?? b[0]!.params?.['missingProperty']].flat(),
      );
      out.push({ keyword: 'oneOfFields', instancePath: path, params: { names } });
    } else {
      const closest = all.reduce((best, b) => (b.length < best.length ? b : best));
      out.push(
        ...reduceUnions(
          closest.map((e) => ({ ...e, schemaPath: (e.schemaPath ?? '').replace(/^.*?\/anyOf\/\d+/, '') })),
        ),
      );
    }
  }
  return out;
}

/**
 * Schema errors as a person can read them: one JSON-pointer path per field, unknown fields named,
 * the allowed values of an enum listed, a missing field reported at its own path.
 */
export function fieldErrors(list: SchemaError[], context: string | undefined): FieldError[] {
  const where = PARTS[context ?? 'body'] ?? 'body';
  const out = new Map<string, FieldError>();
  const add = (path: string, message: string) => {
    const key = `${path}\n${message}`;
    if (!out.has(key)) out.set(key, { path: path || '/', message, in: where });
  };
  for (const e of reduceUnions(list)) {
    const path = e.instancePath ?? '';
    const names = (v: unknown) => (Array.isArray(v) ? v : [v]).map(String);
    switch (e.keyword) {
      case 'boolean': // the "schema is false" echo of an additional property, reported below
        break;
      case 'additionalProperties':
        for (const name of names(e.params?.['additionalProperties']))
          add(`${path}/${name}`, `unknown field "${name}"`);
        break;
      case 'required':
        for (const name of names(e.params?.['requiredProperties'] ?? e.params?.['missingProperty']))
          add(`${path}/${name}`, 'is required');
        break;
      case 'enum':
        add(path, `must be one of: ${names(e.params?.['allowedValues']).join(', ')}`);
        break;
      case 'oneOfValues':
        add(path, `must be one of: ${names(e.params?.['values']).join(', ')}`);
        break;
      case 'oneOfFields':
        add(path, `must have one of: ${names(e.params?.['names']).join(', ')}`);
        break;
      case 'anyOf':
        add(path, 'does not match any of the accepted forms (see the API documentation)');
        break;
      default:
        add(path, e.message ?? 'is invalid');
    }
  }
  return [...out.values()].slice(0, 20);
}

/** Maps any thrown error to a problem. Unknown errors become a 500 without internals. */
export function toProblem(error: unknown): Problem {
  if (error instanceof AppError) return problem(error.code, error.message, error.details ?? {});
  const fe = error as FastifyError;
  if (fe?.validation) {
    const errors = fieldErrors(fe.validation as SchemaError[], fe.validationContext);
    return problem(
      'validation_failed',
      errors.map((e) => `${e.path} ${e.message}`).join('; ') || 'invalid request',
      { errors },
    );
  }
  switch (fe?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem('payload_too_large', 'The request body is larger than this server accepts');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem(
        'unsupported_media_type',
        "This route does not take a body of this Content-Type: the API takes application/json, a raw message's " +
          'route (POST /mailboxes/:id/messages) message/rfc822, and a message with attachments ' +
          '(POST /tickets/:id/messages) also multipart/form-data',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problem('validation_failed', 'The JSON body is empty');
    case 'FST_ERR_BAD_URL':
      return problem('bad_request', 'The URL path is not valid percent-encoded UTF-8');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return problem('uri_too_long', 'A path segment of the URL is longer than any the API takes');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problem('invalid_json', 'The body is not valid JSON');
    default:
      break;
  }
  if (fe instanceof SyntaxError || fe?.code === 'FST_ERR_CTP_INVALID_JSON') {
    return problem('invalid_json', 'The body is not valid JSON');
  }
  if (isDatabaseUnavailable(error)) {
    return problem('database_unavailable', 'The database is unavailable; retry shortly');
  }
  const status = typeof fe?.statusCode === 'number' ? fe.statusCode : 500;
  if (status === 404) return problem('not_found', 'Not found');
  if (status === 413)
    return problem('payload_too_large', fe?.message || 'The request is larger than this route accepts');
  if (status >= 400 && status < 500) return problem('bad_request', 'The request could not be read');
  return problem('internal_error', 'Something went wrong on our side; it has been logged');
}

/**
 * What the HTTP parser refuses before there is a request to route (bytes that are not HTTP, a NUL or
 * a space in a header, two Content-Lengths, a bad chunk, headers over the limit, a request that took
 * too long), written on the socket as a problem like any other; Fastify's default is plain JSON.
 */
export function clientErrorAnswer(err: { code?: unknown }): string {
  const p =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? problem('headers_too_large', 'The request line and headers are larger than this server reads')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? problem('request_timeout', 'The request did not arrive in full in time')
        : problem('bad_request', 'The request is not well-formed HTTP/1.1');
  const body = JSON.stringify(p);
  return (
    `HTTP/1.1 ${p.status} ${p.title}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `Content-Type: application/problem+json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`
  );
}

export function errorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const p = toProblem(error);
  if (p.code === 'internal_error') request.log.error({ err: error }, 'request failed');
  else if (p.status >= 500) request.log.warn({ err: error, code: p.code }, 'request not served');
  return sendProblem(reply, p);
}
