// IMAP ingress: one listener per IMAP mailbox, in the worker role. It keeps the folder selected,
// IDLEs for new mail, and enqueues what is new (new-messages.ts). It never looks at \Seen (mail
// another client has read is still new to us).
// Only one worker listens to a mailbox at a time: it holds a PostgreSQL advisory lock on a dedicated
// connection, so the lock goes with a crashed worker and another one takes over.
// A login the server refuses is not tried again until the mailbox's credentials or settings change
// (its updated_at moves): repeating it cannot help, and failed logins in a loop get accounts locked.
// The listeners hear of created and changed mailboxes at once (notify.ts); a periodic scan catches
// whatever a lost notification connection missed, and deleted mailboxes.
import type { ImapFlow } from 'imapflow';
import pg from 'pg';
import type { Pool } from '../../../../platform/db/pool.ts';
import { withSystemRead, withTenant } from '../../../../platform/db/tx.ts';
import { AppError } from '../../../../platform/errors.ts';
import type { Logger } from '../../../../platform/logging.ts';
import type { JobQueue } from '../../../../platform/queue/queue.ts';
import { recordSourceAuthFailed, recordSourceFailed, recordSourceHealthy } from '../../health.ts';
import { DEFAULT_UPKEEP } from '../../../../platform/config.ts';
import { imapClient, imapFailureText, imapSettingsOf, loginRefusal } from './client.ts';
import { type EnqueueDeps, enqueueNewMessages } from './new-messages.ts';
import { IMAP_MAILBOXES_CHANNEL } from './notify.ts';
import { loadImapMailbox } from './store.ts';

export { type ImapSettings, imapClient, imapSettingsOf } from './client.ts';
export { closeImapFetchPools, fetchImapMessage } from './fetch-pool.ts';

export interface ImapDeps {
  pool: Pool;
  connectionString: string;
  secretKey: Buffer;
  logger: Logger;
  queue: JobQueue;
}

export interface ImapListenerOptions {
  /** The first wait before reconnecting after a lost connection; it doubles up to maxReconnectDelayMs. */
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
}

class MailboxListener {
  private client: ImapFlow | undefined;
  private lockClient: pg.Client | undefined;
  private stopped = false;
  private syncing: Promise<void> | undefined;
  private again = false;
  /** The mailbox's updated_at as the current (or last) session read it. */
  private version: string | undefined;
  /** The mailbox changed since the session began: reconnect at once, with what it is now. */
  private changed = false;
  private wake: (() => void) | undefined;
  readonly done: Promise<void>;
  private readonly deps: ImapDeps;
  private readonly enqueueDeps: EnqueueDeps;
  private readonly options: Required<ImapListenerOptions>;
  readonly tenantId: string;
  readonly mailboxId: string;

  constructor(deps: ImapDeps, options: Required<ImapListenerOptions>, tenantId: string, mailboxId: string) {
    this.deps = deps;
    this.options = options;
    this.enqueueDeps = {
      pool: deps.pool,
      logger: deps.logger,
      send: (job, payload, sendOptions) => deps.queue.send(job, payload, sendOptions ?? {}),
    };
    this.tenantId = tenantId;
    this.mailboxId = mailboxId;
    this.done = this.run();
  }

