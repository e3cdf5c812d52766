// Ingress for raw messages (API upload, CLI, SMTP later): the bytes are stored as a blob first,
// then an inbound record and a pointer job are committed together. Only then is the message
// accepted (202): nothing acknowledged can be lost.
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withTenant } from '../../platform/db/tx.ts';
import { sha256 } from '../../platform/crypto.ts';
import { storeBlobs } from '../blobs/service.ts';
import { uuidv7 } from '../../platform/ids.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import { notFound } from '../../platform/errors.ts';
import { offerRawMessage } from './handoff.ts';
import { processInboundJob } from './job-refs.ts';

export interface AcceptedMessage {
  inboundId: string;
  status: 'queued';
}

interface PendingAccept {
  tenantId: string;
  mailboxId: string;
  raw: Buffer;
  source: 'mime' | 'imap';
  hash: Buffer;
  inboundId: string;
  resolve: (accepted: AcceptedMessage) => void;
  reject: (err: unknown) => void;
}

// Group commit: messages that arrive while earlier ones are being committed wait and are then
// written together, one transaction for all of them (per tenant). Each caller still learns of its
// message only after that transaction committed. Under load that is a handful of messages per
// transaction: one statement for their blobs and records, one for their jobs, one commit.
const MAX_IN_FLIGHT = 2;
const MAX_BATCH = 32;
const MAX_BATCH_BYTES = 32 * 1024 * 1024;

class AcceptBatcher {
  private readonly pool: Pool;
  private readonly queue: JobQueue;
  private readonly waiting = new Map<string, PendingAccept[]>();
  private inFlight = 0;

  constructor(pool: Pool, queue: JobQueue) {
    this.pool = pool;
    this.queue = queue;
  }

  add(pending: PendingAccept): void {
    const list = this.waiting.get(pending.tenantId);
    if (list) list.push(pending);
    else this.waiting.set(pending.tenantId, [pending]);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < MAX_IN_FLIGHT && this.waiting.size > 0) {
      const [tenantId, list] = this.waiting.entries().next().value!;
      let bytes = 0;
      let n = 0;
      while (n < list.length && n < MAX_BATCH && (n === 0 || bytes + list[n]!.raw.length <= MAX_BATCH_BYTES))
        bytes += list[n++]!.raw.length;
      const batch = list.splice(0, n);
      if (list.length === 0) this.waiting.delete(tenantId);
      this.inFlight++;
      void this.flush(tenantId, batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async flush(tenantId: string, batch: PendingAccept[]): Promise<void> {
    let stored: Set<string>;
    try {
      stored = await withTenant(this.pool, tenantId, async (tx) => {
        const ids = await insertRecords(tx, batch);
        // A mailbox gone meanwhile: nothing of this batch is kept (no blob left behind); each
        // message again on its own, and the one whose mailbox is gone is refused.
        if (ids.size < batch.length)
          throw batch.length > 1 ? new Error('a mailbox of the batch is gone') : notFound('mailbox');
        const jobs = batch.filter((p) => ids.has(p.inboundId));
        if (jobs.length > 0)
          await this.queue.sendMany(
            processInboundJob,
            jobs.map((p) => ({ tenantId, inboundId: p.inboundId })),
            { tx },
          );
        return ids;
      });
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // Whatever failed, it fails only the message it belongs to: each again on its own.
      await Promise.all(batch.map((p) => this.flush(tenantId, [p])));
      return;
    }
    for (const p of batch) {
      if (!stored.has(p.inboundId)) {
        p.reject(notFound('mailbox'));
        continue;
      }
      offerRawMessage(tenantId, p.hash, p.raw);
      p.resolve({ inboundId: p.inboundId, status: 'queued' });
    }
  }
}

/**
 * Writes the blobs and inbound records of the messages; returns their inbound ids. A message whose
 * mailbox is gone gets no record: the caller then rolls the whole batch back (so no blob is left
 * behind) and tries each message alone.
 */
async function insertRecords(tx: TenantTx, batch: PendingAccept[]): Promise<Set<string>> {
  // The blobs and the records go out together (pipelined). A message sent twice in one batch is
  // one blob: storeBlobs stores each content once.
  const { stored } = storeBlobs(
    tx,
    batch.map((p) => ({ content: p.raw, hash: p.hash })),
  );
  const inserted = tx.query<{ id: string }>(
    `INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer, blob_sha256)
     SELECT $1, x.id, x.mailbox_id, x.source, jsonb_build_object('blob', encode(x.sha256, 'hex')), x.sha256
       FROM unnest($2::uuid[], $3::uuid[], $4::bytea[], $5::text[]) AS x(id, mailbox_id, sha256, source)
      WHERE EXISTS (SELECT 1 FROM mailboxes m WHERE m.tenant_id = $1 AND m.id = x.mailbox_id)
     RETURNING id`,
    [
      tx.tenantId,
      batch.map((p) => p.inboundId),
      batch.map((p) => p.mailboxId),
      batch.map((p) => p.hash),
      batch.map((p) => p.source),
    ],
  );
  const [, { rows }] = await Promise.all([stored, inserted]);
  return new Set(rows.map((r) => r.id));
}

const batchers = new WeakMap<Pool, WeakMap<JobQueue, AcceptBatcher>>();

/**
 * Stores a raw message for a mailbox and enqueues its processing, in one transaction (shared with
 * the other messages arriving at that moment: group commit). Resolves once it committed; after the
 * commit the bytes are also offered to this process's workers (handoff.ts), which spares them
 * reading the blob back.
 */
export function acceptRawMessage(
  pool: Pool,
  queue: JobQueue,
  input: { tenantId: string; mailboxId: string; raw: Buffer; source?: 'mime' | 'imap' },
): Promise<AcceptedMessage> {
  let byQueue = batchers.get(pool);
  if (!byQueue) batchers.set(pool, (byQueue = new WeakMap()));
  let batcher = byQueue.get(queue);
  if (!batcher) byQueue.set(queue, (batcher = new AcceptBatcher(pool, queue)));
  const accepter = batcher;
  return new Promise((resolve, reject) =>
    accepter.add({
      tenantId: input.tenantId,
      mailboxId: input.mailboxId,
      raw: input.raw,
      source: input.source ?? 'mime',
      hash: sha256(input.raw),
      inboundId: uuidv7(),
      resolve,
      reject,
    }),
  );
}
