// How the IMAP listeners of every worker learn at once that an IMAP mailbox was created or changed
// (issue 11: a new mailbox waited for the next scan). NOTIFY is transactional: a notification sent
// in the transaction that writes the mailbox is delivered at its commit, never before, and not at
// all when it rolls back, so a listener that hears it always finds the mailbox as written.
import type { TenantTx } from '../../../../platform/db/tx.ts';

export const IMAP_MAILBOXES_CHANNEL = 'relaydesk_imap_mailboxes';

/** Tells the listeners (after commit) that the mailbox was created, changed or deleted. */
export async function notifyImapMailboxChanged(tx: TenantTx, mailboxId: string): Promise<void> {
  await tx.query('SELECT pg_notify($1, $2)', [
    IMAP_MAILBOXES_CHANNEL,
    JSON.stringify({ tenantId: tx.tenantId, mailboxId }),
  ]);
}
