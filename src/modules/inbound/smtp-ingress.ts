// Mail in over SMTP (`relaydesk start --smtp-port N`): how an installation receives mail forwarded
// from any provider or MTA. It accepts mail only for the addresses of the tenants' mailboxes (any
// other RCPT TO is refused with 550), stores the raw message and its pointer job exactly like the
// MIME API (acceptRawMessage), and answers 250 only after that commit; when the database cannot be
// reached it answers 451, so the sending MTA keeps the message and tries again.
//
// An address belongs to one mailbox. Tenants choose their mailboxes' addresses, so two tenants may
// name the same one: such an address is refused (550) rather than delivered to either, since
// delivering to both would let one tenant read mail meant for another. A `+tag` (support+T-12@…,
// the plus-addressed Reply-To of outbound mail) reaches the mailbox of the address without it.
import { readFile } from 'node:fs/promises';
import { SMTPServer, type SMTPServerAddress, type SMTPServerSession } from 'smtp-server';
import type { Pool } from '../../platform/db/pool.ts';
import { withSystemRead } from '../../platform/db/tx.ts';
import { AppError, isDatabaseUnavailable } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logging.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import { normalizeEmail } from '../people/service.ts';
import { acceptRawMessage } from './ingest.ts';
import { resolveSettings } from './mailboxes.ts';

/** The largest message any mailbox may take (maxMessageBytes' upper bound): what SIZE advertises. */
export const SMTP_MAX_BYTES = 100 * 1024 * 1024;
/** Recipients taken per message (RFC 5321 §4.5.3.1.8 asks servers to take at least 100). */
const MAX_RECIPIENTS = 100;

export interface SmtpIngressOptions {
  pool: Pool;
  queue: JobQueue;
  logger: Logger;
  host: string;
  port: number;
  /** PEM files of a certificate and its key: STARTTLS is offered only with them. */
  tls?: { certFile: string; keyFile: string } | undefined;
  /** The name the server greets with. */
  name?: string;
}

interface Recipient {
  tenantId: string;
  mailboxId: string;
  maxMessageBytes: number;
}

/** Error with the SMTP reply code smtp-server answers with. */
function reply(code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code });
}

/** The mailbox an address reaches: undefined when none, or when more than one tenant names it. */
async function mailboxFor(pool: Pool, address: string): Promise<Recipient | 'ambiguous' | undefined> {
  const normalized = normalizeEmail(address);
  const at = normalized.lastIndexOf('@');
  const local = normalized.slice(0, at);
  const plus = local.indexOf('+');
  const candidates = plus > 0 ? [normalized, `${local.slice(0, plus)}${normalized.slice(at)}`] : [normalized];
  // The mailbox by address alone, across tenants: the envelope is all the sender says.
  const { rows } = await withSystemRead(pool, (sys) =>
    sys.query<{
      tenant_id: string;
      id: string;
      settings: Record<string, unknown>;
      address_normalized: string;
    }>(
      'SELECT tenant_id, id, settings, address_normalized FROM mailboxes WHERE address_normalized = ANY($1::text[])',
      [candidates],
    ),
  );
  // The exact address first; its plus-less form only when no mailbox has the exact one. Both forms
  // must belong to one tenant: a tenant that names another's plus address (support+T-12@ of a
  // tenant whose replies carry it) must not receive the answers to the other's tickets.
  if (new Set(rows.map((r) => r.tenant_id)).size > 1) return 'ambiguous';
  const exact = rows.filter((r) => r.address_normalized === normalized);
  const found = exact.length > 0 ? exact : rows;
  if (found.length === 0) return undefined;
  if (found.length > 1) return 'ambiguous';
  return {
    tenantId: found[0]!.tenant_id,
    mailboxId: found[0]!.id,
    maxMessageBytes: resolveSettings(found[0]!.settings).maxMessageBytes,
  };
}

export interface SmtpIngress {
  /** host:port it listens on. */
  address: { host: string; port: number };
  close(): Promise<void>;
}