  private async run(): Promise<void> {
    let delay = this.options.reconnectDelayMs;
    while (!this.stopped) {
      this.changed = false;
      let refused = false;
      try {
        await this.session();
        delay = this.options.reconnectDelayMs;
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof AppError && err.code === 'not_found') {
          // The mailbox was deleted: nothing to listen to (the scan would stop us too).
          await this.stop();
          break;
        }
        const refusal = loginRefusal(err);
        if (refusal !== undefined) {
          refused = true;
          await this.recordRefusal(refusal);
        } else {
          const reason = imapFailureText(err);
          this.deps.logger.warn(
            { err, reason, mailboxId: this.mailboxId },
            'IMAP session failed; reconnecting after a back-off',
          );
          // Said in the mailbox's health too: degraded, then error after a few in a row.
          await withTenant(this.deps.pool, this.tenantId, (tx) =>
            recordSourceFailed(tx, this.mailboxId, `IMAP: ${reason}`, DEFAULT_UPKEEP.errorAfter),
          ).catch(() => undefined);
        }
      }
      if (this.stopped) break;
      if (this.changed) {
        delay = this.options.reconnectDelayMs;
        continue;
      }
      // A refused login waits for a change (refresh) and nothing else; other failures back off.
      await this.pause(refused ? undefined : delay + Math.random() * (delay / 4));
      if (!refused) delay = Math.min(delay * 2, this.options.maxReconnectDelayMs);
    }
  }

  /** Waits `ms` (forever when undefined) or until the mailbox changes or the listener stops. */
  private async pause(ms: number | undefined): Promise<void> {
    if (this.changed || this.stopped) return;
    await new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = undefined;
  }

  private async recordRefusal(reason: string): Promise<void> {
    this.deps.logger.warn(
      { mailboxId: this.mailboxId, reason },
      "IMAP login refused; not trying again until the mailbox's credentials or settings change",
    );
    await withTenant(this.deps.pool, this.tenantId, (tx) =>
      recordSourceAuthFailed(tx, this.mailboxId, reason),
    ).catch((err: unknown) =>
      this.deps.logger.warn({ err, mailboxId: this.mailboxId }, 'recording a refused IMAP login failed'),
    );
  }

  /** One connected session: sync, then IDLE until the connection ends. */
  private async session(): Promise<void> {
    const { mailbox, password, version } = await loadImapMailbox(
      this.deps.pool,
      this.deps.secretKey,
      this.tenantId,
      this.mailboxId,
    );
    this.version = version;
    const settings = imapSettingsOf(mailbox);
    // IDLE one second after the last command, so new mail is seen at once (imapflow waits 15 s by default).
    const client = imapClient(settings, password, { autoIdleDelay: 1000 });
    this.client = client;
    try {
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.on('error', (err: Error) =>
        this.deps.logger.warn({ err, mailboxId: this.mailboxId }, 'IMAP error'),
      );
      if (this.stopped || this.changed) return;
      await client.connect();
      await withTenant(this.deps.pool, this.tenantId, (tx) => recordSourceHealthy(tx, this.mailboxId));
      await client.mailboxOpen(settings.folder);
      client.on('exists', () => this.requestSync());
      await this.sync();
      // imapflow IDLEs by itself while no command runs; 'exists' wakes us for new mail.
      await closed;
    } finally {
      this.client = undefined;
      if (client.usable) await client.logout().catch(() => client.close());
      else client.close();
    }
  }

  /**
   * The mailbox's updated_at as it is now (from a scan or a notification). When it moved, the
   * settings or credentials changed: the session starts again with them, also after a refused login.
   */
  refresh(version: string): void {
    if (this.version === undefined || version === this.version || this.changed) return;
    this.changed = true;
    this.wake?.();
    const client = this.client;
    if (client?.usable) void client.logout().catch(() => client.close());
    else client?.close();
  }

  private requestSync(): void {
    if (this.syncing) {
      this.again = true;
      return;
    }
    this.syncing = this.sync()
      .then(() => undefined)
      .catch((err) => this.deps.logger.warn({ err, mailboxId: this.mailboxId }, 'IMAP sync failed'))
      .finally(() => {
        this.syncing = undefined;
        if (this.again) {
          this.again = false;
          this.requestSync();
        }
      });
  }

  /** Enqueues everything above the recorded UID (everything, after a UIDVALIDITY change). */
  async sync(): Promise<number> {
    const client = this.client;
    if (!client?.mailbox) return 0;
    return enqueueNewMessages(this.enqueueDeps, this.tenantId, this.mailboxId, client, { reused: false });
  }

  /** Takes the mailbox's advisory lock on a dedicated connection; false when another worker holds it. */
  static async lock(deps: ImapDeps, mailboxId: string): Promise<pg.Client | undefined> {
    const client = new pg.Client({
      connectionString: deps.connectionString,
      application_name: 'relaydesk-imap-lock',
    });
    client.on('error', () => undefined);
    await client.connect();
    const { rows } = await client.query<{ ok: boolean }>(
      "SELECT pg_try_advisory_lock(hashtextextended('imap:' || $1, 0)) AS ok",
      [mailboxId],
    );
    if (rows[0]?.ok) return client;
    await client.end();
    return undefined;
  }

  attachLock(client: pg.Client): void {
    this.lockClient = client;
    // Without the lock we must stop: another worker may have taken over.
    client.once('end', () => void this.stop());
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wake?.();
    const client = this.client;
    if (client?.usable) await client.logout().catch(() => client.close());
    else client?.close();
    await this.syncing?.catch(() => undefined);
    await this.lockClient?.end().catch(() => undefined);
  }
}

