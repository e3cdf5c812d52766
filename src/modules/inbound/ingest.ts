// Ingress for raw messages (API upload, CLI, SMTP later): the bytes are stored as a blob first,
// then an inbound record and a pointer job are committed together. Only then is the message
// accepted (202): nothing acknowledged can be lost.
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withTenant } from '../../platform/db/tx.ts';
import { sha256 } from '../../platform/crypto.ts';
import { uuidv7 } from '../../platform/ids.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import { getMailbox } from './mailboxes.ts';
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

/** Stores a raw message for a mailbox and enqueues its processing, in one transaction. */
export async function acceptRawMessage(
  pool: Pool,
  queue: JobQueue,
  input: { tenantId: string; mailboxId: string; raw: Buffer; source?: 'mime' | 'imap' },
): Promise<AcceptedMessage> {
  return withTenant(pool, input.tenantId, async (tx) => {
    const mailbox = await getMailbox(tx, input.mailboxId);
    const hash = await storeBlob(tx, input.raw);
    const inboundId = uuidv7();
    await tx.query(
      `INSERT INTO inbound_messages (tenant_id, id, mailbox_id, source, pointer, blob_sha256)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        tx.tenantId,
        inboundId,
        mailbox.id,
        input.source ?? 'mime',
        JSON.stringify({ blob: hash.toString('hex') }),
        hash,
      ],
    );
    await queue.send(processInboundJob, { tenantId: tx.tenantId, inboundId }, { tx });
    return { inboundId, status: 'queued' };
  });
}
