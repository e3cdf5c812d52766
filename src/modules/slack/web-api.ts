// Calls to Slack's Web API and the one place its answers are classified into the delivery
// taxonomy. Slack answers API errors with HTTP 200 and `{ok: false, error}`; only rate limits use a
// status (429 with Retry-After).
//
// | Slack's answer                                                    | class             | why
// |-------------------------------------------------------------------|-------------------|------------------------------------------------------------
// | HTTP 429; `ratelimited`, `rate_limited`                           | throttled         | wait Retry-After (30 s when absent), then the same post passes
// | `invalid_auth`, `not_authed`, `token_revoked`, `token_expired`,   | auth              | the token (or the app's scopes) must be fixed by a person;
// |   `account_inactive`, `missing_scope`, `not_allowed_token_type`,  |                   |   every post of the tenant fails alike until then
// |   `no_permission`, `team_access_not_granted`, `ekm_access_denied` |                   |
// | `channel_not_found`, `user_not_found`                             | not_found         | no such channel or person, or the bot cannot see it
// | `not_in_channel`, `is_archived`, `cannot_dm_bot`,                 | invalid_recipient | the destination exists but refuses the bot's posts until
// |   `restricted_action*`, `user_disabled`                           |                   |   someone invites it, unarchives or changes a setting
// | `msg_too_long`, `no_text`, `invalid_blocks`, `invalid_arguments`, | permanent         | the same request would fail again
// |   any error not listed here, other 4xx, a 404 (wrong base URL)    |                   |
// | HTTP 5xx or 408, no answer (timeout, reset), a body that is not   | transient         | retry with back-off; after a send began the post may have
// |   JSON; `fatal`, `internal_error`, `service_unavailable`,         |                   |   been made (ambiguous), except `service_unavailable` and
// |   `request_timeout`                                               |                   |   `request_timeout`, which Slack answers before doing anything
import { retryAfterSeconds } from '../../platform/provider-errors.ts';
import type { DeliveryErrorCode } from '../outbound/model.ts';
import { DeliveryError } from '../outbound/transports.ts';

const AUTH_ERRORS = new Set([
  'invalid_auth',
  'not_authed',
  'token_revoked',
  'token_expired',
  'account_inactive',
  'missing_scope',
  'not_allowed_token_type',
  'no_permission',
  'team_access_not_granted',
  'ekm_access_denied',
]);
const NOT_FOUND_ERRORS = new Set(['channel_not_found', 'user_not_found']);
const RECIPIENT_ERRORS = new Set(['not_in_channel', 'is_archived', 'cannot_dm_bot', 'user_disabled']);
const THROTTLED_ERRORS = new Set(['ratelimited', 'rate_limited']);
/** Slack's own transient failures; the first two may have done part of the work. */
const TRANSIENT_ERRORS = new Set(['fatal', 'internal_error', 'service_unavailable', 'request_timeout']);
const NOT_STARTED_ERRORS = new Set(['service_unavailable', 'request_timeout']);

/** Slack answered `{ok: false, error}`: the taxonomy's class, with Slack's own error code. */
export class SlackApiError extends DeliveryError {
  readonly slackError: string;
  constructor(
    code: DeliveryErrorCode,
    slackError: string,
    message: string,
    options: { requestId?: string | null; ambiguous?: boolean; retryAfterSeconds?: number },
  ) {
    super(code, message, options);
    this.slackError = slackError;
  }
}

/** The class of an `{ok: false, error}` answer. */
export function slackErrorClass(error: string): DeliveryErrorCode {
  if (THROTTLED_ERRORS.has(error)) return 'throttled';
  if (AUTH_ERRORS.has(error)) return 'auth';
  if (NOT_FOUND_ERRORS.has(error)) return 'not_found';
  if (RECIPIENT_ERRORS.has(error) || error.startsWith('restricted_action')) return 'invalid_recipient';
  if (TRANSIENT_ERRORS.has(error)) return 'transient';
  return 'permanent';
}

