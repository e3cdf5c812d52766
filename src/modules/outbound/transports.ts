// How mail leaves a mailbox, by its kind: SMTP through nodemailer's pooled transport (IMAP and MIME
// mailboxes, settings.smtp and credentials.smtpPassword), Microsoft Graph, Gmail. Every failure is
// classified once, here, into the ledger's taxonomy.
import { createHash } from 'node:crypto';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import type { Clock } from '../../platform/clock.ts';
import type { Config } from '../../platform/config.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withTenantRead } from '../../platform/db/tx.ts';
import {
  AuthExpired,
  NotFound,
  ProviderError,
  RateLimited,
  Transient,
} from '../../platform/provider-errors.ts';
import { type Mailbox, mailboxCredentials } from '../inbound/mailboxes.ts';
import { gmailClientFor, graphClientFor, providerUser } from '../inbound/providers/clients.ts';
import { composeMail, envelopeRecipients, type OutboundAttachment } from './compose.ts';
import type { DeliveryErrorCode, EmailPayload } from './model.ts';

export interface SendResult {
  providerMessageId: string | null;
  providerResponse: string | null;
  requestId: string | null;
  /** Recipients refused while the mail was taken for the others (SMTP), with the server's answers. */
  refused?: string | undefined;
}

/** A classified failure of a send. */
export class DeliveryError extends Error {
  readonly code: DeliveryErrorCode;
  readonly retryable: boolean;
  readonly retryAfterSeconds: number | undefined;
  readonly requestId: string | null;
  /**
   * The provider may have taken the mail before the failure (a lost connection mid-session, a
   * timeout or 5xx of a send call): another attempt could deliver it twice.
   */
  readonly ambiguous: boolean;
  constructor(
    code: DeliveryErrorCode,
    message: string,
    options: {
      retryAfterSeconds?: number;
      requestId?: string | null;
      cause?: unknown;
      ambiguous?: boolean;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DeliveryError';
    this.code = code;
    this.retryable = code === 'throttled' || code === 'transient';
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.requestId = options.requestId ?? null;
    this.ambiguous = options.ambiguous ?? false;
  }
}

interface SmtpFailure extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
}

/** An SMTP failure in the taxonomy: 4xx and lost connections retry, 5xx do not. */
export function classifySmtpError(err: SmtpFailure): DeliveryError {
  const status = err.responseCode;
  const text = err.response ?? err.message;
  if (err.code === 'EAUTH' || status === 530 || status === 534 || status === 535)
    return new DeliveryError('auth', `SMTP authentication failed: ${text}`, { cause: err });
  if (status !== undefined && status >= 500) {
    const recipient = /RCPT/i.test(err.command ?? '') || err.code === 'EENVELOPE';
    return new DeliveryError(recipient ? 'invalid_recipient' : 'permanent', `SMTP ${text}`, { cause: err });
  }
  if (status !== undefined && status >= 400)
    return new DeliveryError(
      /rate|too many|throttl/i.test(text) ? 'throttled' : 'transient',
      `SMTP ${text}`,
      {
        cause: err,
      },
    );
  if (
    err.code &&
    /^(ECONNECTION|ETIMEDOUT|ESOCKET|EDNS|ECONNREFUSED|ECONNRESET|EPIPE|ETLS|EPROTOCOL)$/.test(err.code)
  )
    return new DeliveryError('transient', `SMTP connection: ${err.message}`, { cause: err });
  if (err.code === 'EENVELOPE') return new DeliveryError('invalid_recipient', `SMTP ${text}`, { cause: err });
  return new DeliveryError('permanent', `SMTP ${text}`, { cause: err });
}

