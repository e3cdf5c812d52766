// Consume: one job per inbound pointer. Fetch the bytes, parse, then in ONE transaction claim the
// message key, resolve the sender, thread, and write the ticket or comment with its attachments,
// participants and the inbound outcome (DESIGN §3.2, §3.4). A retry of a committed message finds
// its record final; another delivery of the same message finds the key taken (duplicate).
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withTenant } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';
import type { Logger } from '../../platform/logging.ts';
import { findOrCreateContact, findPersonIdByEmail, normalizeEmail } from '../people/service.ts';
import { scheduleSlaWake } from '../sla/scheduler.ts';
import { createTicket, recordStatusChange, type TicketStatus } from '../tickets/service.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import { acceptRawMessage, storeBlob } from './ingest.ts';
import { AuthExpired, NotFound, Permanent, RateLimited } from '../../platform/provider-errors.ts';
import { PermanentJobError } from '../../platform/queue/registry.ts';
import { type Mailbox, getMailbox, mailboxAddresses, mailboxCredentials } from './mailboxes.ts';
import { fetchImapMessage } from './providers/imap/listener.ts';
import { gmailClientFor, graphClientFor, providerUser } from './providers/clients.ts';
import {
  generatedKey,
  headerBlock,
  normalizeMessageId,
  type ParsedMessage,
  parseMessage,
  rawHeaders,
} from './mime.ts';
import { looksLikeOurMessageId } from './signing.ts';
import { findThread, ticketByMessageIds } from './thread.ts';

export type InboundStatus =
  'queued' | 'processing' | 'created' | 'appended' | 'duplicate' | 'skipped' | 'failed' | 'quarantined';
const FINAL: InboundStatus[] = ['created', 'appended', 'duplicate', 'skipped', 'quarantined'];

export interface Outcome {
  status: InboundStatus;
  reason: string | null;
  ticketId: string | null;
  ticketNumber: string | null;
}

export interface InboundDeps {
  pool: Pool;
  /** Key for Relaydesk's signed Message-IDs (signing.ts). */
  messageIdKey: Buffer;
  /** RELAYDESK_SECRET_KEY, to unseal provider credentials. */
  secretKey: Buffer;
  logger: Logger;
}

interface InboundRow {
  id: string;
  mailbox_id: string;
  source: string;
  pointer: Record<string, unknown>;
  blob_sha256: Buffer | null;
  status: InboundStatus;
  reason: string | null;
  ticket_id: string | null;
}

async function outcomeOf(
  tx: TenantTx,
  row: { status: InboundStatus; reason: string | null; ticket_id: string | null },
): Promise<Outcome> {
  let ticketNumber: string | null = null;
  if (row.ticket_id) {
    const { rows } = await tx.query<{ number: number }>(
      'SELECT number FROM tickets WHERE tenant_id = $1 AND id = $2',
      [tx.tenantId, row.ticket_id],
    );
    ticketNumber = rows[0] ? `T-${rows[0].number}` : null;
  }
  return { status: row.status, reason: row.reason, ticketId: row.ticket_id, ticketNumber };
}

async function finish(
  tx: TenantTx,
  inboundId: string,
  status: InboundStatus,
  reason: string | null,
  extra: { ticketId?: string | null; messageId?: string | null; key?: string | null } = {},
): Promise<Outcome> {
  await tx.query(
    `UPDATE inbound_messages SET status = $3, reason = $4, ticket_id = $5, ticket_message_id = $6,
            message_key = coalesce($7, message_key), updated_at = now()
      WHERE tenant_id = $1 AND id = $2`,
    [
      tx.tenantId,
      inboundId,
      status,
      reason,
      extra.ticketId ?? null,
      extra.messageId ?? null,
      extra.key ?? null,
    ],
  );
  return outcomeOf(tx, { status, reason, ticket_id: extra.ticketId ?? null });
}

/** Reads a stored blob (raw MIME uploads and, after their fetch, provider messages). */
async function readBlob(tx: TenantTx, hash: Buffer): Promise<Buffer | undefined> {
  const { rows } = await tx.query<{ content: Buffer }>(
    'SELECT content FROM blobs WHERE tenant_id = $1 AND sha256 = $2',
    [tx.tenantId, hash],
  );
  return rows[0]?.content;
}

