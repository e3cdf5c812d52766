// Mail sources: every kind of mailbox behind one interface. A pointer job names a message by a
// pointer its source understands; the worker asks the source for the raw bytes, outside any
// transaction, and classifies whatever went wrong into the provider error classes, from which the
// pipeline decides retry or dead-letter. Subscription upkeep extends these adapters.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { NotFound, ProviderError, Transient } from '../../platform/provider-errors.ts';
import { readBlobs } from '../blobs/service.ts';
import { type Mailbox, type MailboxKind, mailboxCredentials } from './mailboxes.ts';
import { gmailClientFor, graphClientFor, providerUser } from './providers/clients.ts';
import { classifyImapError } from './providers/imap/client.ts';
import { fetchImapMessage } from './providers/imap/fetch-pool.ts';

export interface SourceDeps {
  pool: Pool;
  /** RELAYDESK_SECRET_KEY, to unseal provider credentials. */
  secretKey: Buffer;
  clock: Clock;
}

export interface MailSource {
  readonly kind: MailboxKind;
  /**
   * The raw bytes the pointer names; undefined when the source no longer has the message (a
   * deterministic `skipped (source_unavailable)`). Failures throw provider errors (classify).
   */
  fetchRaw(
    deps: SourceDeps,
    tenantId: string,
    mailbox: Mailbox,
    pointer: Record<string, unknown>,
  ): Promise<Buffer | undefined>;
  /** Whatever fetchRaw threw, as a provider error class (RateLimited, AuthExpired, NotFound, Transient, Permanent). */
  classify(err: unknown): ProviderError;
}

/** Provider clients classify their HTTP answers themselves; anything else is a failure to reach them. */
function classifyHttp(provider: string) {
  return (err: unknown): ProviderError =>
    err instanceof ProviderError
      ? err
      : new Transient(provider, (err as Error)?.message ?? String(err), { cause: err });
}

const mime: MailSource = {
  kind: 'mime',
  // The bytes were stored as a blob at acceptance; the pointer names it.
  async fetchRaw(deps, tenantId, _mailbox, pointer) {
    const hex = typeof pointer['blob'] === 'string' ? pointer['blob'] : '';
    if (!/^[0-9a-f]{64}$/.test(hex)) return undefined;
    const blobs = await withTenant(deps.pool, tenantId, (tx) => readBlobs(tx, [Buffer.from(hex, 'hex')]));
    return blobs.get(hex);
  },
  classify: classifyHttp('mime'),
};

const graph: MailSource = {
  kind: 'graph',
  async fetchRaw(deps, tenantId, mailbox, pointer) {
    const client = await graphClientFor(deps, tenantId, mailbox);
    return client.messageMime(providerUser(mailbox, 'graph'), String(pointer['messageId']));
  },
  classify: classifyHttp('graph'),
};

const gmail: MailSource = {
  kind: 'gmail',
  async fetchRaw(deps, tenantId, mailbox, pointer) {
    const client = await gmailClientFor(deps, tenantId, mailbox);
    return client.messageRaw(providerUser(mailbox, 'gmail'), String(pointer['messageId']));
  },
  classify: classifyHttp('gmail'),
};

const imap: MailSource = {
  kind: 'imap',
  async fetchRaw(deps, tenantId, mailbox, pointer) {
    const credentials = await withTenant(deps.pool, tenantId, (tx) =>
      mailboxCredentials(tx, deps.secretKey, mailbox.id),
    );
    return fetchImapMessage(mailbox, String(credentials?.['password'] ?? ''), {
      uidValidity: String(pointer['uidValidity']),
      uid: Number(pointer['uid']),
    });
  },
  // A refused login is AuthExpired with the server's words (the record ends failed, no retry);
  // anything else (connection refused, reset, timeout, the server's limits) may pass.
  classify: classifyImapError,
};

export const MAIL_SOURCES: Readonly<Record<MailboxKind, MailSource>> = { mime, graph, gmail, imap };

/**
 * Fetches the raw message a record's pointer names from the source the record came through (a
 * message uploaded as raw MIME into a Graph mailbox came through `mime`). Undefined when the source
 * no longer has it (including a 404 from a provider); other failures throw classified.
 */
export async function fetchRawMessage(
  deps: SourceDeps,
  tenantId: string,
  record: { source: MailboxKind; mailbox: Mailbox; pointer: Record<string, unknown> },
): Promise<Buffer | undefined> {
  const { mailbox, pointer } = record;
  const source = MAIL_SOURCES[record.source];
  try {
    return await source.fetchRaw(deps, tenantId, mailbox, pointer);
  } catch (err) {
    const classified = source.classify(err);
    if (classified instanceof NotFound) return undefined;
    throw classified;
  }
}
