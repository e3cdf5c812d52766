// The inbound module's jobs by name and payload (ids only, never message bodies). Whoever enqueues
// them imports these; jobs.ts defines what runs them.
import { jobRef } from '../../platform/queue/registry.ts';

export interface ProcessInboundPayload {
  tenantId: string;
  inboundId: string;
}

export const processInboundJob = jobRef<ProcessInboundPayload>('inbound.process');

export interface MailboxLifecyclePayload {
  tenantId: string;
  mailboxId: string;
  /** reauthorizationRequired, subscriptionRemoved or missed. */
  event: string;
  subscriptionId: string | null;
}

/** A provider said something about a subscription; subscription upkeep acts on it. */
export const mailboxLifecycleJob = jobRef<MailboxLifecyclePayload>('mailbox.lifecycle');

export interface GmailHistoryPayload {
  tenantId: string;
  mailboxId: string;
  /** The history id the push announced (the mailbox's state after the change). */
  historyId: string;
}

/** A Gmail push: list what was added since the last history id, one inbound pointer per message. */
export const gmailHistoryJob = jobRef<GmailHistoryPayload>('gmail.history');

export interface MailboxRenewPayload {
  tenantId: string;
  mailboxId: string;
  /** The claim this renewal holds (mailbox_health.claim_id); it acts only while it is the current one. */
  claimId: string;
}

/** Renew (or make) a mailbox's provider subscription or watch (upkeep.ts). */
export const mailboxRenewJob = jobRef<MailboxRenewPayload>('mailbox.renew');

/** Look for mail a webhook missed (Graph delta, Gmail history, IMAP UIDs). */
export const mailboxReconcileJob = jobRef<{ tenantId: string; mailboxId: string }>('mailbox.reconcile');

export interface TicketOpenedByMailPayload {
  tenantId: string;
  ticketId: string;
  /** The message that opened it. */
  ticketMessageId: string;
  mailboxId: string;
}

/**
 * Mail opened a ticket in a mailbox that acknowledges new tickets (outbound settings): queued with
 * the ticket, handled by the outbound module, which decides whether and what to send.
 */
export const ticketOpenedByMailJob = jobRef<TicketOpenedByMailPayload>('mail.acknowledge');

export interface DeliveryReportPayload {
  tenantId: string;
  /** The Message-ID (normalised, without brackets) of our mail that the report is about. */
  rfcMessageId: string;
  /** The inbound record of the report. */
  inboundId: string;
}

/**
 * A delivery-status report (bounce) for mail we sent came in; the outbound module reads what it says
 * of each recipient (delivery-reports.ts readDeliveryReport, from the record's kept original) and
 * marks the attempt.
 */
export const deliveryReportJob = jobRef<DeliveryReportPayload>('mail.delivery-report');
