// Connections that fetch messages, reused. Logging in once per message ran a backlog of 2,000
// messages into Dovecot's limit of 10 connections per user and address (issue 11): logins were
// refused. Each mailbox now gets a few logged-in connections with its folder selected, lent to one
// fetch at a time, closed after a while unused, and replaced when the server drops them.
//
// What must stay true:
// - A pool is keyed by the mailbox and a hash of everything the login depends on, so changed
//   credentials or settings never reuse an old login: the old pool is retired at the first fetch
//   that sees the new ones.
// - A refused login is remembered (for REFUSAL_MEMORY_MS, or until the credentials change) and
//   answered to every later fetch without asking the server again: a backlog must not turn into
//   thousands of failed logins, which get accounts locked on many servers.
// - A failed connect fails everything waiting for a connection of that mailbox at once: they would
//   fail the same way, one connect timeout after the other, past their jobs' leases.
import { createHash } from 'node:crypto';
import type { ImapFlow } from 'imapflow';
import { Transient } from '../../../../platform/provider-errors.ts';
import type { Mailbox } from '../../mailboxes.ts';
import {
  imapClient,
  type ImapSettings,
  imapSettingsOf,
  loginRefusal,
  StaleConnection,
  uidValidityOf,
} from './client.ts';

export interface ImapFetchPoolOptions {
  /** Connections per mailbox at most (Dovecot allows 10 per user and address, the listener uses one). */
  maxPerMailbox: number;
  /** An unused connection is logged out after this many milliseconds. */
  idleMs: number;
}

const options: ImapFetchPoolOptions = { maxPerMailbox: 2, idleMs: 60_000 };
const REFUSAL_MEMORY_MS = 5 * 60_000;
const LOGOUT_TIMEOUT_MS = 2_000;

/** Changes the pools' limits (tests; pools made afterwards use them). */
export function configureImapFetchPools(given: Partial<ImapFetchPoolOptions>): void {
  Object.assign(options, given);
}

interface Lent {
  client: ImapFlow;
  /** It had served another fetch before: the server may have dropped it meanwhile. */
  reused: boolean;
}

interface Waiter {
  resolve(lent: Lent): void;
  reject(err: unknown): void;
}

