// The audit trail of the HTTP API: one event for every mutating /api/v1 request (POST, PUT, PATCH,
// DELETE) that reached a tenant, however it ended. Requests without a principal (no token, a bad one:
// 401 before any tenant is known) have no tenant to record in and are not recorded; reads are not
// recorded. The event is written after the response has gone (onResponse), so recording never delays
// or fails a request; what fails to record is logged by recordAudit.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { sha256Hex } from '../../platform/crypto.ts';
import type { App, ServerDeps } from '../../platform/http/server.ts';
import { type AuditEntry, type AuditOutcome, recordAudit } from './audit.ts';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Last path segments that name what a POST does rather than a collection it adds to: `POST
 * /people/:id/merge` is `people.merge`, while `POST /tickets/:id/messages` is
 * `tickets.messages.create`. A route whose verb is not here names itself (`config.audit`).
 */
const ACTION_VERBS = new Set([
  'connect',
  'link',
  'merge',
  'preview',
  'reconcile',
  'redrive',
  'render',
  'renew',
  'replay',
  'reprocess',
  'resolve',
  'retry',
  'rotate-secret',
  'test',
]);

const literalSegments = (path: string): string[] =>
  path
    .split('/')
    .filter((s) => s !== '' && !s.startsWith(':'))
    .map((s) => s.replace(/-/g, '_'));

/**
 * The stable name of a write, from its method and route path (without the /api/v1 prefix): the
 * path's literal segments joined by dots (hyphens as underscores), then `update` for PUT and PATCH,
 * `delete` for DELETE, and for POST `create`, unless the last segment is an action verb (ACTION_VERBS),
 * which then ends the name. `PATCH /tickets/:id` → `tickets.update`, `DELETE /people/:id/emails/:address`
 * → `people.emails.delete`, `POST /tokens` → `tokens.create`, `POST /people/:id/merge` → `people.merge`.
 */
export function actionName(method: string, path: string): string {
  const literals = literalSegments(path);
  const last =
    path
      .split('/')
      .filter((s) => s !== '')
      .at(-1) ?? '';
  const verb =
    method === 'DELETE'
      ? 'delete'
      : method === 'PUT' || method === 'PATCH'
        ? 'update'
        : ACTION_VERBS.has(last)
          ? undefined
          : 'create';
  return [...literals, ...(verb ? [verb] : [])].join('.');
}

/** success for 2xx and 3xx, unauthorised for 401 and 403, unavailable for 429 and 503, else failed. */
export function outcomeOf(status: number): AuditOutcome {
  if (status < 400) return 'success';
  if (status === 401 || status === 403) return 'unauthorised';
  if (status === 429 || status === 503) return 'unavailable';
  return 'failed';
}

/** What stands in the hashed payload for a field the route names secret (`config.auditRedact`). */
export const REDACTED = '[redacted]';

/** `value` with what `path` (its remaining segments) names replaced by REDACTED. */
function redactAt(value: unknown, path: readonly string[]): unknown {
  if (path.length === 0) return REDACTED;
  // Nothing below: null holds no secret.
  if (value === null || value === undefined) return value;
  // A scalar where the path goes on (a password sent as a string where an object of credentials
  // belongs, refused by validation but recorded all the same) may be the very secret: all of it goes.
  if (typeof value !== 'object' || Buffer.isBuffer(value)) return REDACTED;
  const [head, ...rest] = path;
  const redactChild = (key: string, child: unknown) =>
    head === '*' || key === head ? redactAt(child, rest) : child;
  if (Array.isArray(value)) return value.map((child, i) => redactChild(String(i), child));
  // fromEntries, not assignment: a key `__proto__` stays a plain field.
  return Object.fromEntries(Object.entries(value).map(([k, child]) => [k, redactChild(k, child)]));
}

/**
 * `body` with the fields `paths` name replaced by REDACTED (`config.auditRedact`). A path is a
 * field's name (`appPassword`), or names joined by dots reaching into objects
 * (`credentials.password`); `*` stands for every field (or item) at its level, so `credentials.*`
 * replaces the value of each credential given and keeps only which were given. A field named is
 * replaced whatever it holds; a scalar found where a path goes on is replaced whole; null stays.
 */
export function redactFields(body: unknown, paths: readonly string[]): unknown {
  let redacted = body;
  for (const path of paths) redacted = redactAt(redacted, path.split('.'));
  return redacted;
}

/**
 * What the event hashes of the request: its parsed JSON body, without the fields the route names
 * secret (`config.auditRedact`, see redactFields: a password, a provider's client secret or refresh
 * token, a one-time code, a sign-in link's token; an unsalted SHA-256 of a payload holding a password
 * would be a fast hash of that password); for a multipart body its fields without the files, and
 * each file's field, name and size (never its content); for any other medium (raw MIME) its type,
 * size and SHA-256.
 */
