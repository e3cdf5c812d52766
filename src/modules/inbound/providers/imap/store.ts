// What the IMAP code reads of a mailbox: the mailbox, its password, and the version of its settings
// and credentials (updated_at, as text so it compares exactly), in one read.
import type { Pool } from '../../../../platform/db/pool.ts';
import { withTenant } from '../../../../platform/db/tx.ts';
import { getMailbox, type Mailbox, mailboxCredentials } from '../../mailboxes.ts';

export interface ImapMailbox {
  mailbox: Mailbox;
  password: string;
  /** Moves whenever the mailbox's settings or credentials change. */
  version: string;
}

export async function loadImapMailbox(
  pool: Pool,
  secretKey: Buffer,
  tenantId: string,
  mailboxId: string,
): Promise<ImapMailbox> {
  return withTenant(pool, tenantId, async (tx) => {
    const mailbox = await getMailbox(tx, mailboxId);
    const credentials = await mailboxCredentials(tx, secretKey, mailboxId);
    const { rows } = await tx.query<{ version: string }>(
      'SELECT updated_at::text AS version FROM mailboxes WHERE tenant_id = $1 AND id = $2',
      [tenantId, mailboxId],
    );
    return { mailbox, password: String(credentials?.['password'] ?? ''), version: rows[0]?.version ?? '' };
  });
}
