// IMAP ingress: one listener per IMAP mailbox, in the worker role. It keeps the folder selected,
// IDLEs for new mail, and enqueues one pointer {uidValidity, uid} per message above the highest UID
// it has recorded, in the same transaction that advances that UID. It never looks at \Seen (mail
// another client has read is still new to us). A changed UIDVALIDITY means UIDs were renumbered: the
// folder is scanned again, and message keys turn what we already had into duplicates.
// Only one worker listens to a mailbox at a time: it holds a PostgreSQL advisory lock on a dedicated
// connection, so the lock goes with a crashed worker and another one takes over.
import { ImapFlow } from 'imapflow';
import pg from 'pg';
import type { Pool } from '../../../../platform/db/pool.ts';
import { withSystemRead, withTenant, withTenantRead } from '../../../../platform/db/tx.ts';
import { uuidv7 } from '../../../../platform/ids.ts';
import type { Logger } from '../../../../platform/logging.ts';
import type { JobQueue } from '../../../../platform/queue/queue.ts';
import { processInboundJob } from '../../job-refs.ts';
import { getMailbox, type Mailbox, mailboxCredentials } from '../../mailboxes.ts';

export interface ImapSettings {
  host: string;
  port: number;
  secure: boolean;
  user: string;
  folder: string;
}

export function imapSettingsOf(mailbox: Mailbox): ImapSettings {
  const s = mailbox.settings.imap as Record<string, unknown>;
  return {
    host: String(s['host'] ?? '127.0.0.1'),
    port: Number(s['port'] ?? 993),
    secure: s['secure'] === undefined ? Number(s['port'] ?? 993) === 993 : Boolean(s['secure']),
    user: String(s['user'] ?? mailbox.address),
    folder: String(s['folder'] ?? 'INBOX'),
  };
}

export function imapClient(
  settings: ImapSettings,
  password: string,
  options: { autoIdleDelay?: number } = {},
): ImapFlow {
  return new ImapFlow({
    ...(options.autoIdleDelay === undefined ? {} : { autoIdleDelay: options.autoIdleDelay }),
    host: settings.host,
    port: settings.port,
    secure: settings.secure,
    auth: { user: settings.user, pass: password },
    logger: false,
    emitLogs: false,
    connectionTimeout: 15_000,
  });
}

export interface ImapDeps {
  pool: Pool;
  connectionString: string;
  secretKey: Buffer;
  logger: Logger;
  queue: JobQueue;
}

