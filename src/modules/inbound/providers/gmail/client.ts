// A Gmail API client: an access token from the stored refresh token, users.history.list,
// users.messages.get?format=raw, users.messages.list and users.watch for inbound mail, and
// users.messages.send for outbound. Written against the public API; tested against
// simulators/gmail.ts. Failures are classified provider errors.
import type { Clock } from '../../../../platform/clock.ts';
import { providerRequest, throwForResponse } from '../../../../platform/provider-errors.ts';

export interface GmailCredentials {
  clientId: string;
  clientSecret: string;
  refreshToken: string;
}

export interface GmailSettings {
  apiBaseUrl: string;
  tokenUrl: string;
  timeoutMs?: number;
}

const request = (url: string, init: RequestInit, timeoutMs: number) =>
  providerRequest('gmail', url, init, timeoutMs);
// Retry-After may be an HTTP date: the delay is counted from the injected clock's now.
const fail = (res: Response, clock: Clock) => throwForResponse('gmail', res, clock.now());

export interface HistoryPage {
  messageIds: string[];
  historyId: string;
  nextPageToken: string | undefined;
}

export class GmailClient {
  private readonly settings: GmailSettings;
  private readonly credentials: GmailCredentials;
  private accessToken: { token: string; expiresAt: number } | undefined;
  /** Called with a new refresh token the moment the provider rotates it (it must be saved at once). */
  private readonly onRotatedRefreshToken:
    ((rotation: { previous: string; next: string }) => Promise<void>) | undefined;

  private readonly clock: Clock;

  constructor(
    settings: GmailSettings,
    credentials: GmailCredentials,
    clock: Clock,
    onRotatedRefreshToken?: (rotation: { previous: string; next: string }) => Promise<void>,
  ) {
    this.settings = settings;
    this.credentials = credentials;
    this.clock = clock;
    this.onRotatedRefreshToken = onRotatedRefreshToken;
  }

  private get timeout(): number {
    return this.settings.timeoutMs ?? 30_000;
  }

