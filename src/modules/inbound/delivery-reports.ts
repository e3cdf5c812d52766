// What a delivery report that came in says, for the outbound module, which marks the attempts of
// our mail it reports on (its job, deliveryReportJob, names the report by its inbound record only).
import type { TenantTx } from '../../platform/db/tx.ts';
import { readBlobs } from '../blobs/service.ts';
import { parseDeliveryStatus, type RecipientStatus } from './delivery-status.ts';
import { deliveryStatusText } from './mime.ts';

export type { DsnAction, RecipientStatus } from './delivery-status.ts';

/**
 * The per-recipient statuses of the report an inbound record holds (its kept original), or null
 * when there are none to read: a bounce without a message/delivery-status part (many MTAs send
 * plain text), one whose part names no recipient with a known action, or a record without bytes.
 */
export async function readDeliveryReport(tx: TenantTx, inboundId: string): Promise<RecipientStatus[] | null> {
  const { rows } = await tx.query<{ blob_sha256: Buffer | null }>(
    'SELECT blob_sha256 FROM inbound_messages WHERE tenant_id = $1 AND id = $2',
    [tx.tenantId, inboundId],
  );
  const hash = rows[0]?.blob_sha256;
  if (!hash) return null;
  const raw = (await readBlobs(tx, [hash])).get(hash.toString('hex'));
  const text = raw === undefined ? undefined : deliveryStatusText(raw);
  if (text === undefined) return null;
  const recipients = parseDeliveryStatus(text);
  return recipients.length === 0 ? null : recipients;
}