/**
 * Fetches the raw bytes a provider pointer names, outside any transaction (no network call holds a
 * database connection). Undefined when the source no longer has the message: a deterministic
 * `skipped (source_unavailable)`, not a retry loop. Rate limits and transient failures throw.
 */
async function fetchFromProvider(
  deps: InboundDeps,
  tenantId: string,
  row: InboundRow,
  mailbox: Mailbox,
): Promise<Buffer | undefined> {
  const messageId = String(row.pointer['messageId']);
  try {
    if (row.source === 'graph') {
      return await (
        await graphClientFor(deps, tenantId, mailbox)
      ).messageMime(providerUser(mailbox, 'graph'), messageId);
    }
    if (row.source === 'gmail') {
      return await (
        await gmailClientFor(deps, tenantId, mailbox)
      ).messageRaw(providerUser(mailbox, 'gmail'), messageId);
    }
    if (row.source === 'imap') {
      const credentials = await withTenant(deps.pool, tenantId, (tx) =>
        mailboxCredentials(tx, deps.secretKey, mailbox.id),
      );
      return await fetchImapMessage(mailbox, String(credentials?.['password'] ?? ''), {
        uidValidity: String(row.pointer['uidValidity']),
        uid: Number(row.pointer['uid']),
      });
    }
  } catch (err) {
    if (err instanceof NotFound) return undefined;
    throw err;
  }
  return undefined;
}

/** Runs one inbound message to its outcome. Throws only for transient failures (the job retries). */
export async function processInbound(
  deps: InboundDeps,
  input: { tenantId: string; inboundId: string; lastAttempt: boolean },
): Promise<Outcome> {
  const { pool } = deps;
  const start = await withTenant(pool, input.tenantId, async (tx) => {
    const { rows } = await tx.query<InboundRow>(
      `SELECT id, mailbox_id, source, pointer, blob_sha256, status, reason, ticket_id FROM inbound_messages
        WHERE tenant_id = $1 AND id = $2 FOR UPDATE`,
      [tx.tenantId, input.inboundId],
    );
    const row = rows[0];
    if (!row)
      return {
        done: {
          status: 'skipped',
          reason: 'inbound_record_gone',
          ticketId: null,
          ticketNumber: null,
        } as Outcome,
      };
    if (FINAL.includes(row.status)) return { done: await outcomeOf(tx, row) };
    await tx.query(
      `UPDATE inbound_messages SET status = 'processing', attempts = attempts + 1, updated_at = now()
        WHERE tenant_id = $1 AND id = $2`,
      [tx.tenantId, row.id],
    );
    return {
      done: undefined,
      row,
      raw: row.blob_sha256 ? await readBlob(tx, row.blob_sha256) : undefined,
      mailbox: await getMailbox(tx, row.mailbox_id),
    };
  });
  if (start.done) return start.done;
  const { row, mailbox } = start as Required<Pick<typeof start, 'row' | 'mailbox'>>;
  let raw = start.raw;

  try {
    if (raw === undefined && row.source !== 'mime') {
      raw = await fetchFromProvider(deps, input.tenantId, row, mailbox);
      if (raw !== undefined) {
        const fetched = raw;
        // Keep the original (DESIGN §5.1): the fetched bytes become the record's blob.
        await withTenant(pool, input.tenantId, async (tx) => {
          const hash = await storeBlob(tx, fetched);
          await tx.query('UPDATE inbound_messages SET blob_sha256 = $3 WHERE tenant_id = $1 AND id = $2', [
            tx.tenantId,
            row.id,
            hash,
          ]);
        });
      }
    }
    if (raw === undefined) {
      return await withTenant(pool, input.tenantId, (tx) =>
        finish(tx, row.id, 'skipped', 'source_unavailable'),
      );
    }
    const bytes = raw;
    if (bytes.length > mailbox.settings.maxMessageBytes) {
      return await withTenant(pool, input.tenantId, (tx) => skipTooLarge(tx, mailbox, row.id, bytes));
    }
    let parsed: ParsedMessage;
    try {
      parsed = await parseMessage(bytes);
    } catch (err) {
      deps.logger.warn({ err, inboundId: row.id }, 'message could not be parsed; quarantined');
      return await withTenant(pool, input.tenantId, (tx) =>
        finish(tx, row.id, 'quarantined', `unparseable: ${String((err as Error).message).slice(0, 200)}`),
      );
    }
    return await withTenant(pool, input.tenantId, (tx) => applyMessage(tx, deps, mailbox, row.id, parsed));
  } catch (err) {
    if (err instanceof RateLimited) throw err; // the job reschedules it for when the provider said
    const reason = `${(err as Error).name}: ${String((err as Error).message).slice(0, 300)}`;
    // Credentials a person must renew, or a refusal: no retry will help.
    const final = input.lastAttempt || err instanceof AuthExpired || err instanceof Permanent;
    await withTenant(pool, input.tenantId, async (tx): Promise<unknown> =>
      final
        ? finish(tx, row.id, 'failed', reason)
        : tx.query(
            "UPDATE inbound_messages SET status = 'queued', reason = $3 WHERE tenant_id = $1 AND id = $2",
            [tx.tenantId, row.id, `retrying: ${reason}`],
          ),
    ).catch(() => undefined);
    if (err instanceof AuthExpired || err instanceof Permanent)
      throw new PermanentJobError(reason, { cause: err });
    throw err;
  }
}

