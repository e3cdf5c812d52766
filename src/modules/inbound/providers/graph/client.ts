// A Microsoft Graph client for what mail needs: a token (app-only by client credentials, or
// delegated from the refresh token of a mailbox connected by OAuth), a message's raw MIME ($value),
// subscriptions, and sending MIME. Written against the public API; tested against
// simulators/graph.ts. Every failure is a classified provider error.
import { createHash } from 'node:crypto';
import type { Clock } from '../../../../platform/clock.ts';
import { providerRequest, throwForResponse } from '../../../../platform/provider-errors.ts';

/** An app registration with application permissions (client credentials). */
export interface GraphAppCredentials {
  /** The Entra (Azure AD) tenant of the mailbox. */
  tenantId: string;
  clientId: string;
  clientSecret: string;
}

/** A mailbox connected by OAuth: the user's refresh token and the app that holds it. */
export interface GraphDelegatedCredentials {
  refreshToken: string;
  clientId: string;
  /** The app's secret (a public client has none). */
  clientSecret?: string | undefined;
}

export type GraphCredentials = GraphAppCredentials | GraphDelegatedCredentials;

export const isDelegated = (c: GraphCredentials): c is GraphDelegatedCredentials =>
  typeof (c as GraphDelegatedCredentials).refreshToken === 'string';

/** What a delegated refresh asks for: everything the app was consented to, and a new refresh token. */
const DELEGATED_SCOPE = 'offline_access https://graph.microsoft.com/.default';

export interface GraphOptions {
  /** Keys the cached delegated access token (the mailbox id): one per mailbox. */
  cacheKey?: string;
  /** Called with a rotated refresh token the moment it arrives (it must be saved at once). */
  onRotatedRefreshToken?: (rotation: { previous: string; next: string }) => Promise<void>;
}

export interface GraphSettings {
  apiBaseUrl: string;
  tokenUrl: string;
  /** The delegated (authorization code, refresh token) token endpoint. */
  delegatedTokenUrl?: string;
  /** Request timeout, ms. */
  timeoutMs?: number;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const tokens = new Map<string, CachedToken>();

const request = (url: string, init: RequestInit, timeoutMs: number) =>
  providerRequest('graph', url, init, timeoutMs);
// Retry-After may be an HTTP date: the delay is counted from the injected clock's now.
const fail = (res: Response, clock: Clock) => throwForResponse('graph', res, clock.now());

export class GraphClient {
  private readonly settings: GraphSettings;
  private readonly credentials: GraphCredentials;
  private readonly clock: Clock;
  private readonly options: GraphOptions;
  constructor(
    settings: GraphSettings,
    credentials: GraphCredentials,
    clock: Clock,
    options: GraphOptions = {},
  ) {
    this.settings = settings;
    this.credentials = credentials;
    this.clock = clock;
    this.options = options;
  }

  private get timeout(): number {
    return this.settings.timeoutMs ?? 30_000;
  }

  private get delegatedTokenUrl(): string {
    return this.settings.delegatedTokenUrl ?? 'https://login.microsoftonline.com/common/oauth2/v2.0/token';
  }

