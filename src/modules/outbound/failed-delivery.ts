// An attempt of the ledger that will not reach its destination (a terminal failure on any channel,
// a bounce) is told of as a `delivery.failed` event, in the transaction that records it, for the
// tenant's notification rules.
import type { TenantTx } from '../../platform/db/tx.ts';
import { recordEvent } from '../events/events.ts';
import type { DeliveryErrorCode, DeliveryRow } from './model.ts';

/**
 * Records `delivery.failed` for the attempt. `about`: the event a notification told of (null for
 * an agent's reply or an acknowledgement). Nothing for one that itself told of a failed delivery: a
 * failing destination would otherwise be told about itself, again and again.
 */
export async function tellDeliveryFailed(
  tx: TenantTx,
  row: DeliveryRow,
  failure: { errorCode: DeliveryErrorCode; errorMessage: string; about: string | null },
): Promise<void> {
  if (failure.about === 'delivery.failed') return;
  await recordEvent(tx, {
    type: 'delivery.failed',
    ticketId: row.ticket_id,
    data: {
      deliveryId: row.id,
      channel: row.channel,
      purpose: row.purpose,
      destination: row.destination,
      errorCode: failure.errorCode,
      error: failure.errorMessage.slice(0, 300),
      about: failure.about,
    },
  });
}

/** What an email attempt told of: a notification mail names its event in the payload. */
export const mailAbout = (row: DeliveryRow): string | null =>
  typeof row.payload['about'] === 'string' ? row.payload['about'] : null;