async function skipTooLarge(
  tx: TenantTx,
  mailbox: Mailbox,
  inboundId: string,
  raw: Buffer,
): Promise<Outcome> {
  // Keep the headers (for the record and for threading of later mail), not the body.
  const headers = headerBlock(raw);
  const hash = await storeBlob(tx, headers);
  const parsedHeaders = rawHeaders(
    headers
      .toString('latin1')
      .split(/\r?\n(?![ \t])/)
      .filter((l) => l.includes(':'))
      .map((line) => ({ key: line.slice(0, line.indexOf(':')).trim(), line })),
  );
  const key = normalizeMessageId(parsedHeaders.get('message-id')?.[0]) ?? generatedKey(raw);
  const claimed = await claimKey(tx, mailbox.id, key, inboundId, 'skipped', 'too_large');
  if (!claimed.claimed) return duplicateOf(tx, inboundId, claimed, key);
  await tx.query('UPDATE inbound_messages SET blob_sha256 = $3 WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    inboundId,
    hash,
  ]);
  return finish(
    tx,
    inboundId,
    'skipped',
    `too_large: ${raw.length} bytes over the mailbox limit of ${mailbox.settings.maxMessageBytes}`,
    {
      key,
    },
  );
}

type Claim =
  { claimed: true } | { claimed: false; inboundId: string; outcome: string; ticketId: string | null };

async function claimKey(
  tx: TenantTx,
  mailboxId: string,
  key: string,
  inboundId: string,
  outcome: string,
  reason: string | null,
  ticketId: string | null = null,
): Promise<Claim> {
  const { rowCount } = await tx.query(
    `INSERT INTO message_keys (tenant_id, mailbox_id, key, inbound_id, outcome, reason, ticket_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, mailbox_id, key) DO NOTHING`,
    [tx.tenantId, mailboxId, key, inboundId, outcome, reason, ticketId],
  );
  if (rowCount === 1) return { claimed: true };
  const { rows } = await tx.query<{ inbound_id: string; outcome: string; ticket_id: string | null }>(
    'SELECT inbound_id, outcome, ticket_id FROM message_keys WHERE tenant_id = $1 AND mailbox_id = $2 AND key = $3',
    [tx.tenantId, mailboxId, key],
  );
  const r = rows[0]!;
  return { claimed: false, inboundId: r.inbound_id, outcome: r.outcome, ticketId: r.ticket_id };
}

async function duplicateOf(
  tx: TenantTx,
  inboundId: string,
  claim: Claim & { claimed: false },
  key: string,
): Promise<Outcome> {
  if (claim.inboundId === inboundId) {
    // Two workers ran this same record at once (a redelivered job beside the CLI, say): the other
    // one committed first. Its outcome is the outcome.
    const { rows } = await tx.query<{
      status: InboundStatus;
      reason: string | null;
      ticket_id: string | null;
    }>('SELECT status, reason, ticket_id FROM inbound_messages WHERE tenant_id = $1 AND id = $2', [
      tx.tenantId,
      inboundId,
    ]);
    return outcomeOf(tx, rows[0]!);
  }
  return finish(tx, inboundId, 'duplicate', `duplicate of ${claim.inboundId} (${claim.outcome})`, {
    ticketId: claim.ticketId,
    key,
  });
}

