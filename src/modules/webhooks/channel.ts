// The `webhook` notification channel: endpoints take the events they subscribed to, signed per
// Standard Webhooks. The notify module writes the ledger rows and calls `send` for one attempt; this
// adapter finds the endpoint, checks its address again, signs, posts, and classifies the answer.
//
// The request body is JSON:
//   {"type": "<event type>", "timestamp": "<when the event happened, ISO 8601>",
//    "data": {"ticket": <the ticket or null>, ...<the event's own data>, "title": "...", "text": "..."}}
// with headers webhook-id (the notification's id: the same on every retry and replay, so a receiver
// drops what it has seen), webhook-timestamp (the send time, Unix seconds) and webhook-signature.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withSystemRead, withTenant, withTenantRead } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import type { ChannelAdapter, ChannelOutcome, ChannelSend, ChannelSent } from '../notify/channel.ts';
import { DeliveryError } from '../outbound/transports.ts';
import { parseWebhookUrl, type Resolve, UrlRefused, vetUrl } from './address.ts';
import {
  endpointExists,
  endpointForSend,
  type EndpointForSend,
  endpointsForSendAcrossTenants,
  disableEndpoint,
  noteFailure,
  noteSuccess,
  subscribedAmong,
  subscribedEndpoints,
} from './endpoints.ts';
import { postTo, type PostResult } from './post.ts';
import { parseRetryAfter, retryDelaySeconds } from './schedule.ts';
import { signedHeaders } from './signing.ts';

/** How long one request may take, answer included. */
export const SEND_TIMEOUT_MS = 15_000;

export interface WebhookChannelDeps {
  pool: Pool;
  secretKey: Buffer;
  clock: Clock;
  logger: Logger;
  /** RELAYDESK_ALLOW_PRIVATE_WEBHOOKS: loopback and private addresses may be sent to. */
  allowPrivate: boolean;
  /** Tests: the name resolver, the timeout, the jitter's randomness. */
  resolve?: Resolve | undefined;
  timeoutMs?: number | undefined;
  random?: (() => number) | undefined;
}

/** The JSON body of a webhook request. */
export function webhookBody(content: ChannelSend['content']): string {
  return JSON.stringify({
    type: content.type,
    timestamp: content.occurredAt,
    data: { ticket: content.ticket, ...content.data, title: content.title, text: content.text },
  });
}

const short = (text: string, max = 300) => text.replace(/\s+/g, ' ').trim().slice(0, max);

/** An HTTP answer that is not 2xx, in the taxonomy. */
export function classifyAnswer(res: PostResult, now: Date): DeliveryError {
  const status = res.status;
  const detail = `HTTP ${status}${res.body ? `: ${short(res.body)}` : ''}`;
  const requestId = headerValue(res.headers['x-request-id']);
  const retryAfter = parseRetryAfter(res.headers['retry-after'], now);
  const options = { requestId, ...(retryAfter === undefined ? {} : { retryAfterSeconds: retryAfter }) };
  if (status === 410) return new DeliveryError('not_found', `${detail} (the endpoint is gone)`, options);
  if (status === 429 || (status === 503 && retryAfter !== undefined))
    return new DeliveryError('throttled', detail, options);
  if (status === 408 || status >= 500)
    return new DeliveryError('transient', detail, { ...options, ambiguous: true });
  if (status >= 300 && status < 400)
    return new DeliveryError('permanent', `${detail} (redirects are not followed)`, options);
  return new DeliveryError('permanent', detail, options);
}

const headerValue = (v: string | string[] | undefined): string | null =>
  (Array.isArray(v) ? v[0] : v)?.slice(0, 200) ?? null;

