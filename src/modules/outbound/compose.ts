// The MIME of an outbound mail, built by nodemailer's composer (never by hand) from the ledger
// row's payload and the ticket message's attachments.
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type { EmailPayload } from './model.ts';

export interface OutboundAttachment {
  filename: string;
  contentType: string;
  content: Buffer;
  contentId: string | null;
  inline: boolean;
}

/**
 * RFC 5322 bytes of the mail. `keepBcc`: carry the Bcc header, for providers that take the
 * recipients from the message (Graph, Gmail); SMTP gets them in the envelope instead.
 */
export function composeMail(
  payload: EmailPayload,
  input: { messageId: string; date: Date; attachments: OutboundAttachment[]; keepBcc: boolean },
): Promise<Buffer> {
  const composer = new MailComposer({
    from: payload.from,
    to: payload.to,
    cc: payload.cc,
    bcc: payload.bcc,
    replyTo: payload.replyTo,
    subject: payload.subject,
    text: payload.text,
    ...(payload.html ? { html: payload.html } : {}),
    messageId: `<${input.messageId}>`,
    date: input.date,
    ...(payload.inReplyTo ? { inReplyTo: payload.inReplyTo } : {}),
    ...(payload.references.length > 0 ? { references: payload.references } : {}),
    headers: payload.automatic
      ? {
          // RFC 3834: an acknowledgement answers a message (auto-replied); a notification answers
          // none (auto-generated).
          'Auto-Submitted': payload.about === undefined ? 'auto-replied' : 'auto-generated',
          'X-Auto-Response-Suppress': 'All',
        }
      : {},
    attachments: input.attachments.map((a) => ({
      filename: a.filename,
      content: a.content,
      contentType: a.contentType,
      contentDisposition: a.inline ? ('inline' as const) : ('attachment' as const),
      ...(a.contentId ? { cid: a.contentId.replace(/^<|>$/g, '') } : {}),
    })),
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  const node = composer.compile();
  node.keepBcc = input.keepBcc;
  return node.build();
}

/** Every address the mail goes to (the SMTP envelope). */
export const envelopeRecipients = (payload: EmailPayload): string[] => [
  ...new Set([...payload.to, ...payload.cc, ...payload.bcc].map((a) => a.address)),
];