/** A provider API failure in the taxonomy. */
export function classifyProviderError(err: unknown): DeliveryError {
  if (err instanceof DeliveryError) return err;
  if (err instanceof RateLimited)
    return new DeliveryError('throttled', err.message, {
      retryAfterSeconds: err.retryAfterSeconds,
      cause: err,
    });
  if (err instanceof AuthExpired) return new DeliveryError('auth', err.message, { cause: err });
  if (err instanceof NotFound) return new DeliveryError('not_found', err.message, { cause: err });
  if (err instanceof Transient)
    return new DeliveryError('transient', err.message, { cause: err, ambiguous: true });
  if (err instanceof ProviderError)
    return new DeliveryError(
      /recipient|ErrorInvalidRecipients|invalid to header/i.test(err.message)
        ? 'invalid_recipient'
        : 'permanent',
      err.message,
      { cause: err },
    );
  return new DeliveryError('transient', (err as Error)?.message ?? String(err), { cause: err });
}

export interface TransportDeps {
  pool: Pool;
  secretKey: Buffer;
  clock: Clock;
  oauth?: Config['oauth'] | undefined;
}

export interface OutgoingMail {
  tenantId: string;
  mailbox: Mailbox;
  payload: EmailPayload;
  messageId: string;
  attachments: OutboundAttachment[];
}

const open = new Set<Transports>();

/** Closes the SMTP connections of every Transports made in this process (at stop). */
export function closeOutboundTransports(): void {
  for (const t of open) t.close();
}

/** SMTP transports kept open between sends, one pool per mailbox and configuration. */
export class Transports {
  private readonly smtp = new Map<
    string,
    { key: string; transporter: Transporter<SMTPPool.SentMessageInfo> }
  >();

  private readonly deps: TransportDeps;
  private readonly credentialCache = new Map<
    string,
    { value: Record<string, unknown> | null; until: number }
  >();

  constructor(deps: TransportDeps) {
    this.deps = deps;
    open.add(this);
  }

  async send(mail: OutgoingMail): Promise<SendResult> {
    switch (mail.mailbox.kind) {
      case 'graph':
        return this.sendGraph(mail);
      case 'gmail':
        return this.sendGmail(mail);
      default:
        return this.sendSmtp(mail);
    }
  }

  /**
   * Whether a send whose outcome is unknown (the process stopped after it began) reached the
   * provider: Graph and Gmail can be asked by Message-ID; an SMTP server cannot (undefined).
   */
  async wasSent(mail: {
    tenantId: string;
    mailbox: Mailbox;
    messageId: string;
  }): Promise<boolean | undefined> {
    try {
      if (mail.mailbox.kind === 'graph') {
        const client = await graphClientFor(this.deps, mail.tenantId, mail.mailbox);
        return await client.findSentByMessageId(providerUser(mail.mailbox, 'graph'), `<${mail.messageId}>`);
      }
      if (mail.mailbox.kind === 'gmail') {
        const client = await gmailClientFor(this.deps, mail.tenantId, mail.mailbox);
        return await client.findSentByMessageId(providerUser(mail.mailbox, 'gmail'), mail.messageId);
      }
    } catch {
      return undefined;
    }
    return undefined;
  }

  private async sendGraph(mail: OutgoingMail): Promise<SendResult> {
    const raw = await this.compose(mail, true);
    try {
      const client = await graphClientFor(this.deps, mail.tenantId, mail.mailbox);
      const { requestId } = await client.sendMime(providerUser(mail.mailbox, 'graph'), raw);
      return { providerMessageId: null, providerResponse: '202 Accepted', requestId };
    } catch (err) {
      throw classifyProviderError(err);
    }
  }

  private async sendGmail(mail: OutgoingMail): Promise<SendResult> {
    const raw = await this.compose(mail, true);
    try {
      const client = await gmailClientFor(this.deps, mail.tenantId, mail.mailbox);
      const sent = await client.sendRaw(providerUser(mail.mailbox, 'gmail'), raw);
      return { providerMessageId: sent.id, providerResponse: `thread ${sent.threadId}`, requestId: null };
    } catch (err) {
      throw classifyProviderError(err);
    }
  }

