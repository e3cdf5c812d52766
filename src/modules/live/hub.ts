// The change feed behind GET /stream: one LISTEN connection per process (a pg.Client of its own, not
// one of the pool's) on the channel the statement triggers of migration 0029 announce on, fanned out
// in process to the streams of the tenant each change belongs to, and to no other. The connection
// is opened when the first stream starts and kept until the server closes; when it is lost it comes
// back with back-off, and every stream is told to reload, since changes may have gone unheard.
import pg from 'pg';
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withTenantRead } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logging.ts';
import { ticketNumber } from '../tickets/model.ts';
import { ticketPresence } from '../tickets/presence.ts';

export const STREAM_CHANNEL = 'relaydesk_stream';

export type StreamEvent =
  | {
      event: 'ticket';
      /** ticketId and number null with change `reload`: many changed (or some went unheard); reload. */
      data: { ticketId: string | null; number: string | null; change: string };
    }
  | {
      event: 'presence';
      data: { ticketId: string; people: { id: string; displayName: string; state: string }[] };
    }
  | { event: 'mailbox'; data: { mailboxId: string; status: string; previousStatus: string | null } };

export type StreamListener = (event: StreamEvent) => void;

/** What a trigger announces (see stream_announce in migration 0029). */
interface Announcement {
  k: 'ticket' | 'presence' | 'mailbox';
  r?: [string, string, string | number | null, string | null][];
  t?: string[];
}

const RELOAD: StreamEvent = { event: 'ticket', data: { ticketId: null, number: null, change: 'reload' } };

export class StreamHub {
  private readonly listeners = new Map<string, Set<StreamListener>>();
  private client: pg.Client | undefined;
  private listening = false;
  private stopped = false;
  private starting: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private delay = 500;
  /** The feed was lost while streams listened: they reload when it is back. */
  private pendingReload = false;
  private readonly logger: Logger;

  private readonly deps: { connectionString: string; pool: Pool; clock: Clock; logger: Logger };

  constructor(deps: { connectionString: string; pool: Pool; clock: Clock; logger: Logger }) {
    this.deps = deps;
    this.logger = deps.logger.child({ component: 'stream' });
  }

  /** How many streams are open (all tenants). */
  get size(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  /**
   * Resolves once the feed is listening (opening the connection at the first call); throws
   * database_unavailable when it cannot be opened now.
   */
  async ready(): Promise<void> {
    if (this.stopped) throw new AppError('database_unavailable', 'The server is stopping');
    if (this.listening) return;
    // A reconnection is already waiting for its back-off: no second connection meanwhile.
    if (this.retry !== undefined)
      throw new AppError('database_unavailable', 'The change feed is reconnecting');
    this.starting ??= this.connect().finally(() => {
      this.starting = undefined;
    });
    await this.starting;
    if (!this.listening) throw new AppError('database_unavailable', 'The change feed cannot be opened now');
  }

  /** Adds a stream of the tenant; answers the function that removes it. */
  subscribe(tenantId: string, listener: StreamListener): () => void {
    let set = this.listeners.get(tenantId);
    if (!set) this.listeners.set(tenantId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(tenantId) === set) this.listeners.delete(tenantId);
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.listening = false;
    if (this.retry) clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({
      connectionString: this.deps.connectionString,
      application_name: 'relaydesk-stream',
    });
    const lost = (err?: Error) => {
      if (this.client !== client) return;
      this.client = undefined;
      const was = this.listening;
      this.listening = false;
      client.end().catch(() => undefined);
      if (err) this.logger.warn({ err }, 'change feed lost; reconnecting');
      if (this.stopped) return;
      // Whatever changed meanwhile went unheard: every stream reloads once the feed is back.
      if (was) this.pendingReload = true;
      this.retry = setTimeout(() => {
        this.retry = undefined;
        void this.connect();
      }, this.delay);
      this.retry.unref();
      this.delay = Math.min(this.delay * 2, 10_000);
    };
    this.client = client;
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', (n) => {
      if (n.channel === STREAM_CHANNEL) void this.announce(n.payload ?? '');
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${STREAM_CHANNEL}`);
      if (this.client !== client) return;
      this.listening = true;
      this.delay = 500;
      if (this.pendingReload) {
        this.pendingReload = false;
        for (const set of this.listeners.values()) for (const l of set) l(RELOAD);
      }
    } catch (err) {
      lost(err as Error);
    }
  }

  private emit(tenantId: string, event: StreamEvent): void {
    for (const listener of this.listeners.get(tenantId) ?? []) {
      try {
        listener(event);
      } catch (err) {
        this.logger.warn({ err }, 'a stream failed to take an event');
      }
    }
  }

  private async announce(payload: string): Promise<void> {
    let a: Announcement;
    try {
      a = JSON.parse(payload) as Announcement;
    } catch {
      return;
    }
    if (a.t) {
      for (const tenantId of a.t) this.emit(tenantId, RELOAD);
      return;
    }
    const rows = a.r ?? [];
    if (a.k === 'ticket') {
      for (const [tenantId, ticketId, number, change] of rows)
        if (this.listeners.has(tenantId))
          this.emit(tenantId, {
            event: 'ticket',
            data: { ticketId, number: ticketNumber(Number(number)), change: change ?? 'updated' },
          });
    } else if (a.k === 'mailbox') {
      for (const [tenantId, mailboxId, status, previous] of rows)
        if (this.listeners.has(tenantId))
          this.emit(tenantId, {
            event: 'mailbox',
            data: { mailboxId, status: String(status), previousStatus: previous },
          });
    } else if (a.k === 'presence') {
      // Who is on the ticket now is read once per change, for all the tenant's streams.
      for (const [tenantId, ticketId] of rows) {
        if (!this.listeners.has(tenantId)) continue;
        try {
          const people = await withTenantRead(this.deps.pool, tenantId, (tx) =>
            ticketPresence(tx, { ticketId, now: this.deps.clock.now(), checkTicket: false }),
          );
          this.emit(tenantId, {
            event: 'presence',
            data: {
              ticketId,
              people: people.map((p) => ({ id: p.id, displayName: p.displayName, state: p.state })),
            },
          });
        } catch (err) {
          this.logger.warn({ err }, 'reading presence for the stream failed');
        }
      }
    }
  }
}