export interface SlackRequest {
  apiBaseUrl: string;
  botToken: string;
  /** The Web API method, e.g. "chat.postMessage". */
  method: string;
  /** Arguments; sent as JSON when `json`, else form-encoded (read methods do not all take JSON). */
  args: Record<string, unknown>;
  json?: boolean;
  /** Whether the call changes something at Slack: a failure after sending may then have done it. */
  writes?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
  /** For an HTTP-date Retry-After. */
  now: Date;
}

export interface SlackAnswer {
  body: Record<string, unknown>;
  /** Slack's x-slack-req-id. */
  requestId: string | null;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** Calls one Web API method; answers its `ok: true` body or throws a classified DeliveryError. */
export async function callSlack(req: SlackRequest): Promise<SlackAnswer> {
  const url = `${req.apiBaseUrl.replace(/\/+$/, '')}/${req.method}`;
  const timeout = AbortSignal.timeout(req.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
  const ambiguous = req.writes ?? false;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${req.botToken}`,
        'content-type': req.json
          ? 'application/json; charset=utf-8'
          : 'application/x-www-form-urlencoded; charset=utf-8',
      },
      body: req.json
        ? JSON.stringify(req.args)
        : new URLSearchParams(
            Object.entries(req.args).map(([k, v]): [string, string] => [
              k,
              typeof v === 'string' ? v : JSON.stringify(v),
            ]),
          ).toString(),
      signal,
      redirect: 'error',
    });
  } catch (err) {
    throw new DeliveryError('transient', `Slack ${req.method}: no answer (${(err as Error).message})`, {
      cause: err,
      ambiguous,
    });
  }
  const requestId = res.headers.get('x-slack-req-id');
  let body: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = await res.json();
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      body = parsed as Record<string, unknown>;
  } catch {
    // not JSON (a gateway's error page), or the answer broke off
  }
  const error = typeof body?.['error'] === 'string' ? body['error'] : undefined;
  const what = `Slack ${req.method}: HTTP ${res.status}${error ? ` ${error}` : ''}`;

  if (res.status === 429 || (error !== undefined && THROTTLED_ERRORS.has(error)))
    throw new SlackApiError('throttled', error ?? 'ratelimited', what, {
      retryAfterSeconds: retryAfterSeconds(res.headers.get('retry-after'), req.now.getTime()),
      requestId,
    });
  if (res.status >= 500 || res.status === 408)
    throw new DeliveryError('transient', what, { requestId, ambiguous });
  if (res.status === 401 || res.status === 403) throw new DeliveryError('auth', what, { requestId });
  if (res.status !== 200 || body === undefined) {
    // A 200 without a JSON body is a proxy's or a cut-off answer: try again; other statuses are a
    // wrong base URL or a request Slack will never take.
    if (res.status === 200)
      throw new DeliveryError('transient', `${what} (not JSON)`, { requestId, ambiguous });
    throw new DeliveryError('permanent', what, { requestId });
  }
  if (body['ok'] === true) return { body, requestId };
  const code = slackErrorClass(error ?? 'unknown_error');
  throw new SlackApiError(code, error ?? 'unknown_error', what, {
    requestId,
    ambiguous: code === 'transient' && ambiguous && !NOT_STARTED_ERRORS.has(error ?? ''),
  });
}

/** Who a token belongs to (auth.test). */
export async function slackAuthTest(input: {
  apiBaseUrl: string;
  botToken: string;
  now: Date;
  timeoutMs?: number;
}): Promise<{ teamId: string | null; teamName: string | null; botUserId: string | null }> {
  const { body } = await callSlack({ ...input, method: 'auth.test', args: {} });
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v.slice(0, 200) : null);
  return { teamId: text(body['team_id']), teamName: text(body['team']), botUserId: text(body['user_id']) };
}
