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

/**
 * Stores a raw message for a mailbox and enqueues its processing, in one transaction: one statement
 * checks the mailbox and writes the blob and the inbound record, one enqueues the pointer. After the
 * commit the bytes are also offered to this process's workers (handoff.ts), which spares them
 * reading the blob back.
 */
export async function acceptRawMessage(
  pool: Pool,
  queue: JobQueue,
  input: { tenantId: string; mailboxId: string; raw: Buffer; source?: 'mime' | 'imap' },
): Promise<AcceptedMessage> {
  const hash = sha256(input.raw);
  const accepted = await withTenant(pool, input.tenantId, async (tx) => {
    const inboundId = uuidv7();
    const { rows } = await tx.query<{ id: string }>(
      `WITH mailbox AS (SELECT id FROM mailboxes WHERE tenant_id = $1 AND id = $2),
       blob AS (
         INSERT INTO blobs (tenant_id, sha256, size, content) SELECT $1, $4, $5, $6 FROM mailbox
         ON CONFLICT (tenant_id, sha256) DO NOTHING
       )
       INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer, blob_sha256)
       SELECT $1, $3, mailbox.id, $7, jsonb_build_object('blob', $8::text), $4 FROM mailbox
       RETURNING id`,
      [
        tx.tenantId,
        input.mailboxId,
        inboundId,
        hash,
        input.raw.length,
        input.raw,
        input.source ?? 'mime',
        hash.toString('hex'),
      ],
    );
    if (!rows[0]) throw notFound('mailbox');
    await queue.send(processInboundJob, { tenantId: tx.tenantId, inboundId }, { tx });
    return { inboundId, status: 'queued' as const };
  });
  offerRawMessage(input.tenantId, hash, input.raw);
  return accepted;
}
