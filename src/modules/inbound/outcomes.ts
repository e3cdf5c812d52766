// What becomes of an inbound message: the statuses of its record and the outcome callers see.
export type InboundStatus =
  'queued' | 'processing' | 'created' | 'appended' | 'duplicate' | 'skipped' | 'failed' | 'quarantined';

/** Statuses after which a record is never processed again. */
export const FINAL_STATUSES: readonly InboundStatus[] = [
  'created',
  'appended',
  'duplicate',
  'skipped',
  'quarantined',
];

export interface Outcome {
  status: InboundStatus;
  reason: string | null;
  ticketId: string | null;
  ticketNumber: string | null;
}