async function setKeyOutcome(
  tx: TenantTx,
  mailboxId: string,
  key: string,
  outcome: string,
  reason: string | null,
  ticketId: string | null,
) {
  await tx.query(
    'UPDATE message_keys SET outcome = $4, reason = $5, ticket_id = $6 WHERE tenant_id = $1 AND mailbox_id = $2 AND key = $3',
    [tx.tenantId, mailboxId, key, outcome, reason, ticketId],
  );
}

async function applyMessage(
  tx: TenantTx,
  deps: InboundDeps,
  mailbox: Mailbox,
  inboundId: string,
  mail: ParsedMessage,
): Promise<Outcome> {
  const key = mail.key;
  const claim = await claimKey(tx, mailbox.id, key, inboundId, 'processing', null);
  if (!claim.claimed) return duplicateOf(tx, inboundId, claim, key);
  const skip = async (reason: string) => {
    await setKeyOutcome(tx, mailbox.id, key, 'skipped', reason, null);
    return finish(tx, inboundId, 'skipped', reason, { key });
  };

  const ownAddresses = await mailboxAddresses(tx);
  const senderAddress = mail.from?.address;
  if (!senderAddress) return skip('no_sender');
  if (
    ownAddresses.has(normalizeEmail(senderAddress)) ||
    (mail.messageId && looksLikeOurMessageId(mail.messageId))
  ) {
    return skip('own_mail');
  }

  let senderId = await findPersonIdByEmail(tx, senderAddress).catch(() => undefined);
  if (!senderId) {
    if (!mailbox.settings.createContacts) return skip('unknown_sender');
    try {
      senderId = await findOrCreateContact(tx, senderAddress, {
        name: mail.from?.name || undefined,
        actor: 'system:inbound',
      });
    } catch {
      return skip('invalid_sender_address');
    }
  }
  const { rows: senderRows } = await tx.query<{ kind: string }>(
    'SELECT kind FROM people WHERE tenant_id = $1 AND id = $2',
    [tx.tenantId, senderId],
  );
  const fromAgent = senderRows[0]?.kind === 'agent';
  const { automatic, bounce } = mail.classification;

  let target = await findThread(tx, {
    mailboxId: mailbox.id,
    references: mail.references,
    subject: mail.subject,
    senderId,
    senderAddress,
    messageIdKey: deps.messageIdKey,
  });
  if (!target && bounce && mail.bouncedMessageId) {
    const ticketId = await ticketByMessageIds(tx, mailbox.id, [mail.bouncedMessageId]);
    if (ticketId) {
      const { rows } = await tx.query<{ status: TicketStatus; requester_id: string; updated_at: string }>(
        'SELECT status, requester_id, updated_at FROM tickets WHERE tenant_id = $1 AND id = $2',
        [tx.tenantId, ticketId],
      );
      if (rows[0])
        target = {
          ticketId,
          status: rows[0].status,
          requesterId: rows[0].requester_id,
          updatedAt: rows[0].updated_at,
          rule: 'bounce',
        };
    }
  }

  // A reply to a solved or closed ticket reopens it within the mailbox's window; later, or when it
  // is automatic mail that must not reopen anything, see below.
  if (target && (target.status === 'solved' || target.status === 'closed') && !automatic) {
    const ageDays = (Date.now() - Date.parse(target.updatedAt)) / 86_400_000;
    if (ageDays > mailbox.settings.reopenWithinDays) target = undefined; // a new ticket
  }

  let ticketId: string;
  let status: 'created' | 'appended';
  if (target) {
    ticketId = target.ticketId;
    status = 'appended';
    let next: TicketStatus | undefined;
    if (
      !automatic &&
      !fromAgent &&
      (target.status === 'pending' || target.status === 'solved' || target.status === 'closed')
    )
      next = 'open';
    if (next && next !== target.status) {
      await tx.query('UPDATE tickets SET status = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2', [
        tx.tenantId,
        ticketId,
        next,
      ]);
      await recordStatusChange(tx, ticketId, target.status, next, senderId);
    } else if (fromAgent && target.status === 'new' && !bounce) {
      await tx.query(
        "UPDATE tickets SET status = 'open', updated_at = now() WHERE tenant_id = $1 AND id = $2",
        [tx.tenantId, ticketId],
      );
      await recordStatusChange(tx, ticketId, 'new', 'open', senderId);
    } else {
      await tx.query('UPDATE tickets SET updated_at = now() WHERE tenant_id = $1 AND id = $2', [
        tx.tenantId,
        ticketId,
      ]);
    }
  } else {
    if (automatic && !mailbox.settings.automaticMayOpenTickets) return skip(bounce ? 'bounce' : 'automatic');
    const ticket = await createTicket(tx, {
      subject: mail.subject.slice(0, 998) || '(no subject)',
      requester: { personId: senderId },
      actorId: senderId,
    });
    ticketId = ticket.id;
    status = 'created';
  }

  const messageRowId = uuidv7();
  await tx.query(
    `INSERT INTO ticket_messages (tenant_id, id, ticket_id, author_id, visibility, direction, body_text, body_html,
                                  rfc_message_id, inbound_id, mail_from, mail_to, mail_cc, mail_subject, reply_text, classification)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
    [
      tx.tenantId,
      messageRowId,
      ticketId,
      senderId,
      bounce ? 'internal' : 'public',
      fromAgent ? 'outbound' : 'inbound',
      mail.text || '(empty message)',
      mail.html,
      mail.messageId,
      inboundId,
      senderAddress,
      JSON.stringify(mail.to),
      JSON.stringify(mail.cc),
      mail.subject,
      mail.replyText,
      JSON.stringify({ ...mail.classification, thread: target?.rule ?? 'new' }),
    ],
  );

  // Participants: the sender and the To/Cc addresses that are not our own mailboxes.
  const participants = new Set<string>([normalizeEmail(senderAddress)]);
  for (const a of [...mail.to, ...mail.cc]) {
    const n = normalizeEmail(a.address);
    if (!ownAddresses.has(n)) participants.add(n);
  }
  await tx.query(
    `INSERT INTO ticket_participants (tenant_id, ticket_id, address_normalized)
     SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING`,
    [tx.tenantId, ticketId, [...participants]],
  );

  const byContentId = new Map<string, string>();
  for (const a of mail.attachments) {
    const hash = await storeBlob(tx, a.content);
    const attachmentId = uuidv7();
    if (a.contentId) byContentId.set(a.contentId.toLowerCase(), attachmentId);
    await tx.query(
      `INSERT INTO attachments (tenant_id, id, ticket_id, message_id, filename, content_type, size, sha256, content_id, inline)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        tx.tenantId,
        attachmentId,
        ticketId,
        messageRowId,
        a.filename.slice(0, 255),
        a.contentType.slice(0, 255),
        a.content.length,
        hash,
        a.contentId,
        a.inline,
      ],
    );
  }

  // Inline images: cid: references in the HTML point at the stored attachment.
  if (mail.html && byContentId.size > 0) {
    const html = mail.html.replace(/(["'])cid:<?([^"'>\s]+?)>?\1/gi, (whole, quote: string, cid: string) => {
      const id = byContentId.get(cid.toLowerCase());
      return id ? `${quote}/api/v1/attachments/${id}${quote}` : whole;
    });
    if (html !== mail.html) {
      await tx.query('UPDATE ticket_messages SET body_html = $3 WHERE tenant_id = $1 AND id = $2', [
        tx.tenantId,
        messageRowId,
        html,
      ]);
    }
  }

  await scheduleSlaWake(tx, ticketId);
  await setKeyOutcome(tx, mailbox.id, key, status, null, ticketId);
  return finish(tx, inboundId, status, target ? `thread: ${target.rule}` : null, {
    ticketId,
    messageId: messageRowId,
    key,
  });
}

/**
 * Accepts a raw message (blob, record and job committed together) and processes it right here,
 * returning its outcome: `relaydesk ingest` and tests. A worker that also picks up the job finds
 * the record final (or the key claimed), so running both is harmless.
 */
export async function ingestRawMessage(
  deps: InboundDeps,
  queue: JobQueue,
  input: { tenantId: string; mailboxId: string; raw: Buffer },
): Promise<Outcome> {
  const accepted = await acceptRawMessage(deps.pool, queue, input);
  return processInbound(deps, {
    tenantId: input.tenantId,
    inboundId: accepted.inboundId,
    lastAttempt: false,
  });
}
