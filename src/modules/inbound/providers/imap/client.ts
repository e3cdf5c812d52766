// What every IMAP connection of Relaydesk shares: the mailbox's settings, how a client is made, and
// what its failures mean (STYLE §7). A login the server refused is told apart from a server that
// could not be reached, because only the first needs a person: retrying it cannot help, and a
// stream of failed logins gets accounts locked on many servers.
import { ImapFlow } from 'imapflow';
import { AuthExpired, ProviderError, Transient } from '../../../../platform/provider-errors.ts';
import type { Mailbox } from '../../mailboxes.ts';

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

export interface ImapClientOptions {
  /** Milliseconds without a command before imapflow IDLEs (its default is 15 s). */
  autoIdleDelay?: number;
  /** Never IDLE: for connections that only fetch. */
  disableAutoIdle?: boolean;
  /** Bounds the TCP/TLS connect and the wait for the greeting, each (15 s unless given). */
  timeoutMs?: number;
}

export function imapClient(
  settings: ImapSettings,
  password: string,
  options: ImapClientOptions = {},
): ImapFlow {
  const timeout = options.timeoutMs ?? 15_000;
  return new ImapFlow({
    ...(options.autoIdleDelay === undefined ? {} : { autoIdleDelay: options.autoIdleDelay }),
    ...(options.disableAutoIdle ? { disableAutoIdle: true } : {}),
    host: settings.host,
    port: settings.port,
    secure: settings.secure,
    auth: { user: settings.user, pass: password },
    logger: false,
    emitLogs: false,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
  });
}

/** The selected folder's UIDVALIDITY ('' when none is selected). */
export const uidValidityOf = (client: ImapFlow): string =>
  client.mailbox ? String(client.mailbox.uidValidity ?? '') : '';

/**
 * Thrown by work on a reused connection whose view of the folder may be out of date: its
 * UIDVALIDITY differs from the one expected. The server need not tell a connection that sits still
 * that the folder was renumbered (and Dovecot fails a new SELECT on such a session), so the pool
 * closes it and runs the work once more on a fresh connection, whose answer then stands.
 */
export class StaleConnection extends Error {
  constructor() {
    super('the connection may hold an out-of-date view of the folder');
    this.name = 'StaleConnection';
  }
}

interface ImapFailure {
  authenticationFailed?: boolean;
  serverResponseCode?: string;
  responseText?: string;
  responseStatus?: string;
  code?: string;
  message?: string;
}

/**
 * The server's words when it refused the login (`[AUTHENTICATIONFAILED] Authentication failed.`),
 * undefined for any other failure. imapflow marks every tagged NO to a login as failed
 * authentication; `[UNAVAILABLE]` (RFC 5530) is the server's own auth backend failing for now,
 * which a retry may mend, so it is not a refusal. The text is the server's reply, never our command
 * (which carries the password).
 */
export function loginRefusal(err: unknown): string | undefined {
  const e = err as ImapFailure | null;
  if (!e?.authenticationFailed) return undefined;
  if (e.serverResponseCode?.toUpperCase() === 'UNAVAILABLE') return undefined;
  const text = e.responseText?.trim() || e.message || 'login refused';
  return e.serverResponseCode ? `[${e.serverResponseCode}] ${text}` : text;
}

/** What went wrong, in the server's words when it answered (else the library's or the socket's). */
export function imapFailureText(err: unknown): string {
  const e = err as ImapFailure | null;
  if (e?.responseText)
    return e.serverResponseCode ? `[${e.serverResponseCode}] ${e.responseText}` : e.responseText;
  const message = e?.message ?? String(err);
  return e?.code && !message.includes(e.code) ? `${e.code}: ${message}` : message;
}

/** Any IMAP failure as a provider error class: a refused login is AuthExpired, the rest may pass. */
export function classifyImapError(err: unknown): ProviderError {
  if (err instanceof ProviderError) return err;
  const refusal = loginRefusal(err);
  if (refusal !== undefined) return new AuthExpired('imap', refusal, { cause: err });
  return new Transient('imap', imapFailureText(err), { cause: err });
}
