// Mail that will not reach its recipient (a terminal failure, a bounce) is told of as a
// `delivery.failed` event, in the transaction that records it, for the tenant's notification rules.
import type { TenantTx } from '../../platform/db/tx.ts';
import { recordEvent } from '../events/events.ts';
import type { DeliveryErrorCode, DeliveryRow } from './model.ts';

/**
 * Records `delivery.failed` for the attempt, except for mail that itself tells of a failed delivery:
 * a failing address would otherwise be written to about itself, again and again.
 */
export async function tellMailFailed(
  tx: TenantTx,
  row: DeliveryRow,
  failure: { errorCode: DeliveryErrorCode; errorMessage: string },
): Promise<void> {
  if (row.payload['about'] === 'delivery.failed') return;
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
    },
  });
}