  async token(): Promise<string> {
    const c = this.credentials;
    // Secrets are part of the key: a token is reused only by whoever could have obtained it (a
    // mailbox with another tenant's client id but not its secret must not borrow its token).
    const digest = (parts: unknown[]) =>
      createHash('sha256').update(JSON.stringify(parts)).digest('base64url');
    const key = isDelegated(c)
      ? `delegated|${digest([this.delegatedTokenUrl, c.clientId, c.clientSecret ?? '', this.options.cacheKey ?? c.refreshToken])}|${this.options.cacheKey ?? ''}`
      : digest([this.settings.tokenUrl, c.tenantId, c.clientId, c.clientSecret]);
    const cached = tokens.get(key);
    if (cached && cached.expiresAt > this.clock.now().getTime() + 60_000) return cached.token;
    const res = isDelegated(c)
      ? await request(
          this.delegatedTokenUrl,
          {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({
              grant_type: 'refresh_token',
              refresh_token: c.refreshToken,
              client_id: c.clientId,
              ...(c.clientSecret ? { client_secret: c.clientSecret } : {}),
              scope: DELEGATED_SCOPE,
            }).toString(),
          },
          this.timeout,
        )
      : await request(
          `${this.settings.tokenUrl.replace(/\/$/, '')}/${encodeURIComponent(c.tenantId)}/oauth2/v2.0/token`,
          {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({
              grant_type: 'client_credentials',
              client_id: c.clientId,
              client_secret: c.clientSecret,
              scope: 'https://graph.microsoft.com/.default',
            }).toString(),
          },
          this.timeout,
        );
    if (!res.ok) await fail(res, this.clock);
    const body = (await res.json()) as { access_token: string; expires_in: number; refresh_token?: string };
    // The identity platform rotates refresh tokens: the new one is saved before anything else can
    // fail (the old one may stop working at any time; losing the new one loses the mailbox).
    if (isDelegated(c) && body.refresh_token && body.refresh_token !== c.refreshToken) {
      const previous = c.refreshToken;
      c.refreshToken = body.refresh_token;
      await this.options.onRotatedRefreshToken?.({ previous, next: body.refresh_token });
    }
    tokens.set(key, {
      token: body.access_token,
      expiresAt: this.clock.now().getTime() + body.expires_in * 1000,
    });
    return body.access_token;
  }

  /** A request to the API; a body is JSON, or text (Graph takes MIME content as text/plain). */
  private async call(
    method: string,
    path: string,
    body?: { json: unknown } | { text: string },
    headers: Record<string, string> = {},
  ): Promise<Response> {
    const res = await request(
      `${this.settings.apiBaseUrl.replace(/\/$/, '')}${path}`,
      {
        method,
        headers: {
          ...headers,
          authorization: `Bearer ${await this.token()}`,
          ...(body === undefined
            ? {}
            : { 'content-type': 'json' in body ? 'application/json' : 'text/plain' }),
        },
        ...(body === undefined ? {} : { body: 'json' in body ? JSON.stringify(body.json) : body.text }),
      },
      this.timeout,
    );
    if (!res.ok) await fail(res, this.clock);
    return res;
  }

  /** The raw RFC 822 bytes of a message (GET /users/{user}/messages/{id}/$value). */
  async messageMime(user: string, messageId: string): Promise<Buffer> {
    const res = await this.call(
      'GET',
      `/users/${encodeURIComponent(user)}/messages/${encodeURIComponent(messageId)}/$value`,
    );
    return Buffer.from(await res.arrayBuffer());
  }

  /**
   * Sends a complete RFC 5322 message as it is, by sendMail with MIME content (the base64 of the
   * message as text/plain), which answers 202 Accepted with no body; returns Graph's request-id.
   *
   * Why sendMail and not a draft created from MIME and then sent: Graph documents that sendMail stores
   * the MIME content as given and that transport copies it on "more or less intact", so the
   * Message-ID, In-Reply-To and References we wrote go out. A draft made from MIME is documented only
   * as parsed into message properties, and nothing documented says sending it keeps our headers. No
   * page promises the Message-ID outright (some other headers are reported dropped), and
   * findSentByMessageId relies on it.
   *
   * 202 only means accepted: Exchange delivers afterwards (a failure then is a bounce, not an error
   * here). A timeout or 5xx leaves the outcome unknown: ask findSentByMessageId before sending again.
   */
  async sendMime(user: string, mime: Buffer): Promise<{ requestId: string | null }> {
    const res = await this.call('POST', `/users/${encodeURIComponent(user)}/sendMail`, {
      text: mime.toString('base64'),
    });
    return { requestId: res.headers.get('request-id') };
  }

