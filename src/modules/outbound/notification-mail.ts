// Notifications by email: the notify module decides who hears of what; this writes the mail into the
// ledger (`queued`, purpose `notification`) with its send job, in the caller's transaction, through
// the mailbox of the ticket's conversation or else the tenant's first mailbox. It is automatic mail
// (Auto-Submitted), so a recipient's auto-reply does not answer it.
import type { TenantTx } from '../../platform/db/tx.ts';
import type { Queryable } from '../../platform/db/pool.ts';
import type { JobRef } from '../../platform/queue/registry.ts';
import { conversationMailbox, firstMailbox } from '../inbound/mailboxes.ts';
import { outboundSendJob } from './job-refs.ts';
import { queueDelivery, recordSkipped } from './ledger.ts';
import type { EmailPayload, MailAddress } from './model.ts';
import { newMessageId } from './replies.ts';

export interface NotificationMail {
  notificationId: string;
  ticketId: string | null;
  to: MailAddress;
  subject: string;
  text: string;
  html?: string | null | undefined;
  /** Held until then (quiet hours). */
  startAfter?: Date | undefined;
  /** The event type it tells of (a failure of mail about `delivery.failed` is not announced again). */
  about: string;
}

export interface NotificationMailDeps {
  messageIdKey: Buffer;
  send<Q extends object>(
    job: JobRef<Q>,
    payload: Q,
    options?: { startAfter?: Date; tx?: Queryable },
  ): Promise<string | null>;
}

/** Queues the mail and its send job; answers the ledger row's id (`skipped`, no_mailbox, when there is none). */
export async function queueNotificationMail(
  tx: TenantTx,
  deps: NotificationMailDeps,
  mail: NotificationMail,
): Promise<string> {
  const mailbox =
    (mail.ticketId ? await conversationMailbox(tx, mail.ticketId) : undefined) ?? (await firstMailbox(tx));
  const delivery = {
    channel: 'email' as const,
    purpose: 'notification' as const,
    destination: mail.to.address,
    ticketId: mail.ticketId,
    ticketMessageId: null,
    notificationId: mail.notificationId,
  };
  if (!mailbox)
    return recordSkipped(tx, {
      ...delivery,
      mailboxId: null,
      rfcMessageId: null,
      payload: {},
      reason: 'no_mailbox',
    });
  // Signed, but for no ticket: an agent answering a notification must not land on the customer's
  // ticket as a public message (it comes in as mail from an agent, threaded by nothing).
  const rfcMessageId = newMessageId(deps, tx.tenantId, tx.tenantId, mailbox);
  const payload: EmailPayload = {
    from: { address: mailbox.address, name: mailbox.displayName ?? '' },
    replyTo: mailbox.address,
    to: [mail.to],
    cc: [],
    bcc: [],
    subject: mail.subject.replace(/[\r\n]+/g, ' ').slice(0, 998),
    text: mail.text,
    html: mail.html ?? null,
    inReplyTo: null,
    references: [],
    automatic: true,
    about: mail.about,
  };
  const deliveryId = await queueDelivery(tx, { ...delivery, mailboxId: mailbox.id, rfcMessageId, payload });
  await deps.send(
    outboundSendJob,
    { tenantId: tx.tenantId, deliveryId },
    { tx, ...(mail.startAfter ? { startAfter: mail.startAfter } : {}) },
  );
  return deliveryId;
}