export async function startSmtpIngress(options: SmtpIngressOptions): Promise<SmtpIngress> {
  const { pool, queue, logger } = options;
  const recipients = new WeakMap<SMTPServerSession, Recipient[]>();
  const tls = options.tls
    ? { cert: await readFile(options.tls.certFile), key: await readFile(options.tls.keyFile) }
    : undefined;

  const server = new SMTPServer({
    name: options.name ?? 'relaydesk',
    banner: 'Relaydesk mail ingress',
    size: SMTP_MAX_BYTES,
    authOptional: true,
    disabledCommands: tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    ...(tls ? { key: tls.key, cert: tls.cert } : {}),
    logger: false,
    // Bounded: connections at once, and how long a silent one is kept.
    maxClients: 200,
    socketTimeout: 120_000,
    onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void) {
      void (async () => {
        const list = recipients.get(session) ?? [];
        if (list.length >= MAX_RECIPIENTS) throw reply(452, 'Too many recipients');
        const found = await mailboxFor(pool, address.address);
        if (found === undefined) throw reply(550, `No mailbox here for <${address.address}>`);
        if (found === 'ambiguous')
          throw reply(550, `<${address.address}> names more than one mailbox here; refused`);
        // A declared size over this mailbox's limit is refused before the data is sent.
        const declared = Number(
          session.envelope.mailFrom && (session.envelope.mailFrom.args as Record<string, string>)['SIZE'],
        );
        if (Number.isFinite(declared) && declared > found.maxMessageBytes)
          throw reply(
            552,
            `Message size exceeds the limit of <${address.address}> (${found.maxMessageBytes} bytes)`,
          );
        if (!list.some((r) => r.mailboxId === found.mailboxId)) list.push(found);
        recipients.set(session, list);
      })().then(
        () => callback(),
        (err: Error & { responseCode?: number }) => {
          if (err.responseCode) return callback(err);
          logger.warn({ err }, 'SMTP ingress: looking up a recipient failed');
          callback(reply(451, 'Temporary failure looking up the recipient; try again later'));
        },
      );
    },
    onData(stream, session, callback) {
      // Kept only up to the largest message a recipient takes; past it the rest is read and dropped
      // (smtp-server goes on emitting), so a client streaming without end holds no memory.
      const limit = Math.min(
        SMTP_MAX_BYTES,
        Math.max(0, ...(recipients.get(session) ?? []).map((r) => r.maxMessageBytes)),
      );
      const chunks: Buffer[] = [];
      let kept = 0;
      let over = false;
      stream.on('data', (chunk: Buffer) => {
        if (over) return;
        kept += chunk.length;
        if (kept > limit) {
          over = true;
          chunks.length = 0;
        } else chunks.push(chunk);
      });
      stream.on('end', () => {
        void (async () => {
          // smtp-server stops reading past `size` and says so here.
          if ((stream as unknown as { sizeExceeded?: boolean }).sizeExceeded || over)
            throw reply(552, `Message exceeds the recipient mailbox's limit of ${limit} bytes`);
          const raw = Buffer.concat(chunks);
          const list = recipients.get(session) ?? [];
          const tooLarge = list.find((r) => raw.length > r.maxMessageBytes);
          if (tooLarge)
            throw reply(
              552,
              `Message exceeds the recipient mailbox's limit of ${tooLarge.maxMessageBytes} bytes`,
            );
          // One record (and job) per recipient mailbox; 250 only when all are committed. After a
          // 451 the sender sends the whole message again: a copy stored already is then known by
          // inbound's duplicate check (the same Message-ID), never a second ticket.
          const results = await Promise.allSettled(
            list.map((r) =>
              acceptRawMessage(pool, queue, { tenantId: r.tenantId, mailboxId: r.mailboxId, raw }),
            ),
          );
          const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
          const gone = (err: Error) => err instanceof AppError && err.code === 'not_found';
          const other = failures.find((err) => !gone(err));
          if (other) throw other;
          // A mailbox removed since RCPT TO takes nothing more, and trying again would not change
          // that: refused for good when it was the only one, else the others have it.
          if (failures.length > 0 && failures.length === results.length)
            throw reply(550, 'The recipient mailbox no longer exists');
        })().then(
          () => {
            recipients.delete(session);
            callback(null, 'Message accepted');
          },
          (err: Error & { responseCode?: number }) => {
            recipients.delete(session);
            if (err.responseCode) return callback(err);
            if (!isDatabaseUnavailable(err)) logger.warn({ err }, 'SMTP ingress: storing a message failed');
            callback(reply(451, 'Temporary failure storing the message; try again later'));
          },
        );
      });
    },
    onMailFrom(_address, session, callback) {
      // A new transaction on the same connection starts with no recipients.
      recipients.delete(session);
      callback();
    },
  });
  server.on('error', (err) => logger.warn({ err }, 'SMTP ingress error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.server.address();
  const port = typeof bound === 'object' && bound ? bound.port : options.port;
  logger.info({ host: options.host, port, starttls: Boolean(tls) }, 'SMTP ingress listening');
  return {
    address: { host: options.host, port },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
