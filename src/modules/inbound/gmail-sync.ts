// Reading a Gmail mailbox's changes: what a push announces, and what reconciliation looks for.
// Both read the history since the stored history id (a full resync of recent mail when Gmail no
// longer keeps it), record what is not recorded yet, and move the stored id forward only.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { NotFound } from '../../platform/provider-errors.ts';
import type { JobContext } from '../../platform/queue/registry.ts';
import { type GmailHistoryPayload, processInboundJob } from './job-refs.ts';
import { getMailbox, mailboxState } from './mailboxes.ts';
import { gmailClientFor, providerUser } from './providers/clients.ts';
import { recordProviderMessages, unrecordedMessages } from './records.ts';

export interface GmailSyncDeps {
  pool: Pool;
  secretKey: Buffer;
  clock: Clock;
}

/**
 * Reads the messages added since the mailbox's stored history id and commits one inbound record and
 * job per message not recorded yet, together with the new history id. Without a stored id, or when
 * Gmail says it is too old (404), it resynchronises from the last 7 days' message list; message keys
 * absorb any overlap with what pushes bring meanwhile. `payload.historyId` is what a push announced
 * ('0' when nothing did).
 */
export async function syncGmailHistory(
  deps: GmailSyncDeps,
  payload: GmailHistoryPayload,
  send: JobContext['send'],
): Promise<{ enqueued: number; resync: boolean }> {
  const { tenantId, mailboxId } = payload;
  const { mailbox, stored } = await withTenant(deps.pool, tenantId, async (tx) => ({
    mailbox: await getMailbox(tx, mailboxId),
    stored: (await mailboxState(tx, mailboxId, 'gmail'))['historyId'],
  }));
  const client = await gmailClientFor(deps, tenantId, mailbox);
  const user = providerUser(mailbox, 'gmail');
  const later = (a: string, b: string) => (BigInt(b) > BigInt(a) ? b : a);
  let ids: string[] = [];
  let latest = payload.historyId;
  let resync = typeof stored !== 'string';
  if (typeof stored === 'string') {
    try {
      let page: string | undefined;
      do {
        const h = await client.history(user, stored, page);
        ids.push(...h.messageIds);
        latest = later(latest, h.historyId);
        page = h.nextPageToken;
      } while (page);
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
      resync = true;
    }
  }
  if (resync) {
    ids = [];
    // Where the history starts again: read before the list, so nothing falls between the two.
    latest = later(latest, await client.profileHistoryId(user));
    let pageToken: string | undefined;
    do {
      const page = await client.listMessages(user, {
        q: 'newer_than:7d',
        maxResults: 500,
        ...(pageToken ? { pageToken } : {}),
      });
      ids.push(...page.ids);
      pageToken = page.nextPageToken;
    } while (pageToken);
  }
  const fresh = await withTenant(deps.pool, tenantId, (tx) => unrecordedMessages(tx, mailboxId, ids));
  await withTenant(deps.pool, tenantId, async (tx) => {
    for (const inboundId of await recordProviderMessages(tx, mailboxId, 'gmail', fresh, {
      historyId: latest,
    }))
      await send(processInboundJob, { tenantId, inboundId }, { tx });
    // Only ever forward: two pushes handled out of order must not move the cursor back.
    await tx.query(
      `UPDATE mailboxes SET state = state || jsonb_build_object('gmail', coalesce(state->'gmail', '{}')
              || jsonb_build_object('historyId', $3::text, 'lastSyncAt', now()))
        WHERE tenant_id = $1 AND id = $2
          AND (state->'gmail'->>'historyId' IS NULL OR (state->'gmail'->>'historyId')::numeric < $3::numeric)`,
      [tenantId, mailboxId, latest],
    );
  });
  return { enqueued: fresh.length, resync };
}
