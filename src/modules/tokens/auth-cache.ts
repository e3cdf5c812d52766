// A per-process cache of token lookups, so that most requests skip the authentication query.
// It is only used while this process LISTENs to the relaydesk_auth channel: triggers on api_tokens,
// people and tenants notify every process when a token is revoked or a person suspended, and the
// cache is dropped at once. While the listener is down the cache is off (every request asks the
// database), so revocation is never delayed by caching.
import pg from 'pg';
import type { Logger } from '../../platform/logging.ts';

export interface CachedAuth {
  tenantId: string;
  tokenId: string;
  personId: string;
  role: string;
  preview: string;
  lastUsedAt: number;
}

const TTL_MS = 60_000;
const MAX_ENTRIES = 100_000;

export class AuthCache {
  private readonly entries = new Map<string, { value: CachedAuth; expires: number }>();
  private listening = false;
  private client: pg.Client | undefined;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;

  get enabled(): boolean {
    return this.listening;
  }

  get(key: string, now: number): CachedAuth | undefined {
    if (!this.listening) return undefined;
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    if (hit.expires < now) {
      this.entries.delete(key);
      return undefined;
    }
    return hit.value;
  }

  set(key: string, value: CachedAuth, now: number): void {
    if (!this.listening) return;
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    this.entries.set(key, { value, expires: now + TTL_MS });
  }

  clear(): void {
    this.entries.clear();
  }

  /** Starts listening (and keeps reconnecting with back-off until stopped). */
  async start(connectionString: string, logger: Logger): Promise<void> {
    let delay = 500;
    const connect = async (): Promise<void> => {
      if (this.stopped) return;
      const client = new pg.Client({ connectionString, application_name: 'relaydesk-auth-listener' });
      const fail = (err?: Error) => {
        if (this.client !== client) return;
        this.listening = false;
        this.client = undefined;
        this.clear();
        client.end().catch(() => undefined);
        if (err) logger.warn({ err }, 'auth cache listener lost; caching off until it is back');
        if (!this.stopped) {
          this.retryTimer = setTimeout(() => void connect(), delay);
          this.retryTimer.unref();
          delay = Math.min(delay * 2, 10_000);
        }
      };
      this.client = client;
      client.on('error', fail);
      client.on('end', () => fail());
      client.on('notification', () => this.clear());
      try {
        await client.connect();
        await client.query('LISTEN relaydesk_auth');
        this.clear(); // anything may have changed while we were not listening
        this.listening = true;
        delay = 500;
      } catch (err) {
        fail(err as Error);
      }
    };
    await connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.listening = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    this.clear();
    await client?.end().catch(() => undefined);
  }
}
