// Finding new mail in an IMAP folder: everything above the highest UID we recorded (everything,
// after a UIDVALIDITY change), enqueued as one pointer {uidValidity, uid} per message, in the same
// transaction that advances the recorded UID. The listener runs this on every change it hears of;
// a reconcile runs it on demand. Both may run at once, in different processes: the advance is a
// compare-and-set on the state they read, so a UID is enqueued by one of them only; the other finds
// the state moved, reads it again and searches again.
import type { ImapFlow } from 'imapflow';
import type { Pool } from '../../../../platform/db/pool.ts';
import { withTenant, withTenantRead } from '../../../../platform/db/tx.ts';
import { uuidv7 } from '../../../../platform/ids.ts';
import type { Logger } from '../../../../platform/logging.ts';
import type { JobContext } from '../../../../platform/queue/registry.ts';
import { processInboundJob } from '../../job-refs.ts';
import { StaleConnection, uidValidityOf } from './client.ts';

export interface EnqueueDeps {
  pool: Pool;
  /** Enqueues a job, in the given transaction (JobQueue.send or a job's ctx.send). */
  send: JobContext['send'];
  logger: Logger;
}

interface StoredPosition {
  /** As stored (null: never synced); compared as text so the compare-and-set is exact. */
  uidValidity: string | null;
  lastUid: string | null;
}

/** A compare-and-set that keeps losing means something else writes the state in a loop. */
const MAX_ROUNDS = 5;

/** Undefined when the mailbox is gone. */
async function storedPosition(
  pool: Pool,
  tenantId: string,
  mailboxId: string,
): Promise<StoredPosition | undefined> {
  const { rows } = await withTenantRead(pool, tenantId, (tx) =>
    tx.query<{ v: string | null; last: string | null }>(
      "SELECT state->'imap'->>'uidValidity' AS v, state->'imap'->>'lastUid' AS last FROM mailboxes WHERE tenant_id = $1 AND id = $2",
      [tenantId, mailboxId],
    ),
  );
  return rows[0] && { uidValidity: rows[0].v, lastUid: rows[0].last };
}

/**
 * Enqueues the messages of the client's selected folder above the recorded UID; answers how many.
 * The client must have the mailbox's folder selected. `reused`: a pooled connection that selected
 * it a while ago (a UIDVALIDITY other than the stored one then throws StaleConnection, see there).
 */
export async function enqueueNewMessages(
  deps: EnqueueDeps,
  tenantId: string,
  mailboxId: string,
  client: ImapFlow,
  options: { reused: boolean },
): Promise<number> {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const seen = await storedPosition(deps.pool, tenantId, mailboxId);
    if (!seen) return 0;
    const uidValidity = uidValidityOf(client);
    const sameValidity = seen.uidValidity === uidValidity;
    if (!sameValidity && seen.uidValidity !== null && options.reused) throw new StaleConnection();
    if (!sameValidity && seen.uidValidity && round === 0)
      deps.logger.warn(
        { mailboxId, was: seen.uidValidity, now: uidValidity },
        'UIDVALIDITY changed; rescanning the folder',
      );
    const lastUid = sameValidity ? Number(seen.lastUid ?? 0) : 0;
    // The server shows a connection mail that arrived since it selected the folder only after
    // syncing its view: a NOOP asks for that (a pooled connection may have waited a while).
    if (round === 0) await client.noop();
    // "n:*" always matches the highest message, even below n: filter.
    const found = (await client.search({ uid: `${lastUid + 1}:*` }, { uid: true })) || [];
    const uids = found.filter((u) => u > lastUid).sort((a, b) => a - b);
    if (uids.length === 0 && sameValidity) return 0;
    const committed = await withTenant(deps.pool, tenantId, async (tx) => {
      // First the advance: it takes the row's lock, so whoever else read the same position waits
      // here, then finds it moved (READ COMMITTED re-checks the condition on the new row).
      const { rowCount } = await tx.query(
        `UPDATE mailboxes SET state = state || jsonb_build_object('imap', coalesce(state->'imap', '{}')
                || jsonb_build_object('uidValidity', $3::text, 'lastUid', $4::bigint, 'lastSyncAt', now()))
          WHERE tenant_id = $1 AND id = $2
            AND state->'imap'->>'uidValidity' IS NOT DISTINCT FROM $5::text
            AND state->'imap'->>'lastUid' IS NOT DISTINCT FROM $6::text`,
        [
          tenantId,
          mailboxId,
          uidValidity,
          uids.length > 0 ? uids[uids.length - 1] : lastUid,
          seen.uidValidity,
          seen.lastUid,
        ],
      );
      if (rowCount !== 1) return false;
      for (const uid of uids) {
        const inboundId = uuidv7();
        await tx.query(
          `INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer) VALUES ($1, $2, $3, 'imap', $4)`,
          [tenantId, inboundId, mailboxId, JSON.stringify({ uidValidity, uid })],
        );
        await deps.send(processInboundJob, { tenantId, inboundId }, { tx });
      }
      return true;
    });
    if (committed) return uids.length;
  }
  throw new Error(`the IMAP position of mailbox ${mailboxId} kept changing under us`);
}
