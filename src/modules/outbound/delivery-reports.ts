// Delivery-status reports of our mail (RFC 3464) that came back through inbound: the attempt that
// carried the reported Message-ID learns what the report says of the attempt's destination (its To
// address), and of no other recipient. A report says more than "failed": `delayed` means the
// recipient's server is still trying, `delivered` that it took the mail; and one mail has several
// recipients (To and Cc), each reported on in its own block. Reports that are no more than a
// plain-text bounce (many MTAs send nothing machine-readable) still mark the attempt bounced.
import type { Pool } from '../../platform/db/pool.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { readDeliveryReport, type RecipientStatus } from '../inbound/delivery-reports.ts';
import type { DeliveryReportPayload } from '../inbound/job-refs.ts';
import { mailAbout, tellDeliveryFailed } from './failed-delivery.ts';
import { markBounced, markDelivered, reportedAttempt } from './ledger.ts';
import type { DeliveryErrorCode } from './model.ts';

/** What a report means for the attempt whose destination is `destination`. */
export type ReportVerdict =
  | { verdict: 'bounced'; errorCode: DeliveryErrorCode; errorMessage: string }
  | { verdict: 'delivered' }
  | { verdict: 'unchanged'; reason: string };

/**
 * The error taxonomy of a failed recipient's status code (RFC 3463): 5.1.x is the address (bad
 * mailbox, bad domain, bad syntax), any other 5.x.x a permanent failure of another kind, and 4.x.x a
 * temporary condition that outlasted the reporting server's retries.
 */
export function bounceErrorCode(status: string | null): DeliveryErrorCode {
  if (status?.startsWith('5.1.')) return 'invalid_recipient';
  if (status?.startsWith('4.')) return 'transient';
  return 'permanent';
}

const sameAddress = (a: string | null, b: string) => a !== null && a.trim().toLowerCase() === b;

/**
 * Decides from the report's recipients (null: a bounce with nothing machine-readable to read):
 * bounced when it says the mail failed for the destination; delivered when it says the destination
 * took it; otherwise (delayed, relayed, expanded, or only other recipients named) nothing changes.
 * A recipient is the destination when its Final-Recipient or Original-Recipient is that address,
 * in any case.
 */
export function decideReport(
  destination: string,
  recipients: RecipientStatus[] | null,
  inboundId: string,
): ReportVerdict {
  if (recipients === null)
    // As before reports were read: a plain bounce quoting our Message-ID is taken as the
    // destination's, for want of anything saying otherwise.
    return {
      verdict: 'bounced',
      errorCode: 'invalid_recipient',
      errorMessage: `a bounce with no delivery status to read came back for this mail (inbound message ${inboundId})`,
    };
  const address = destination.trim().toLowerCase();
  const mine = recipients.filter(
    (r) => sameAddress(r.finalRecipient, address) || sameAddress(r.originalRecipient, address),
  );
  const failed = mine.find((r) => r.action === 'failed');
  if (failed) {
    const said = [
      failed.status ? `Status: ${failed.status}` : 'no status given',
      ...(failed.diagnostic ? [`Diagnostic-Code: ${failed.diagnostic}`] : []),
    ].join('; ');
    return {
      verdict: 'bounced',
      errorCode: bounceErrorCode(failed.status),
      errorMessage: `${said} (delivery-status report, inbound message ${inboundId})`,
    };
  }
  if (mine.some((r) => r.action === 'delivered')) return { verdict: 'delivered' };
  if (mine.length === 0) return { verdict: 'unchanged', reason: 'the report names other recipients only' };
  return { verdict: 'unchanged', reason: `the report says ${mine.map((r) => r.action).join(', ')}` };
}

/** Marks the attempt that carried the reported Message-ID as the report says (deliveryReportJob). */
export async function recordDeliveryReport(
  deps: { pool: Pool },
  payload: DeliveryReportPayload,
): Promise<Record<string, unknown>> {
  return withTenant(deps.pool, payload.tenantId, async (tx) => {
    const row = await reportedAttempt(tx, payload.rfcMessageId);
    if (!row) return { unchanged: 'no sent attempt carried this Message-ID' };
    const verdict = decideReport(
      row.destination,
      await readDeliveryReport(tx, payload.inboundId),
      payload.inboundId,
    );
    switch (verdict.verdict) {
      case 'bounced':
        if (!(await markBounced(tx, row, verdict))) return { unchanged: `the attempt is ${row.status}` };
        // A bounce is the end of the attempt's mail: told of like any terminal failure.
        await tellDeliveryFailed(tx, row, { ...verdict, about: mailAbout(row) });
        return { bounced: [row.id] };
      case 'delivered':
        if (!(await markDelivered(tx, row))) return { unchanged: `the attempt is ${row.status}` };
        return { delivered: [row.id] };
      case 'unchanged':
        return { unchanged: verdict.reason };
    }
  });
}
