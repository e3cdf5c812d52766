// The Bot Framework connector, as the REST API documents it: an app token by client credentials
// (kept until shortly before it expires), then POST {serviceUrl}/v3/conversations/{id}/activities
// (or .../activities/{activityId} to reply). Every failure is classified once, here, into the
// delivery ledger's taxonomy, from the status and the documented error codes of Teams.
import { createHash } from 'node:crypto';
import type { Clock } from '../../platform/clock.ts';
import { DeliveryError } from '../outbound/transports.ts';
import type { TeamsCredentials } from './integrations.ts';

export const BOT_FRAMEWORK_SCOPE = 'https://api.botframework.com/.default';
/** A token is renewed this long before it expires (a send must not start with one about to lapse). */
const TOKEN_MARGIN_MS = 5 * 60_000;
const TIMEOUT_MS = 30_000;

/** 403 codes that mean this conversation will not take the bot's messages (until it is used again). */
const RECIPIENT_REFUSALS = new Set([
  'BotNotInConversationRoster',
  'ConversationBlockedByUser',
  'BotDisabledByAdmin',
]);

/** Retry-After in seconds (delta-seconds or an HTTP date), or undefined. */
export function retryAfterSeconds(value: string | null, now: Date): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now.getTime()) / 1000));
}

/** A connector answer that is not a success, in the taxonomy. */
export function classifyConnectorError(
  status: number,
  body: unknown,
  options: { retryAfter?: number | undefined; requestId?: string | null } = {},
): DeliveryError {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof error?.code === 'string' ? error.code : '';
  const detail = typeof error?.message === 'string' ? error.message : '';
  const message = `Teams connector ${status}${code ? ` ${code}` : ''}${detail ? `: ${detail}` : ''}`.slice(
    0,
    1024,
  );
  const meta = { requestId: options.requestId ?? null };
  if (status === 401) return new DeliveryError('auth', message, meta);
  if (status === 403)
    return new DeliveryError(RECIPIENT_REFUSALS.has(code) ? 'invalid_recipient' : 'permanent', message, meta);
  if (status === 404) return new DeliveryError('not_found', message, meta);
  if (status === 429)
    return new DeliveryError('throttled', message, {
      ...meta,
      ...(options.retryAfter === undefined ? {} : { retryAfterSeconds: options.retryAfter }),
    });
  // 412: the service was busy with a conflicting change; 5xx: it may have taken the message first.
  if (status === 412) return new DeliveryError('transient', message, meta);
  if (status >= 500) return new DeliveryError('transient', message, { ...meta, ambiguous: true });
  return new DeliveryError('permanent', message, meta);
}

export interface SentActivity {
  id: string | null;
  status: number;
  requestId: string | null;
}

export class BotConnector {
  private readonly tokens = new Map<string, { token: string; until: number }>();
  private readonly clock: Clock;
  private readonly fetch: typeof fetch;

  constructor(options: { clock: Clock; fetch?: typeof fetch }) {
    this.clock = options.clock;
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  private tokenKey(c: TeamsCredentials): string {
    return createHash('sha256')
      .update(JSON.stringify([c.appId, c.appPassword, c.tokenUrl]))
      .digest('hex');
  }

  /** The app token for the bot, from the cache while it has more than TOKEN_MARGIN_MS to live. */
  async token(c: TeamsCredentials, signal?: AbortSignal): Promise<string> {
    const key = this.tokenKey(c);
    const cached = this.tokens.get(key);
    const now = this.clock.now().getTime();
    if (cached && cached.until > now) return cached.token;
    let res: Response;
    try {
      res = await this.fetch(c.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: c.appId,
          client_secret: c.appPassword,
          scope: BOT_FRAMEWORK_SCOPE,
        }),
        signal: signal
          ? AbortSignal.any([signal, AbortSignal.timeout(TIMEOUT_MS)])
          : AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      throw new DeliveryError('transient', `the bot token could not be fetched: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok || typeof body['access_token'] !== 'string') {
      const what = `the bot token request answered ${res.status} ${String(body['error'] ?? '')}`.trim();
      if (res.status === 429) {
        const wait = retryAfterSeconds(res.headers.get('retry-after'), this.clock.now());
        throw new DeliveryError('throttled', what, wait === undefined ? {} : { retryAfterSeconds: wait });
      }
      if (res.status >= 500) throw new DeliveryError('transient', what);
      throw new DeliveryError('auth', `${what}: ${String(body['error_description'] ?? '')}`.slice(0, 1024));
    }
    const expiresIn =
      typeof body['expires_in'] === 'number' ? body['expires_in'] : Number(body['expires_in'] ?? 0);
    const until = now + Math.max(0, expiresIn * 1000 - TOKEN_MARGIN_MS);
    if (this.tokens.size > 10_000) this.tokens.clear();
    this.tokens.set(key, { token: body['access_token'], until });
    return body['access_token'];
  }

  /** Forgets the bot's token (the connector refused it). */
  forgetToken(c: TeamsCredentials): void {
    this.tokens.delete(this.tokenKey(c));
  }

  /** Posts an activity to a conversation (a reply to `replyToId` when given). Throws a DeliveryError. */
  async sendActivity(input: {
    credentials: TeamsCredentials;
    serviceUrl: string;
    conversationId: string;
    replyToId?: string | undefined;
    activity: Record<string, unknown>;
    signal?: AbortSignal | undefined;
  }): Promise<SentActivity> {
    const token = await this.token(input.credentials, input.signal);
    const url =
      `${input.serviceUrl.replace(/\/+$/, '')}/v3/conversations/${encodeURIComponent(input.conversationId)}` +
      `/activities${input.replyToId ? `/${encodeURIComponent(input.replyToId)}` : ''}`;
    let res: Response;
    try {
      res = await this.fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(input.activity),
        signal: input.signal
          ? AbortSignal.any([input.signal, AbortSignal.timeout(TIMEOUT_MS)])
          : AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      // The request may have reached Teams before the connection failed.
      throw new DeliveryError(
        'transient',
        `the Teams connector could not be reached: ${(err as Error).message}`,
        {
          cause: err,
          ambiguous: true,
        },
      );
    }
    const requestId = res.headers.get('x-ms-request-id') ?? res.headers.get('ms-cv');
    const body = (await res.json().catch(() => null)) as Record<string, unknown> | null;
    if (!res.ok) {
      if (res.status === 401) this.forgetToken(input.credentials);
      throw classifyConnectorError(res.status, body, {
        retryAfter: retryAfterSeconds(res.headers.get('retry-after'), this.clock.now()),
        requestId,
      });
    }
    return { id: typeof body?.['id'] === 'string' ? body['id'] : null, status: res.status, requestId };
  }
}