export function requestPayload(request: FastifyRequest): unknown {
  const redact = request.routeOptions.config?.auditRedact;
  const body =
    redact && request.body && typeof request.body === 'object' && !Buffer.isBuffer(request.body)
      ? redactFields(request.body, redact)
      : request.body;
  if (request.isMultipart?.()) {
    const files = request.uploadedFiles ?? [];
    const fileFields = new Set(files.map((f) => f.field));
    const fields =
      body && typeof body === 'object'
        ? Object.fromEntries(Object.entries(body).filter(([name]) => !fileFields.has(name)))
        : {};
    return { fields, files };
  }
  if (Buffer.isBuffer(body) || typeof body === 'string')
    return rawBodyPayload(String(request.headers['content-type'] ?? ''), body);
  return body;
}

/**
 * What stands for a body that is not JSON (a raw message) in the hashed payload: its media type, size
 * and SHA-256, never its bytes. `relaydesk ingest` hashes a file the same way, as `message/rfc822`.
 */
export function rawBodyPayload(
  contentType: string,
  body: Buffer | string,
): { contentType: string; bytes: number; sha256: string } {
  return { contentType, bytes: Buffer.byteLength(body), sha256: sha256Hex(body) };
}

/** What onSend learnt of a response: the problem's code, or the id of what a POST created. */
interface Answer {
  errorCode?: string;
  createdId?: string;
}

// A created thing's id is read from the answer only when it is this small; the larger answers
// (a ticket with its first message) put the id up front anyway, see createdIdOf.
const MAX_PARSED_ANSWER = 1024 * 1024;

const ID_FIRST_RE = /^\{"id":"([^"\\]{1,200})"/;

function createdIdOf(payload: string): string | undefined {
  const first = ID_FIRST_RE.exec(payload);
  if (first) return first[1];
  if (payload.length > MAX_PARSED_ANSWER) return undefined;
  try {
    const id = (JSON.parse(payload) as { id?: unknown } | null)?.id;
    return typeof id === 'string' && id.length <= 200 ? id : undefined;
  } catch {
    return undefined;
  }
}

const recordings = new Set<Promise<void>>();

/** Resolves once every event being recorded now is written (or its failure logged): tests, shutdown. */
export async function auditRecordingsSettled(): Promise<void> {
  await Promise.allSettled([...recordings]);
}

/** Adds the audit hooks to the /api/v1 scope (see RouteModule). */
export function auditRequests(app: App, deps: ServerDeps): void {
  const prefix = app.prefix;
  const answers = new WeakMap<FastifyRequest, Answer>();
  const audited = (request: FastifyRequest): boolean =>
    request.principal !== undefined &&
    MUTATING.has(request.method) &&
    request.routeOptions.url !== undefined &&
    request.routeOptions.config?.audit !== false;

  app.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    if (!audited(request) || typeof payload !== 'string') return payload;
    const type = String(reply.getHeader('content-type') ?? '');
    if (type.startsWith('application/problem+json')) {
      try {
        const code = (JSON.parse(payload) as { code?: unknown } | null)?.code;
        if (typeof code === 'string') answers.set(request, { errorCode: code });
      } catch {
        // not JSON: no code to record
      }
    } else if (
      reply.statusCode === 201 &&
      type.startsWith('application/json') &&
      (request.params as Record<string, unknown> | undefined)?.['id'] === undefined
    ) {
      const createdId = createdIdOf(payload);
      if (createdId) answers.set(request, { createdId });
    }
    return payload;
  });

  app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!audited(request)) return;
    let entry: AuditEntry;
    try {
      const principal = request.principal!;
      const route = request.routeOptions.url!;
      const path = route.startsWith(prefix) ? route.slice(prefix.length) : route;
      const named = request.routeOptions.config?.audit;
      const answer = answers.get(request);
      const id = (request.params as Record<string, unknown> | undefined)?.['id'];
      const targetId = typeof id === 'string' ? id : answer?.createdId;
      entry = {
        tenantId: principal.tenantId,
        actorId: principal.personId,
        actorVia: principal.via,
        action: typeof named === 'string' ? named : actionName(request.method, path),
        targetType: targetId === undefined ? null : (literalSegments(path)[0] ?? null),
        targetId: targetId ?? null,
        outcome: outcomeOf(reply.statusCode),
        errorCode: reply.statusCode >= 400 ? (answer?.errorCode ?? null) : null,
        requestId: request.id,
        payload: requestPayload(request),
      };
    } catch (err) {
      request.log.error({ err }, 'audit event not recorded');
      return;
    }
    // A bulk change: one event per thing it changed, each with its own outcome.
    const targets = reply.statusCode < 400 ? request.auditTargets : undefined;
    const entries = targets
      ? targets.map((t) => ({
          ...entry,
          targetType: t.targetType,
          targetId: t.targetId,
          outcome: t.ok ? ('success' as const) : ('failed' as const),
          errorCode: t.ok ? null : t.errorCode,
        }))
      : [entry];
    for (const e of entries) {
      const recording = recordAudit(deps, e).finally(() => recordings.delete(recording));
      recordings.add(recording);
    }
  });

  // A stopping server writes what it has begun before the database closes.
  app.addHook('onClose', async () => auditRecordingsSettled());
}
