// Acknowledgements of tickets opened by mail (a mailbox setting, off by default), in the spirit of
// RFC 3834: never to automatic mail or bounces, never to our own addresses, at most
// `automaticPerRecipientPerHour` automatic mails to one address per hour, at most one per ticket.
// Every suppression is a `skipped` row of the ledger with its reason.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { AppError } from '../../platform/errors.ts';
import type { JobContext } from '../../platform/queue/registry.ts';
import type { TicketOpenedByMailPayload } from '../inbound/job-refs.ts';
import { getMailbox, isOwnAddress, mailboxAddresses } from '../inbound/mailboxes.ts';
import { getPerson, normalizeEmail } from '../people/service.ts';
import { getMessage } from '../tickets/messages.ts';
import { getTicket } from '../tickets/queries.ts';
import { outboundSendJob } from './job-refs.ts';
import { alreadyAcknowledged, automaticMailsSince, queueDelivery, recordSkipped } from './ledger.ts';
import type { EmailPayload } from './model.ts';
import { newMessageId, replySubject, replyToAddress } from './replies.ts';
import { defaultTemplate, getTemplate, renderForSending, ticketVariables } from './templates.ts';

export interface AcknowledgeDeps {
  pool: Pool;
  clock: Clock;
  messageIdKey: Buffer;
}

/** Decides and queues (or records as skipped) the acknowledgement of a ticket opened by mail. */
export async function acknowledgeTicket(
  deps: AcknowledgeDeps,
  payload: TicketOpenedByMailPayload,
  ctx: Pick<JobContext, 'send'>,
): Promise<Record<string, unknown>> {
  return withTenant(deps.pool, payload.tenantId, async (tx) => {
    const mailbox = await getMailbox(tx, payload.mailboxId);
    const settings = mailbox.settings.outbound;
    if (!settings.acknowledge) return { skipped: 'disabled' };
    const ticket = await getTicket(tx, payload.ticketId);
    const message = await getMessage(tx, payload.ticketMessageId);
    const requester = await getPerson(tx, ticket.requesterId);
    const address = normalizeEmail(message.mail?.from ?? requester.email ?? '');
    // One decision per address at a time: concurrent acknowledgements cannot both pass the cap.
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`ack|${tx.tenantId}|${address}`]);
    if (await alreadyAcknowledged(tx, ticket.id)) return { skipped: 'already acknowledged' };
    const base = {
      channel: 'email' as const,
      purpose: 'acknowledgement' as const,
      destination: address,
      ticketId: ticket.id,
      ticketMessageId: null,
      mailboxId: mailbox.id,
    };
    const skip = async (reason: string) => {
      await recordSkipped(tx, { ...base, rfcMessageId: null, payload: {}, reason });
      return { skipped: reason };
    };
    const classification = message.mail?.classification ?? {};
    if (classification['bounce']) return skip('bounce');
    if (classification['automatic']) return skip('automatic');
    if (address === '') return skip('no_recipient');
    const own = await mailboxAddresses(tx);
    if (isOwnAddress(own, address)) return skip('own_address');
    const since = new Date(deps.clock.now().getTime() - 3_600_000);
    if ((await automaticMailsSince(tx, address, since)) >= settings.automaticPerRecipientPerHour)
      return skip('recipient_cap');

    // The mailbox's template if it is still there (and an acknowledgement), else the tenant's.
    const chosen = settings.acknowledgementTemplateId
      ? await getTemplate(tx, settings.acknowledgementTemplateId).catch((err: unknown) => {
          if (err instanceof AppError && err.code === 'not_found') return undefined;
          throw err;
        })
      : undefined;
    const template =
      chosen?.kind === 'acknowledgement' ? chosen : await defaultTemplate(tx, 'acknowledgement');
    const vars = await ticketVariables(tx, {
      ticketId: ticket.id,
      agentId: null,
      mailbox,
    });
    const rendered = renderForSending(template, 'acknowledgement', vars);
    const rfcMessageId = newMessageId(deps, tx.tenantId, ticket.id, mailbox);
    const mail: EmailPayload = {
      from: { address: mailbox.address, name: mailbox.displayName ?? '' },
      replyTo: replyToAddress(mailbox, ticket),
      to: [
        {
          address,
          name: requester.email && normalizeEmail(requester.email) === address ? requester.displayName : '',
        },
      ],
      cc: [],
      bcc: [],
      subject: replySubject(
        { ...ticket, subject: rendered.subject || ticket.subject },
        settings.subjectTag,
        '',
      ),
      text: rendered.text,
      html: rendered.html,
      inReplyTo: message.messageId ? `<${message.messageId}>` : null,
      references: message.messageId ? [`<${message.messageId}>`] : [],
      automatic: true,
    };
    const deliveryId = await queueDelivery(tx, { ...base, rfcMessageId, payload: mail });
    await ctx.send(outboundSendJob, { tenantId: tx.tenantId, deliveryId }, { tx });
    return { queued: deliveryId, ...(rendered.fallbackReason ? { fallback: rendered.fallbackReason } : {}) };
  });
}