  async token(): Promise<string> {
    if (this.accessToken && this.accessToken.expiresAt > this.clock.now().getTime() + 60_000)
      return this.accessToken.token;
    const res = await request(
      this.settings.tokenUrl,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: this.credentials.refreshToken,
          client_id: this.credentials.clientId,
          client_secret: this.credentials.clientSecret,
        }).toString(),
      },
      this.timeout,
    );
    if (!res.ok) await fail(res, this.clock);
    const body = (await res.json()) as { access_token: string; expires_in: number; refresh_token?: string };
    if (body.refresh_token && body.refresh_token !== this.credentials.refreshToken) {
      const previous = this.credentials.refreshToken;
      this.credentials.refreshToken = body.refresh_token;
      await this.onRotatedRefreshToken?.({ previous, next: body.refresh_token });
    }
    this.accessToken = {
      token: body.access_token,
      expiresAt: this.clock.now().getTime() + body.expires_in * 1000,
    };
    return body.access_token;
  }

  private async get(path: string, query: Record<string, string | undefined> = {}): Promise<any> {
    const params = new URLSearchParams(
      Object.entries(query).filter((e): e is [string, string] => e[1] !== undefined),
    );
    const qs = params.toString();
    const res = await request(
      `${this.settings.apiBaseUrl.replace(/\/$/, '')}${path}${qs ? `?${qs}` : ''}`,
      { headers: { authorization: `Bearer ${await this.token()}` } },
      this.timeout,
    );
    if (!res.ok) await fail(res, this.clock);
    return res.json();
  }

  private async post(path: string, body: unknown): Promise<any> {
    const res = await request(
      `${this.settings.apiBaseUrl.replace(/\/$/, '')}${path}`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${await this.token()}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      },
      this.timeout,
    );
    if (!res.ok) await fail(res, this.clock);
    return res.json();
  }

  /** Messages added since `startHistoryId` (404 NotFound when that id is too old: resync). */
  async history(user: string, startHistoryId: string, pageToken?: string): Promise<HistoryPage> {
    const body = (await this.get(`/users/${encodeURIComponent(user)}/history`, {
      startHistoryId,
      historyTypes: 'messageAdded',
      pageToken,
    })) as {
      history?: { messagesAdded?: { message: { id: string } }[] }[];
      historyId: string;
      nextPageToken?: string;
    };
    const ids = (body.history ?? []).flatMap((h) => (h.messagesAdded ?? []).map((m) => m.message.id));
    return { messageIds: [...new Set(ids)], historyId: body.historyId, nextPageToken: body.nextPageToken };
  }

  /** Recent message ids (for a full resync). */
  async listMessages(
    user: string,
    query: { q?: string; pageToken?: string; maxResults?: number } = {},
  ): Promise<{ ids: string[]; nextPageToken: string | undefined }> {
    const body = (await this.get(`/users/${encodeURIComponent(user)}/messages`, {
      q: query.q,
      pageToken: query.pageToken,
      maxResults: String(query.maxResults ?? 500),
    })) as { messages?: { id: string }[]; nextPageToken?: string };
    return { ids: (body.messages ?? []).map((m) => m.id), nextPageToken: body.nextPageToken };
  }

  /** The raw RFC 822 bytes (format=raw is base64url). */
  async messageRaw(user: string, id: string): Promise<Buffer> {
    const body = (await this.get(`/users/${encodeURIComponent(user)}/messages/${encodeURIComponent(id)}`, {
      format: 'raw',
    })) as { raw: string };
    return Buffer.from(body.raw, 'base64url');
  }

  /**
   * users.messages.send with the whole message in `raw` (base64url): Gmail sends the MIME we composed
   * (its docs do not say it keeps our Message-ID; findSentByMessageId relies on it). The message is
   * added to `threadId` only when it also carries In-Reply-To or References and the same Subject;
   * otherwise Gmail starts a new thread. A timeout or 5xx leaves the outcome unknown: ask
   * findSentByMessageId before sending again.
   */
  async sendRaw(user: string, mime: Buffer, threadId?: string): Promise<{ id: string; threadId: string }> {
    const body = (await this.post(`/users/${encodeURIComponent(user)}/messages/send`, {
      raw: mime.toString('base64url'),
      ...(threadId === undefined ? {} : { threadId }),
    })) as { id: string; threadId: string };
    return { id: body.id, threadId: body.threadId };
  }

  /**
   * Whether the mailbox holds a message with this Message-ID: the rfc822msgid: search operator,
   * written as Gmail documents it (no angle brackets), trash and spam included (a sent message the
   * user since deleted was still sent).
   */
  async findSentByMessageId(user: string, messageId: string): Promise<boolean> {
    const body = (await this.get(`/users/${encodeURIComponent(user)}/messages`, {
      q: `rfc822msgid:${messageId.trim().replace(/^<(.*)>$/, '$1')}`,
      includeSpamTrash: 'true',
      maxResults: '1',
    })) as { messages?: unknown[] };
    return (body.messages ?? []).length > 0;
  }

  /** users.watch: pushes for the mailbox to the Pub/Sub topic until `expiration` (ms since the epoch, about 7 days). */
  async watch(user: string, topicName: string): Promise<{ historyId: string; expiration: Date }> {
    const body = (await this.post(`/users/${encodeURIComponent(user)}/watch`, {
      topicName,
      labelIds: ['INBOX'],
      labelFilterBehavior: 'include',
    })) as { historyId: string; expiration: string };
    return { historyId: String(body.historyId), expiration: new Date(Number(body.expiration)) };
  }

  async profileHistoryId(user: string): Promise<string> {
    const body = (await this.get(`/users/${encodeURIComponent(user)}/profile`)) as { historyId: string };
    return body.historyId;
  }
}
