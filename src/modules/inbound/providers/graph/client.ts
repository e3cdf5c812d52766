// A Microsoft Graph client for what inbound mail needs: an app-only token (client credentials), a
// message's raw MIME ($value), and subscriptions. Written against the public API; tested against
// simulators/graph.ts. Every failure is a classified provider error.
import { createHash } from 'node:crypto';
import type { Clock } from '../../../../platform/clock.ts';
import { providerRequest, throwForResponse } from '../../../../platform/provider-errors.ts';

export interface GraphCredentials {
  /** The Entra (Azure AD) tenant of the mailbox. */
  tenantId: string;
  clientId: string;
  clientSecret: string;
}

export interface GraphSettings {
  apiBaseUrl: string;
  tokenUrl: string;
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
const fail = (res: Response) => throwForResponse('graph', res);

export class GraphClient {
  private readonly settings: GraphSettings;
  private readonly credentials: GraphCredentials;
  private readonly clock: Clock;
  constructor(settings: GraphSettings, credentials: GraphCredentials, clock: Clock) {
    this.settings = settings;
    this.credentials = credentials;
    this.clock = clock;
  }

  private get timeout(): number {
    return this.settings.timeoutMs ?? 30_000;
  }

  async token(): Promise<string> {
    // The secret is part of the key: a token is reused only by whoever could have obtained it (a
    // mailbox with another tenant's client id but not its secret must not borrow its token).
    const key = createHash('sha256')
      .update(
        JSON.stringify([
          this.settings.tokenUrl,
          this.credentials.tenantId,
          this.credentials.clientId,
          this.credentials.clientSecret,
        ]),
      )
      .digest('base64url');
    const cached = tokens.get(key);
    if (cached && cached.expiresAt > this.clock.now().getTime() + 60_000) return cached.token;
    const res = await request(
      `${this.settings.tokenUrl.replace(/\/$/, '')}/${encodeURIComponent(this.credentials.tenantId)}/oauth2/v2.0/token`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: this.credentials.clientId,
          client_secret: this.credentials.clientSecret,
          scope: 'https://graph.microsoft.com/.default',
        }).toString(),
      },
      this.timeout,
    );
    if (!res.ok) await fail(res);
    const body = (await res.json()) as { access_token: string; expires_in: number };
    tokens.set(key, {
      token: body.access_token,
      expiresAt: this.clock.now().getTime() + body.expires_in * 1000,
    });
    return body.access_token;
  }

  private async call(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    const res = await request(
      `${this.settings.apiBaseUrl.replace(/\/$/, '')}${path}`,
      {
        method,
        headers: {
          ...headers,
          authorization: `Bearer ${await this.token()}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      },
      this.timeout,
    );
    if (!res.ok) await fail(res);
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

  async createSubscription(input: {
    resource: string;
    notificationUrl: string;
    lifecycleNotificationUrl?: string;
    clientState: string;
    expirationDateTime: string;
  }): Promise<{ id: string; expirationDateTime: string }> {
    const res = await this.call('POST', '/subscriptions', { changeType: 'created', ...input });
    return (await res.json()) as { id: string; expirationDateTime: string };
  }

  async renewSubscription(
    id: string,
    expirationDateTime: string,
  ): Promise<{ id: string; expirationDateTime: string }> {
    const res = await this.call('PATCH', `/subscriptions/${encodeURIComponent(id)}`, { expirationDateTime });
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