export function webhookChannel(deps: WebhookChannelDeps): ChannelAdapter {
  const { pool, clock, logger } = deps;
  const timeoutMs = deps.timeoutMs ?? SEND_TIMEOUT_MS;
  // Endpoints (tenant/id) that were failing when a send read them. A success ends the streak with a
  // write only for these: most endpoints are not failing, and that transaction was one of the
  // six or so each delivery commits. A streak noted by another process after the send's read is
  // ended by the next success instead.
  const failingAtRead = new Set<string>();

  /** Keeps the endpoint's failing streak; a failure to do so is logged, never hides the send's own. */
  async function failed(tenantId: string, endpointId: string): Promise<void> {
    try {
      const disabled = await withTenant(pool, tenantId, (tx) => noteFailure(tx, { clock }, endpointId));
      if (disabled)
        logger.warn({ tenantId, endpointId }, 'webhook endpoint disabled after five days of failures');
    } catch (err) {
      logger.error({ err, tenantId, endpointId }, 'recording a webhook failure failed');
    }
  }

  async function attempt(input: ChannelSend): Promise<ChannelSent> {
    const endpoint = await withTenantRead(pool, input.tenantId, (tx) =>
      endpointForSend(tx, { secretKey: deps.secretKey, clock }, input.destination),
    );
    return attemptWith(input, endpoint);
  }

  /** A batch's attempts: their endpoints read in one statement, then each sent as `attempt` does. */
  async function attemptMany(inputs: ChannelSend[]): Promise<ChannelOutcome[]> {
    const endpoints = await withSystemRead(pool, (sys) =>
      endpointsForSendAcrossTenants(
        sys,
        { secretKey: deps.secretKey, clock },
        inputs.map((i) => ({ tenantId: i.tenantId, endpointId: i.destination })),
      ),
    );
    return Promise.all(
      inputs.map((input) =>
        attemptWith(input, endpoints.get(`${input.tenantId}/${input.destination}`)).then(
          (sent): ChannelOutcome => ({ ok: true, sent }),
          (error: unknown): ChannelOutcome => ({ ok: false, error }),
        ),
      ),
    );
  }

  async function attemptWith(
    input: ChannelSend,
    endpoint: EndpointForSend | undefined,
  ): Promise<ChannelSent> {
    if (!endpoint) throw new DeliveryError('not_found', 'the webhook endpoint no longer exists');
    if (endpoint.failing) failingAtRead.add(`${input.tenantId}/${input.destination}`);
    if (!endpoint.enabled) throw new DeliveryError('permanent', 'the webhook endpoint is disabled');
    let url: URL;
    let address;
    try {
      url = parseWebhookUrl(endpoint.url);
      address = await vetUrl(url, { allowPrivate: deps.allowPrivate, resolve: deps.resolve });
    } catch (err) {
      await failed(input.tenantId, endpoint.id);
      if (err instanceof UrlRefused)
        throw new DeliveryError('permanent', `refused: ${err.message}`, { cause: err });
      throw new DeliveryError('transient', `resolving the endpoint's host: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const body = webhookBody(input.content);
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'Relaydesk-Webhooks/1',
      ...signedHeaders({
        id: input.notificationId,
        timestamp: Math.floor(clock.now().getTime() / 1000),
        body,
        secrets: endpoint.secrets,
      }),
    };
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = input.signal ? AbortSignal.any([input.signal, timeout]) : timeout;
    let res: PostResult;
    try {
      res = await postTo({ url, address, headers, body, signal });
    } catch (err) {
      await failed(input.tenantId, endpoint.id);
      const what = timeout.aborted
        ? `no answer within ${timeoutMs / 1000} s`
        : `connection failed: ${(err as Error).message}`;
      throw new DeliveryError('transient', what, { cause: err, ambiguous: true });
    }
    if (res.status >= 200 && res.status < 300)
      return {
        providerMessageId: null,
        providerResponse: `HTTP ${res.status}${res.body ? `: ${short(res.body)}` : ''}`,
        requestId: headerValue(res.headers['x-request-id']),
      };
    await failed(input.tenantId, endpoint.id);
    throw classifyAnswer(res, clock.now());
  }

  return {
    channel: 'webhook',
    // Webhooks go to endpoints, never to a person.
    personDestination: async () => undefined,
    subscribers: (tx, type) => subscribedEndpoints(tx, type),
    subscribedAmong: (sys, tenantIds, types) => subscribedAmong(sys, tenantIds, types),
    destinationExists: (tx, destination) => endpointExists(tx, destination),
    send: attempt,
    sendMany: attemptMany,
    retryDelaySeconds: (n, retryAfter) => retryDelaySeconds(n, retryAfter, deps.random),
    // Every attempt of a notification carries the same webhook-id: a receiver de-duplicates.
    resendIsSafe: true,
    async onTerminalFailure(tenantId, destination, error) {
      // 410 Gone: the receiver says it will never take another; the rest is counted by `send`.
      if (error.code !== 'not_found') return;
      const disabled = await withTenant(pool, tenantId, (tx) =>
        disableEndpoint(tx, { clock }, destination, 'gone'),
      );
      if (disabled) logger.warn({ tenantId, endpointId: destination }, 'webhook endpoint disabled: 410 Gone');
    },
    async onSuccess(tenantId, destination) {
      if (!failingAtRead.delete(`${tenantId}/${destination}`)) return;
      await withTenant(pool, tenantId, (tx) => noteSuccess(tx, destination));
    },
  };
}
