// Reconcile: look for mail no listener brought, now. The same search and enqueue as the listener's
// (new-messages.ts), on a pooled fetch connection, so it works whether or not a listener holds the
// mailbox (in this process or another), and never enqueues a UID the listener enqueued too.
import pg from 'pg';
import type { Pool } from '../../../../platform/db/pool.ts';
import { AppError, validation } from '../../../../platform/errors.ts';
import { classifyImapError } from './client.ts';
import { withImapConnection } from './fetch-pool.ts';
import { type EnqueueDeps, enqueueNewMessages } from './new-messages.ts';
import { loadImapMailbox } from './store.ts';

export interface ReconcileDeps extends EnqueueDeps {
  pool: Pool;
  /** RELAYDESK_SECRET_KEY, to unseal the mailbox's password. */
  secretKey: Buffer;
}

/**
 * Enqueues what the mailbox's folder holds above the recorded UID (records and jobs committed with
 * the UID's advance); answers how many. IMAP failures throw as provider errors (a refused login is
 * AuthExpired); database failures as they are.
 */
export async function reconcileImapMailbox(
  deps: ReconcileDeps,
  tenantId: string,
  mailboxId: string,
): Promise<{ recovered: number }> {
  const { mailbox, password } = await loadImapMailbox(deps.pool, deps.secretKey, tenantId, mailboxId);
  if (mailbox.kind !== 'imap') throw validation(`mailbox ${mailboxId} is not an IMAP mailbox`);
  try {
    const recovered = await withImapConnection(mailbox, password, (client, reused) =>
      enqueueNewMessages(deps, tenantId, mailboxId, client, { reused }),
    );
    return { recovered };
  } catch (err) {
    if (err instanceof pg.DatabaseError || err instanceof AppError) throw err;
    throw classifyImapError(err);
  }
}
