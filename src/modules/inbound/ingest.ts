// Ingress for raw messages (API upload, CLI, SMTP later): the bytes are stored as a blob first,
// then an inbound record and a pointer job are committed together. Only then is the message
// accepted (202): nothing acknowledged can be lost.
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withTenant } from '../../platform/db/tx.ts';
import { sha256 } from '../../platform/crypto.ts';
import { uuidv7 } from '../../platform/ids.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import { notFound } from '../../platform/errors.ts';
import { offerRawMessage } from './handoff.ts';
import { processInboundJob } from './jobs.ts';

export async function storeBlob(tx: TenantTx, content: Buffer): Promise<Buffer> {
  const hash = sha256(content);
  await tx.query(
    `INSERT INTO blobs (tenant_id, sha256, size, content) VALUES ($1, $2, $3, $4)
     ON CONFLICT (tenant_id, sha256) DO NOTHING`,
    [tx.tenantId, hash, content.length, content],
  );
  return hash;
}

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

/** Writes the blobs and inbound records of messages whose mailbox exists; returns their inbound ids. */
async function insertRecords(tx: TenantTx, batch: PendingAccept[]): Promise<Set<string>> {
  // The contents go as binary parameters, each named once: the blobs are inserted straight from
  // their VALUES, filtered by a list of existing mailboxes computed once. (A CTE holding the contents
  // and read twice, or a DISTINCT ON over them, made PostgreSQL materialise and sort megabytes of
  // mail, spilling them to temporary files beyond work_mem.) A message sent twice in one batch is
  // one blob: ON CONFLICT DO NOTHING skips the second row before storing anything of it.
  const values: unknown[] = [tx.tenantId, [...new Set(batch.map((p) => p.mailboxId))]];
  const blobs: string[] = [];
  const records: string[] = [];
  for (const p of batch) {
    values.push(p.inboundId, p.mailboxId, p.hash, p.raw.length, p.raw, p.source);
    const n = values.length;
    blobs.push(`($${n - 4}::uuid, $${n - 3}::bytea, $${n - 2}::bigint, $${n - 1}::bytea)`);
    records.push(`($${n - 5}::uuid, $${n - 4}::uuid, $${n - 3}::bytea, $${n}::text)`);
  }
  const { rows: inserted } = await tx.query<{ id: string }>(
    `WITH mailbox AS (
       SELECT array_agg(m.id) AS ids FROM mailboxes m WHERE m.tenant_id = $1 AND m.id = ANY($2::uuid[])
     ), blob AS (
       INSERT INTO blobs (tenant_id, sha256, size, content)
       SELECT $1, b.sha256, b.size, b.content
         FROM (VALUES ${blobs.join(', ')}) AS b(mailbox_id, sha256, size, content)
        WHERE b.mailbox_id = ANY ((SELECT ids FROM mailbox)::uuid[])
       ON CONFLICT (tenant_id, sha256) DO NOTHING
     )
     INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer, blob_sha256)
     SELECT $1, x.id, x.mailbox_id, x.source, jsonb_build_object('blob', encode(x.sha256, 'hex')), x.sha256
       FROM (VALUES ${records.join(', ')}) AS x(id, mailbox_id, sha256, source)
      WHERE x.mailbox_id = ANY ((SELECT ids FROM mailbox)::uuid[])
     RETURNING id`,
    values,
  );
  return new Set(inserted.map((r) => r.id));
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