  /**
   * Whether the mailbox holds a message with this Message-ID (with its angle brackets, as Graph's
   * internetMessageId has them). The whole mailbox is searched: a sendMail message sits in Drafts
   * until transport takes it, then in Sent Items.
   */
  async findSentByMessageId(user: string, internetMessageId: string): Promise<boolean> {
    const id = internetMessageId.trim().replace(/^<?(.*?)>?$/, '<$1>');
    // An OData string literal: a quote inside is written twice.
    const filter = `internetMessageId eq '${id.replace(/'/g, "''")}'`;
    const res = await this.call(
      'GET',
      `/users/${encodeURIComponent(user)}/messages?$filter=${encodeURIComponent(filter)}&$select=id&$top=1`,
    );
    const body = (await res.json()) as { value?: unknown[] };
    return (body.value ?? []).length > 0;
  }

  async createSubscription(input: {
    resource: string;
    notificationUrl: string;
    lifecycleNotificationUrl?: string;
    clientState: string;
    expirationDateTime: string;
  }): Promise<{ id: string; expirationDateTime: string }> {
    const res = await this.call('POST', '/subscriptions', { json: { changeType: 'created', ...input } });
    return (await res.json()) as { id: string; expirationDateTime: string };
  }

  async renewSubscription(
    id: string,
    expirationDateTime: string,
  ): Promise<{ id: string; expirationDateTime: string }> {
    const res = await this.call('PATCH', `/subscriptions/${encodeURIComponent(id)}`, {
      json: { expirationDateTime },
    });
    return (await res.json()) as { id: string; expirationDateTime: string };
  }

  async deleteSubscription(id: string): Promise<void> {
    await this.call('DELETE', `/subscriptions/${encodeURIComponent(id)}`);
  }

  /** After a reauthorizationRequired lifecycle notification: the subscription goes on (204). */
  async reauthorizeSubscription(id: string): Promise<void> {
    await this.call('POST', `/subscriptions/${encodeURIComponent(id)}/reauthorize`);
  }

  /**
   * One page of a delta query on a mail folder: from the start (`since` filters on receivedDateTime)
   * or from a stored deltaLink / nextLink. The message ids of the page, and either the next page's
   * link or, on the last page, the deltaLink to keep for next time. A deltaLink Graph no longer
   * knows is a NotFound-class error (410 SyncStateNotFound): start again from `since`.
   */
  async deltaPage(
    from: { user: string; folder: string; since: Date } | { link: string },
  ): Promise<{ ids: string[]; nextLink?: string; deltaLink?: string }> {
    let path: string;
    if ('link' in from) {
      const base = this.settings.apiBaseUrl.replace(/\/$/, '');
      // Links come back from Graph itself; they must stay on the API they came from.
      if (!from.link.startsWith(`${base}/`)) throw new Error('a delta link outside the Graph API base URL');
      path = from.link.slice(base.length);
    } else {
      const filter = `receivedDateTime ge ${from.since.toISOString().replace(/\.\d{3}Z$/, 'Z')}`;
      path =
        `/users/${encodeURIComponent(from.user)}/mailFolders/${encodeURIComponent(from.folder)}/messages/delta` +
        `?$select=id,receivedDateTime&$filter=${encodeURIComponent(filter)}`;
    }
    const res = await this.call('GET', path, undefined, { prefer: 'odata.maxpagesize=100' });
    const body = (await res.json()) as {
      value?: { id?: string; '@removed'?: unknown }[];
      '@odata.nextLink'?: string;
      '@odata.deltaLink'?: string;
    };
    return {
      ids: (body.value ?? []).filter((m) => m.id && !m['@removed']).map((m) => m.id!),
      ...(body['@odata.nextLink'] ? { nextLink: body['@odata.nextLink'] } : {}),
      ...(body['@odata.deltaLink'] ? { deltaLink: body['@odata.deltaLink'] } : {}),
    };
  }
}

/** Forgets cached tokens (tests). */
export const clearGraphTokens = (): void => tokens.clear();

/** Forgets the delegated access tokens cached under `cacheKey` (a mailbox connected again). */
export function forgetGraphTokens(cacheKey: string): void {
  for (const key of tokens.keys())
    if (key.startsWith('delegated|') && key.endsWith(`|${cacheKey}`)) tokens.delete(key);
}