/** Keeps a listener running for every IMAP mailbox this worker holds the lock of. */
export class ImapListeners {
  private readonly listeners = new Map<string, MailboxListener>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private scanning: Promise<void> | undefined;
  private scanAgain = false;
  private notifications: pg.Client | undefined;
  private readonly deps: ImapDeps;
  private readonly options: Required<ImapListenerOptions>;

  constructor(deps: ImapDeps, options: ImapListenerOptions = {}) {
    this.deps = deps;
    this.options = {
      reconnectDelayMs: options.reconnectDelayMs ?? 1000,
      maxReconnectDelayMs: options.maxReconnectDelayMs ?? 60_000,
    };
  }

  /** Listens for mailbox changes, scans, and scans again every `intervalMs` (a safety net). */
  async start(intervalMs = 15_000): Promise<void> {
    // LISTEN before the first scan: a mailbox created in between is then heard of, not missed.
    await this.listenForChanges();
    await this.scan();
    this.timer = setInterval(() => this.requestScan(), intervalMs);
    this.timer.unref();
  }

  /** A dedicated connection that hears of created and changed IMAP mailboxes (notify.ts). */
  private async listenForChanges(): Promise<void> {
    if (this.notifications || this.stopped) return;
    const client = new pg.Client({
      connectionString: this.deps.connectionString,
      application_name: 'relaydesk-imap-notifications',
    });
    client.on('error', (err) =>
      this.deps.logger.warn({ err }, 'the IMAP notification connection failed; the scan covers meanwhile'),
    );
    client.on('notification', () => this.requestScan());
    client.once('end', () => {
      if (this.notifications === client) this.notifications = undefined;
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${IMAP_MAILBOXES_CHANNEL}`);
      this.notifications = client;
    } catch (err) {
      this.deps.logger.warn({ err }, 'listening for IMAP mailbox changes failed; the scan covers meanwhile');
      await client.end().catch(() => undefined);
    }
  }

  /** Scans now, or once more after the scan that runs (changes heard meanwhile are not lost). */
  private requestScan(): void {
    if (this.stopped) return;
    if (this.scanning) {
      this.scanAgain = true;
      return;
    }
    this.scanning = this.scan().finally(() => {
      this.scanning = undefined;
      if (this.scanAgain) {
        this.scanAgain = false;
        this.requestScan();
      }
    });
  }

  /**
   * Starts listeners for IMAP mailboxes nobody listens to; stops those whose mailbox is gone; tells
   * the others the mailbox's version (they reconnect when it changed).
   */
  async scan(): Promise<void> {
    if (this.stopped) return;
    try {
      // A lost notification connection is made again here; this scan covers what it missed.
      if (!this.notifications) await this.listenForChanges();
      // Every tenant's IMAP mailboxes: this process listens for all of them.
      const { rows } = await withSystemRead(this.deps.pool, (sys) =>
        sys.query<{ tenant_id: string; id: string; version: string }>(
          "SELECT tenant_id, id, updated_at::text AS version FROM mailboxes WHERE kind = 'imap'",
        ),
      );
      const present = new Map(rows.map((r) => [r.id, r.version]));
      for (const [id, listener] of this.listeners) {
        const version = present.get(id);
        if (version === undefined) {
          await listener.stop();
          this.listeners.delete(id);
        } else listener.refresh(version);
      }
      for (const row of rows) {
        if (this.listeners.has(row.id) || this.stopped) continue;
        const lock = await MailboxListener.lock(this.deps, row.id);
        if (!lock) continue;
        if (this.stopped) {
          await lock.end();
          break;
        }
        const listener = new MailboxListener(this.deps, this.options, row.tenant_id, row.id);
        listener.attachLock(lock);
        this.listeners.set(row.id, listener);
        void listener.done.then(() => {
          if (this.listeners.get(row.id) === listener) this.listeners.delete(row.id);
        });
      }
    } catch (err) {
      this.deps.logger.warn({ err }, 'scanning IMAP mailboxes failed');
    }
  }

  listening(): string[] {
    return [...this.listeners.keys()];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.scanning?.catch(() => undefined);
    await this.notifications?.end().catch(() => undefined);
    this.notifications = undefined;
    await Promise.all([...this.listeners.values()].map((l) => l.stop()));
    this.listeners.clear();
  }
}