/** Fetches one message's raw bytes by UID; undefined when it is gone or the UIDs were renumbered. */
export async function fetchImapMessage(
  mailbox: Mailbox,
  password: string,
  pointer: { uidValidity: string; uid: number },
): Promise<Buffer | undefined> {
  const settings = imapSettingsOf(mailbox);
  const client = imapClient(settings, password);
  await client.connect();
  try {
    const lock = await client.getMailboxLock(settings.folder);
    try {
      const current = String((client.mailbox as { uidValidity?: bigint }).uidValidity ?? '');
      if (current !== pointer.uidValidity) return undefined;
      const message = await client.fetchOne(String(pointer.uid), { source: true }, { uid: true });
      return message && message.source ? Buffer.from(message.source) : undefined;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
}

class MailboxListener {
  private client: ImapFlow | undefined;
  private lockClient: pg.Client | undefined;
  private stopped = false;
  private syncing: Promise<void> | undefined;
  private again = false;
  readonly done: Promise<void>;
  private readonly deps: ImapDeps;
  readonly tenantId: string;
  readonly mailboxId: string;

  constructor(deps: ImapDeps, tenantId: string, mailboxId: string) {
    this.deps = deps;
    this.tenantId = tenantId;
    this.mailboxId = mailboxId;
    this.done = this.run();
  }

  private async run(): Promise<void> {
    let delay = 1000;
    while (!this.stopped) {
      try {
        await this.session();
        delay = 1000;
      } catch (err) {
        if (this.stopped) break;
        this.deps.logger.warn(
          { err, mailboxId: this.mailboxId },
          'IMAP listener lost its connection; reconnecting',
        );
      }
      if (this.stopped) break;
      await new Promise((r) => setTimeout(r, delay + Math.random() * 250));
      delay = Math.min(delay * 2, 60_000);
    }
  }

  /** One connected session: sync, then IDLE until the connection ends. */
  private async session(): Promise<void> {
    const mailbox = await withTenant(this.deps.pool, this.tenantId, (tx) => getMailbox(tx, this.mailboxId));
    const credentials = await withTenant(this.deps.pool, this.tenantId, (tx) =>
      mailboxCredentials(tx, this.deps.secretKey, this.mailboxId),
    );
    const settings = imapSettingsOf(mailbox);
    // IDLE one second after the last command, so new mail is seen at once (imapflow waits 15 s by default).
    const client = imapClient(settings, String(credentials?.['password'] ?? ''), { autoIdleDelay: 1000 });
    this.client = client;
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.on('error', (err: Error) =>
      this.deps.logger.warn({ err, mailboxId: this.mailboxId }, 'IMAP error'),
    );
    await client.connect();
    await client.mailboxOpen(settings.folder);
    client.on('exists', () => this.requestSync());
    await this.sync();
    // imapflow IDLEs by itself while no command runs; 'exists' wakes us for new mail.
    await closed;
    this.client = undefined;
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
    const uidValidity = String((client.mailbox as { uidValidity?: bigint }).uidValidity ?? '');
    const { rows } = await withTenantRead(this.deps.pool, this.tenantId, (tx) =>
      tx.query<{ v: string | null; last: string | null }>(
        "SELECT state->'imap'->>'uidValidity' AS v, state->'imap'->>'lastUid' AS last FROM mailboxes WHERE tenant_id = $1 AND id = $2",
        [this.tenantId, this.mailboxId],
      ),
    );
    const sameValidity = rows[0]?.v === uidValidity;
    if (!sameValidity && rows[0]?.v)
      this.deps.logger.warn(
        { mailboxId: this.mailboxId, was: rows[0].v, now: uidValidity },
        'UIDVALIDITY changed; rescanning the folder',
      );
    const lastUid = sameValidity ? Number(rows[0]?.last ?? 0) : 0;
    // "n:*" always matches the highest message, even below n: filter.
    const found = (await client.search({ uid: `${lastUid + 1}:*` }, { uid: true })) || [];
    const uids = found.filter((u) => u > lastUid).sort((a, b) => a - b);
    if (uids.length === 0 && sameValidity) return 0;
    await withTenant(this.deps.pool, this.tenantId, async (tx) => {
      for (const uid of uids) {
        const inboundId = uuidv7();
        await tx.query(
          `INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer) VALUES ($1, $2, $3, 'imap', $4)`,
          [this.tenantId, inboundId, this.mailboxId, JSON.stringify({ uidValidity, uid })],
        );
        await this.deps.queue.send(processInboundJob, { tenantId: this.tenantId, inboundId }, { tx });
      }
      await tx.query(
        `UPDATE mailboxes SET state = state || jsonb_build_object('imap', coalesce(state->'imap', '{}')
                || jsonb_build_object('uidValidity', $3::text, 'lastUid', $4::bigint, 'lastSyncAt', now()))
          WHERE tenant_id = $1 AND id = $2`,
        [this.tenantId, this.mailboxId, uidValidity, uids.length > 0 ? uids[uids.length - 1] : lastUid],
      );
    });
    return uids.length;
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
    await this.client?.logout().catch(() => this.client?.close());
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
  private readonly deps: ImapDeps;

  constructor(deps: ImapDeps) {
    this.deps = deps;
  }

  async start(intervalMs = 15_000): Promise<void> {
    await this.scan();
    this.timer = setInterval(() => {
      this.scanning ??= this.scan().finally(() => (this.scanning = undefined));
    }, intervalMs);
    this.timer.unref();
  }

  /** Starts listeners for IMAP mailboxes nobody listens to; stops those whose mailbox is gone. */
  async scan(): Promise<void> {
    if (this.stopped) return;
    try {
      // Every tenant's IMAP mailboxes: this process listens for all of them.
      const { rows } = await withSystemRead(this.deps.pool, (sys) =>
        sys.query<{ tenant_id: string; id: string }>(
          "SELECT tenant_id, id FROM mailboxes WHERE kind = 'imap'",
        ),
      );
      const present = new Set(rows.map((r) => r.id));
      for (const [id, listener] of this.listeners) {
        if (!present.has(id)) {
          await listener.stop();
          this.listeners.delete(id);
        }
      }
      for (const row of rows) {
        if (this.listeners.has(row.id) || this.stopped) continue;
        const lock = await MailboxListener.lock(this.deps, row.id);
        if (!lock) continue;
        const listener = new MailboxListener(this.deps, row.tenant_id, row.id);
        listener.attachLock(lock);
        this.listeners.set(row.id, listener);
        void listener.done.then(() => this.listeners.delete(row.id));
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
    await Promise.all([...this.listeners.values()].map((l) => l.stop()));
    this.listeners.clear();
  }
}