/** Logs out, or closes the socket when the server does not answer in time. */
async function closeConnection(client: ImapFlow): Promise<void> {
  if (!client.usable) {
    client.close();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.logout().catch(() => undefined),
    new Promise((resolve) => (timer = setTimeout(resolve, LOGOUT_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  client.close();
}

class MailboxConnections {
  readonly key: string;
  private readonly settings: ImapSettings;
  private readonly password: string;
  private readonly max: number;
  private readonly idleMs: number;
  /** Every established connection, lent or idle. */
  private readonly live = new Set<ImapFlow>();
  /** The idle ones, with the timer that closes each. */
  private readonly idle = new Map<ImapFlow, NodeJS.Timeout>();
  private opening = 0;
  private readonly waiting: Waiter[] = [];
  /** The error of a refused login, answered to every fetch until its timer forgets it. */
  private refused: { err: unknown; timer: NodeJS.Timeout } | undefined;
  private retired = false;
  private readonly closing = new Set<Promise<void>>();

  constructor(key: string, settings: ImapSettings, password: string) {
    this.key = key;
    this.settings = settings;
    this.password = password;
    this.max = Math.max(1, options.maxPerMailbox);
    this.idleMs = options.idleMs;
  }

  /**
   * Runs `fn` on a connection of its own (`reused`: it served other work before). Once more on a
   * fresh connection when a reused one turned out dead or stale (StaleConnection); the idle ones
   * are then closed too, being as old.
   */
  async use<T>(fn: (client: ImapFlow, reused: boolean) => Promise<T>, mayRetry = true): Promise<T> {
    const { client, reused } = await this.acquire();
    let result: T;
    try {
      result = await fn(client, reused);
    } catch (err) {
      const stale = err instanceof StaleConnection;
      if (stale) client.close();
      const dead = !client.usable;
      this.release(client);
      if (dead && reused && mayRetry) {
        for (const idle of [...this.idle.keys()]) this.drop(idle);
        return this.use(fn, false);
      }
      throw stale ? new Transient('imap', err.message, { cause: err }) : err;
    }
    this.release(client);
    return result;
  }

  private acquire(): Promise<Lent> {
    if (this.refused) return Promise.reject(this.refused.err);
    if (this.retired) return Promise.reject(new Transient('imap', 'the IMAP connection pool is closing'));
    const [first] = this.idle;
    if (first) {
      const [client, timer] = first;
      clearTimeout(timer);
      this.idle.delete(client);
      return Promise.resolve({ client, reused: true });
    }
    if (this.live.size + this.opening < this.max) return this.openOne();
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private async openOne(): Promise<Lent> {
    this.opening++;
    const client = imapClient(this.settings, this.password, { disableAutoIdle: true });
    // Errors of an established connection end in 'close' (below); the fetch using it fails by itself.
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.mailboxOpen(this.settings.folder);
    } catch (err) {
      this.opening--;
      client.close();
      if (loginRefusal(err) !== undefined) this.rememberRefusal(err);
      for (const w of this.waiting.splice(0)) w.reject(err);
      throw err;
    }
    this.opening--;
    this.live.add(client);
    client.once('close', () => this.drop(client));
    return { client, reused: false };
  }

  private rememberRefusal(err: unknown): void {
    clearTimeout(this.refused?.timer);
    const timer = setTimeout(() => (this.refused = undefined), REFUSAL_MEMORY_MS);
    timer.unref();
    this.refused = { err, timer };
  }

  private release(client: ImapFlow): void {
    if (!client.usable || this.retired) {
      this.drop(client);
      return;
    }
    const next = this.waiting.shift();
    if (next) {
      next.resolve({ client, reused: true });
      return;
    }
    const timer = setTimeout(() => this.drop(client), this.idleMs);
    timer.unref();
    this.idle.set(client, timer);
  }

  /** Takes a connection out of the pool and closes it; a waiter gets a new one in its place. */
  private drop(client: ImapFlow): void {
    clearTimeout(this.idle.get(client));
    this.idle.delete(client);
    if (!this.live.delete(client)) return;
    const closed = closeConnection(client).finally(() => this.closing.delete(closed));
    this.closing.add(closed);
    const next = this.waiting.shift();
    if (next) this.openOne().then(next.resolve, next.reject);
  }

  /** Closes what is idle now and the rest as it comes back; waiters fail (their jobs retry). */
  async retire(): Promise<void> {
    this.retired = true;
    clearTimeout(this.refused?.timer);
    const closing = new Transient('imap', 'the IMAP connection pool is closing');
    for (const w of this.waiting.splice(0)) w.reject(closing);
    for (const client of [...this.idle.keys()]) this.drop(client);
    await Promise.all([...this.closing]);
  }
}

const pools = new Map<string, MailboxConnections>();

function loginKey(settings: ImapSettings, password: string): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        settings.host,
        settings.port,
        settings.secure,
        settings.user,
        settings.folder,
        password,
      ]),
    )
    .digest('hex');
}

function poolFor(mailbox: Mailbox, password: string): MailboxConnections {
  const settings = imapSettingsOf(mailbox);
  const key = loginKey(settings, password);
  const existing = pools.get(mailbox.id);
  if (existing?.key === key) return existing;
  void existing?.retire();
  const pool = new MailboxConnections(key, settings, password);
  pools.set(mailbox.id, pool);
  return pool;
}

/**
 * Runs `fn` on a logged-in connection of the mailbox with its folder selected, lent to `fn` alone
 * until it returns. Failures are imapflow's (classify them with classifyImapError).
 */
export function withImapConnection<T>(
  mailbox: Mailbox,
  password: string,
  fn: (client: ImapFlow, reused: boolean) => Promise<T>,
): Promise<T> {
  return poolFor(mailbox, password).use(fn);
}

/** Fetches one message's raw bytes by UID; undefined when it is gone or the UIDs were renumbered. */
export function fetchImapMessage(
  mailbox: Mailbox,
  password: string,
  pointer: { uidValidity: string; uid: number },
): Promise<Buffer | undefined> {
  return withImapConnection(mailbox, password, async (client, reused) => {
    if (uidValidityOf(client) !== pointer.uidValidity) {
      if (reused) throw new StaleConnection();
      return undefined;
    }
    // A connection sees mail that arrived after it selected the folder only once the server has
    // synced its view (Dovecot does so at NOOP, not at FETCH): a UID it has not seen yet asks first.
    const known = client.mailbox ? client.mailbox.uidNext : 0;
    if (!known || pointer.uid >= known) await client.noop();
    const message = await client.fetchOne(String(pointer.uid), { source: true }, { uid: true });
    return message && message.source ? Buffer.from(message.source) : undefined;
  });
}

/**
 * Logs out every fetch connection (idle ones now, lent ones when their fetch ends). For a worker's
 * stop, after its jobs have finished; a fetch after it opens new connections.
 */
export async function closeImapFetchPools(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((p) => p.retire()));
}