  private async compose(mail: OutgoingMail, keepBcc: boolean): Promise<Buffer> {
    try {
      return await composeMail(mail.payload, {
        messageId: mail.messageId,
        date: this.deps.clock.now(),
        attachments: mail.attachments,
        keepBcc,
      });
    } catch (err) {
      // The same mail will never build: not worth another attempt.
      throw new DeliveryError('permanent', `the mail could not be composed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  private async sendSmtp(mail: OutgoingMail): Promise<SendResult> {
    const settings = mail.mailbox.settings.smtp;
    if (!settings)
      throw new DeliveryError(
        'permanent',
        `the mailbox ${mail.mailbox.address} has no SMTP server to send through (settings.smtp)`,
      );
    const credentials = await this.credentials(mail.tenantId, mail.mailbox);
    const password =
      typeof credentials?.['smtpPassword'] === 'string' ? credentials['smtpPassword'] : undefined;
    if (settings.username && !password)
      throw new DeliveryError('auth', `the mailbox ${mail.mailbox.address} has no credentials.smtpPassword`);
    const transporter = this.smtpTransport(mail.mailbox, password);
    const raw = await this.compose(mail, false);
    try {
      const info = await transporter.sendMail({
        envelope: { from: mail.mailbox.address, to: envelopeRecipients(mail.payload) },
        raw,
      });
      const rejected = (info.rejected ?? []).map(String);
      const errors = (info as { rejectedErrors?: SmtpFailure[] }).rejectedErrors ?? [];
      const queuedAs = /queued as ([^\s]+)/i.exec(info.response ?? '')?.[1] ?? null;
      return {
        providerMessageId: queuedAs,
        providerResponse: info.response,
        requestId: null,
        refused:
          rejected.length > 0
            ? `the server refused ${rejected.join(', ')}: ${errors.map((e) => e.response ?? e.message).join('; ')}`
            : undefined,
      };
    } catch (err) {
      throw classifySmtpError(err as SmtpFailure);
    }
  }

  /**
   * The mailbox's credentials, kept for a minute while the mailbox is unchanged (a change of
   * credentials changes the mailbox's updatedAt, which the sender read fresh).
   */
  private async credentials(tenantId: string, mailbox: Mailbox): Promise<Record<string, unknown> | null> {
    const key = `${mailbox.id}|${mailbox.updatedAt}`;
    const cached = this.credentialCache.get(key);
    if (cached && cached.until > this.deps.clock.now().getTime()) return cached.value;
    const value = await withTenantRead(this.deps.pool, tenantId, (tx) =>
      mailboxCredentials(tx, this.deps.secretKey, mailbox.id),
    );
    if (this.credentialCache.size > 10_000) this.credentialCache.clear();
    this.credentialCache.set(key, { value, until: this.deps.clock.now().getTime() + 60_000 });
    return value;
  }

  private smtpTransport(
    mailbox: Mailbox,
    password: string | undefined,
  ): Transporter<SMTPPool.SentMessageInfo> {
    const s = mailbox.settings.smtp!;
    const key = createHash('sha256')
      .update(JSON.stringify([s, password ?? null]))
      .digest('hex');
    const existing = this.smtp.get(mailbox.id);
    if (existing?.key === key) return existing.transporter;
    existing?.transporter.close();
    const transporter = nodemailer.createTransport({
      pool: true,
      host: s.host,
      port: s.port,
      secure: s.security === 'tls',
      requireTLS: s.security === 'starttls',
      ignoreTLS: s.security === 'none',
      ...(s.username ? { auth: { user: s.username, pass: password ?? '' } } : {}),
      ...(s.ca ? { tls: { ca: s.ca } } : {}),
      maxConnections: 5,
      maxMessages: 1000,
      // The pool must not send a message again on its own when a connection drops: a next attempt
      // is the ledger's to make, visible, after its delay.
      maxRequeues: 0,
      connectionTimeout: 30_000,
      greetingTimeout: 30_000,
      socketTimeout: 60_000,
    });
    this.smtp.set(mailbox.id, { key, transporter });
    return transporter;
  }

  close(): void {
    for (const { transporter } of this.smtp.values()) transporter.close();
    this.smtp.clear();
    open.delete(this);
  }
}
