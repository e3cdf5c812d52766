// The one place where errors become HTTP answers: application/problem+json (RFC 9457) with a stable
// `code`. Nothing else in the codebase decides status codes for errors.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, isDatabaseUnavailable } from '../errors.ts';

export const PROBLEM_TYPE_BASE = 'https://relaydesk.dev/problems/';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  errors?: { path: string; message: string }[];
  [key: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function problem(
  status: number,
  code: string,
  detail: string,
  extra: Record<string, unknown> = {},
): Problem {
  return { type: PROBLEM_TYPE_BASE + code, title: TITLES[status] ?? 'Error', status, detail, code, ...extra };
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  if (p.status === 401) reply.header('www-authenticate', 'Bearer realm="relaydesk"');
  return reply.code(p.status).type('application/problem+json').send(p);
}

function validationErrors(error: FastifyError): { path: string; message: string }[] {
  const list = (error.validation ?? []) as {
    instancePath?: string;
    message?: string;
    params?: Record<string, unknown>;
  }[];
  return list.slice(0, 20).map((v) => {
    const extra =
      v.params?.['requiredProperties'] ?? v.params?.['additionalProperties'] ?? v.params?.['missingProperty'];
    const path = v.instancePath || '/';
    return {
      path: `${error.validationContext ?? 'body'}${path === '/' ? '' : path}`,
      message: `${v.message ?? 'is invalid'}${extra ? ` (${String(extra)})` : ''}`,
    };
  });
}

/** Maps any thrown error to a problem. Unknown errors become a 500 without internals. */
export function toProblem(error: unknown): Problem {
  if (error instanceof AppError) return problem(error.status, error.code, error.message, error.details ?? {});
  const fe = error as FastifyError;
  if (fe?.validation) {
    const errors = validationErrors(fe);
    return problem(
      400,
      'validation_failed',
      errors.map((e) => `${e.path} ${e.message}`).join('; ') || 'invalid request',
      { errors },
    );
  }
  switch (fe?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem(413, 'payload_too_large', 'The request body is larger than this server accepts');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem(415, 'unsupported_media_type', 'Send the body as application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problem(400, 'validation_failed', 'The JSON body is empty');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problem(400, 'invalid_json', 'The body is not valid JSON');
    default:
      break;
  }
  if (fe instanceof SyntaxError || fe?.code === 'FST_ERR_CTP_INVALID_JSON') {
    return problem(400, 'invalid_json', 'The body is not valid JSON');
  }
  if (isDatabaseUnavailable(error)) {
    return problem(503, 'database_unavailable', 'The database is unavailable; retry shortly');
  }
  const status =
    typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
  if (status < 500) return problem(status, status === 404 ? 'not_found' : 'bad_request', fe.message);
  return problem(500, 'internal_error', 'Something went wrong on our side; it has been logged');
}

export function errorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const p = toProblem(error);
  if (p.status >= 500) request.log.error({ err: error }, 'request failed');
  return sendProblem(reply, p);
}
