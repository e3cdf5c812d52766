import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { AppError, notFound } from '../../platform/errors.ts';
import { type RouteModule, principalOf } from '../../platform/http/server.ts';
import {
  IdParams,
  ListQuery,
  Nullable,
  OneOf,
  Page,
  ProblemSchema,
  problemResponses,
  Timestamp,
  Uuid,
} from '../../platform/http/schemas.ts';
import { clampLimit, decodeCursor, toPage } from '../../platform/pagination.ts';
import { acceptRawMessage } from './ingest.ts';
import { processInboundJob } from './job-refs.ts';
import { healthOf } from './health.ts';
import { HEALTH_DESCRIPTION, HealthSchema, upkeepDepsOf } from './upkeep-routes.ts';
import { renewNow, unsubscribe } from './upkeep.ts';
import {
  assertProviderEndpoints,
  connectedWith,
  type Mailbox,
  createMailbox,
  deleteMailbox,
  getMailbox,
  listMailboxes,
  MAILBOX_AUDIT_REDACT,
  MAILBOX_KINDS,
  updateMailbox,
} from './mailboxes.ts';

const INBOUND_STATUSES = [
  'queued',
  'processing',
  'created',
  'appended',
  'duplicate',
  'skipped',
  'failed',
  'quarantined',
] as const;
const RAW_BODY_LIMIT = 100 * 1024 * 1024;

const MailboxSchema = Type.Object({
  id: Uuid,
  kind: OneOf(MAILBOX_KINDS),
  address: Type.String(),
  displayName: Nullable(Type.String()),
  settings: Type.Record(Type.String(), Type.Unknown()),
  hasCredentials: Type.Boolean(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  health: HealthSchema,
});

const mailboxFields = {
  address: Type.String({ minLength: 3, maxLength: 254 }),
  displayName: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
  settings: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  credentials: Type.Optional(Nullable(Type.Record(Type.String(), Type.Unknown()))),
};

const InboundSchema = Type.Object({
  id: Uuid,
  mailboxId: Uuid,
  source: Type.String(),
  messageKey: Nullable(Type.String()),
  status: OneOf(INBOUND_STATUSES),
  reason: Nullable(Type.String()),
  ticketId: Nullable(Uuid),
  ticketNumber: Nullable(Type.String()),
  attempts: Type.Integer(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

interface InboundRow {
  id: string;
  mailbox_id: string;
  source: string;
  message_key: string | null;
  status: (typeof INBOUND_STATUSES)[number];
  reason: string | null;
  ticket_id: string | null;
  number: number | null;
  attempts: number;
  created_at: string;
  updated_at: string;
}

const toInbound = (r: InboundRow) => ({
  id: r.id,
  mailboxId: r.mailbox_id,
  source: r.source,
  messageKey: r.message_key,
  status: r.status,
  reason: r.reason,
  ticketId: r.ticket_id,
  ticketNumber: r.number === null ? null : `T-${r.number}`,
  attempts: r.attempts,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const SELECT_INBOUND = `SELECT i.id, i.mailbox_id, i.source, i.message_key, i.status, i.reason, i.ticket_id, t.number,
       i.attempts, i.created_at, i.updated_at
  FROM inbound_messages i LEFT JOIN tickets t ON t.tenant_id = i.tenant_id AND t.id = i.ticket_id`;

export const inboundRoutes: RouteModule = (app, deps) => {
  const { pool, queue, secretKey, config } = deps;
  const providerOrigins = config.providerOrigins ?? [];
  const key = () => {
    if (!secretKey) throw new AppError('internal_error', 'no secret key configured');
    return secretKey;
  };

  /** The mailbox (or the one with this id) with its health, as every mailbox answer carries it. */
  const withHealth = (tenantId: string, mailbox: Mailbox | string) =>
    withTenantRead(pool, tenantId, async (tx) => {
      const m = typeof mailbox === 'string' ? await getMailbox(tx, mailbox) : mailbox;
      const health = await healthOf(tx, [m.id]);
      return { ...m, health: health.get(m.id)! };
    });

  /**
   * A Graph or Gmail mailbox given credentials is subscribed at once, in the request: the answer's
   * health says whether that worked (a failure that may pass is retried by upkeep).
   */
  const subscribeNow = async (tenantId: string, mailbox: Mailbox) => {
    if ((mailbox.kind !== 'graph' && mailbox.kind !== 'gmail') || !mailbox.hasCredentials) return;
    await renewNow(upkeepDepsOf(deps), tenantId, mailbox.id, (job, payload, options) => {
      if (!queue) throw new AppError('queue_unavailable', 'the queue does not run in this process');
      return queue.send(job, payload, options ?? {});
    });
  };

  app.post(
    '/mailboxes',
    {
      config: { permission: 'mailboxes:manage', auditRedact: MAILBOX_AUDIT_REDACT },
      schema: {
        tags: ['inbound'],
        summary: 'Create a mailbox',
        description:
          'Registers a mailbox that mail comes from: `kind` `imap`, `graph` (Microsoft 365), `gmail` or ' +
          '`mime` (raw uploads only), its `address` (one mailbox per address in a tenant, ' +
          'case-insensitive), an optional `displayName`, `settings` and `credentials`. Settings, with ' +
          'their defaults: `createContacts` (true; else mail from unknown senders is skipped), ' +
          '`automaticMayOpenTickets` (false: auto-replies and bulk mail may not open a ticket), ' +
          '`maxMessageBytes` (25 MiB, from 1 KiB to 100 MiB; larger messages are skipped with their ' +
          'headers kept), `reopenWithinDays` (14, up to 3650; a reply to a solved or closed ticket ' +
          'reopens it within this many days, later it opens a new ticket), and the provider blocks ' +
          '`graph`, `gmail` (`pushAudience`, `serviceAccountEmail`, `user`, and the endpoints ' +
          "`apiBaseUrl`, `tokenUrl`, `jwksUrl`, `authorizeUrl`, `delegatedTokenUrl`, which must stay on the provider's own origins unless the " +
          'operator allows others with RELAYDESK_PROVIDER_ORIGINS), `imap` ' +
          "(`host`, `port`, `secure`, `user`, `folder`) and `oauth` (`clientId`: the mailbox's own app " +
          'registration for `POST /mailboxes/{id}/connect`). Unknown settings are refused. Credentials (IMAP ' +
          '`{password}`; Graph `{tenantId, clientId, clientSecret}`; Gmail `{clientId, clientSecret, ' +
          'refreshToken}`; or, for a Graph or Gmail mailbox to be connected by OAuth with its own app, ' +
          '`{oauthClientSecret}`) are encrypted at rest (AES-256-GCM) and never returned: `hasCredentials` ' +
          'says whether some are stored. IMAP mailboxes are watched by a worker; Graph and Gmail ' +
          'mailboxes get their mail through `/hooks/graph/{id}` and `/hooks/gmail/{id}`: given ' +
          'credentials, one is subscribed at once (a Graph subscription to `{RELAYDESK_PUBLIC_URL}/hooks/graph/{id}` ' +
          'for the folder `settings.graph.folder`, default Inbox; a Gmail watch on `settings.gmail.topic`) and ' +
          'kept subscribed by upkeep; `health` in the answer says whether that worked. An IMAP mailbox ' +
          'needs `settings.imap.host` and `credentials.password`. Answers 201.\n\n' +
          'Needs `mailboxes:manage` (admin). 409 `conflict` (`field: "address"`) when the tenant has a ' +
          'mailbox for that address already; 400 `validation_failed` for an invalid address or setting.',
        body: Type.Object({ kind: OneOf(MAILBOX_KINDS), ...mailboxFields }, { additionalProperties: false }),
        response: { 201: MailboxSchema, 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      assertProviderEndpoints(request.body.settings, providerOrigins);
      const tenantId = principalOf(request).tenantId;
      const mailbox = await withTenant(pool, tenantId, (tx) => createMailbox(tx, key(), request.body));
      if (connectedWith(mailbox.kind, request.body.credentials)) await subscribeNow(tenantId, mailbox);
      return reply.code(201).send(await withHealth(tenantId, mailbox));
    },
  );

  app.get(
    '/mailboxes',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        summary: 'List mailboxes',
        description:
          "The tenant's mailboxes, newest first, with their settings completed with the defaults and " +
          '`hasCredentials` (credentials themselves are never returned). Paged: `limit` (default 50, ' +
          "max 200) and `cursor` (the previous page's `nextCursor`).\n\n" +
          'Needs `mailboxes:manage` (admin).',
        querystring: Type.Object(ListQuery, { additionalProperties: false }),
        response: { 200: Page(MailboxSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, async (tx) => {
        const page = await listMailboxes(tx, request.query);
        const health = await healthOf(
          tx,
          page.items.map((m) => m.id),
        );
        return { ...page, items: page.items.map((m) => ({ ...m, health: health.get(m.id)! })) };
      }),
  );

  app.get(
    '/mailboxes/:id',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        summary: 'Get a mailbox',
        description:
          'One mailbox, its settings completed with the defaults, `hasCredentials`, and its ' +
          `${HEALTH_DESCRIPTION}\n\n` +
          'Needs `mailboxes:manage` (admin). 404 `not_found` when the id is not a mailbox of this tenant.',
        params: IdParams,
        response: { 200: MailboxSchema, ...problemResponses },
      },
    },
    async (request) => withHealth(principalOf(request).tenantId, request.params.id),
  );

  app.patch(
    '/mailboxes/:id',
    {
      config: { permission: 'mailboxes:manage', auditRedact: MAILBOX_AUDIT_REDACT },
      schema: {
        tags: ['inbound'],
        summary: 'Update a mailbox',
        description:
          'Changes any of `address`, `displayName`, `settings` and `credentials` (at least one); the ' +
          'kind cannot change. `settings` is merged into the stored settings one level deep: each ' +
          'top-level key given replaces the stored value, so a provider block (`graph`, `gmail`, ' +
          '`imap`) given replaces the whole stored block and must carry all its keys. `credentials` ' +
          'replaces the stored credentials; null removes them. Answers 200 with the mailbox.\n\n' +
          'Needs `mailboxes:manage` (admin). 404 `not_found` when the id is not a mailbox of this ' +
          'tenant; 409 `conflict` (`field: "address"`) when another mailbox of the tenant has the new ' +
          'address; 400 `validation_failed` for an invalid address or setting.',
        params: IdParams,
        body: Type.Object(
          { ...mailboxFields, address: Type.Optional(mailboxFields.address) },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: MailboxSchema, 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request) => {
      assertProviderEndpoints(request.body.settings, providerOrigins);
      const tenantId = principalOf(request).tenantId;
      const mailbox = await withTenant(pool, tenantId, (tx) =>
        updateMailbox(tx, key(), request.params.id, request.body),
      );
      if (request.body.credentials && connectedWith(mailbox.kind, request.body.credentials))
        await subscribeNow(tenantId, mailbox);
      return withHealth(tenantId, mailbox);
    },
  );

  app.delete(
    '/mailboxes/:id',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        summary: 'Delete a mailbox',
        description:
          'Deletes the mailbox with its credentials, the records of the messages it received and its ' +
          'index of Message-IDs (used to thread replies); the tickets and messages made from its mail ' +
          'stay. Its webhooks answer 404 from then on. Answers 204.\n\n' +
          'Needs `mailboxes:manage` (admin). 404 `not_found` when the id is not a mailbox of this tenant ' +
          '(also on a second DELETE).',
        params: IdParams,
        response: { 204: Type.Null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      const tenantId = principalOf(request).tenantId;
      // Its Graph subscription goes too, where Graph can be told (best effort: it expires anyway,
      // and its notifications find no mailbox).
      await unsubscribe(upkeepDepsOf(deps), tenantId, request.params.id);
      await withTenant(pool, tenantId, (tx) => deleteMailbox(tx, request.params.id));
      return reply.code(204).send(null);
    },
  );

  // Raw RFC 822 upload. The body is kept as bytes; it is accepted (202) only once the blob, the
  // inbound record and the job are committed.
  app.register(async (raw) => {
    raw.addContentTypeParser(
      'message/rfc822',
      { parseAs: 'buffer', bodyLimit: RAW_BODY_LIMIT },
      (_req, body, done) => done(null, body),
    );
    raw.post(
      '/mailboxes/:id/messages',
      {
        bodyLimit: RAW_BODY_LIMIT,
        config: { permission: 'inbound:write' },
        schema: {
          tags: ['inbound'],
          summary: 'Submit a raw email message',
          description:
            'Takes one message as raw RFC 5322 bytes (`Content-Type: message/rfc822`, at most 100 MiB) ' +
            'for the mailbox, whatever its kind. The bytes, an inbound record and a processing job are ' +
            'committed together before the answer, so a 202 `{inboundId, status: "queued"}` means the ' +
            'message will not be lost; a worker then parses it and makes it exactly one ticket or ' +
            'comment, or skips or quarantines it (see `GET /inbound/{id}`, which needs ' +
            '`mailboxes:manage`). Safe to retry: a message submitted again gets a new inbound record ' +
            'that ends as `duplicate` of the first (same Message-ID, or same bytes when it has none).\n\n' +
            'Needs `inbound:write` (admin, integration). 404 `not_found` when the id is not a mailbox of ' +
            'this tenant; 400 `validation_failed` for an empty body or one sent as JSON; 415 ' +
            '`unsupported_media_type` for another media type; 413 `payload_too_large` over 100 MiB; 503 ' +
            '`queue_unavailable` from a process that does not run the queue.',
          params: IdParams,
          response: {
            202: Type.Object({ inboundId: Uuid, status: Type.Literal('queued') }),
            415: ProblemSchema,
            ...problemResponses,
          },
        },
      },
      async (request, reply) => {
        const body = request.body as unknown;
        if (!Buffer.isBuffer(body) || body.length === 0) {
          throw new AppError(
            'validation_failed',
            'send the raw message as the body, with Content-Type: message/rfc822',
          );
        }
        if (!queue) throw new AppError('queue_unavailable', 'the queue does not run in this process');
        const { id } = request.params as { id: string };
        const accepted = await acceptRawMessage(pool, queue, {
          tenantId: principalOf(request).tenantId,
          mailboxId: id,
          raw: body,
        });
        return reply.code(202).send(accepted);
      },
    );
  });

  app.get(
    '/inbound',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        summary: 'List received messages',
        description:
          "Every message the tenant's mailboxes received, whatever the path (upload, Graph, Gmail, " +
          'IMAP), newest first: its source, message key (the normalised Message-ID, or a hash of the ' +
          'bytes), `status` (`queued`, `processing`, then `created`, `appended`, `duplicate`, ' +
          '`skipped`, `failed` or `quarantined`), the `reason` of a skip, failure or quarantine, the ' +
          'ticket it created or was added to, and the attempts it took. Filters: `mailboxId`, ' +
          "`status`. Paged: `limit` (default 50, max 200) and `cursor` (the previous page's " +
          '`nextCursor`).\n\n' +
          'Needs `mailboxes:manage` (admin).',
        querystring: Type.Object(
          { ...ListQuery, mailboxId: Type.Optional(Uuid), status: Type.Optional(OneOf(INBOUND_STATUSES)) },
          { additionalProperties: false },
        ),
        response: { 200: Page(InboundSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, async (tx) => {
        const limit = clampLimit(request.query.limit);
        const cursor = decodeCursor(request.query.cursor);
        const values: unknown[] = [tx.tenantId];
        const where = ['i.tenant_id = $1'];
        if (request.query.mailboxId) {
          values.push(request.query.mailboxId);
          where.push(`i.mailbox_id = $${values.length}`);
        }
        if (request.query.status) {
          values.push(request.query.status);
          where.push(`i.status = $${values.length}`);
        }
        if (cursor) {
          values.push(cursor.createdAt, cursor.id);
          where.push(`(i.created_at, i.id) < ($${values.length - 1}::timestamptz, $${values.length}::uuid)`);
        }
        values.push(limit + 1);
        const { rows } = await tx.query<InboundRow>(
          `${SELECT_INBOUND} WHERE ${where.join(' AND ')} ORDER BY i.created_at DESC, i.id DESC LIMIT $${values.length}`,
          values,
        );
        return toPage(rows, limit, toInbound);
      }),
  );

  app.get(
    '/inbound/:id',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        summary: 'Get a received message',
        description:
          'One inbound record, e.g. to follow a submitted message until it leaves `queued` and ' +
          '`processing`.\n\n' +
          'Needs `mailboxes:manage` (admin). 404 `not_found` when the id is not an inbound record of ' +
          'this tenant.',
        params: IdParams,
        response: { 200: InboundSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, async (tx) => {
        const { rows } = await tx.query<InboundRow>(
          `${SELECT_INBOUND} WHERE i.tenant_id = $1 AND i.id = $2`,
          [tx.tenantId, request.params.id],
        );
        if (!rows[0]) throw notFound('inbound message');
        return toInbound(rows[0]);
      }),
  );

  app.post(
    '/inbound/:id/reprocess',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        summary: 'Reprocess a failed or quarantined message',
        description:
          'Queues a `quarantined` (could not be parsed) or `failed` message again: its status goes back ' +
          'to `queued`, its reason is cleared and a processing job is committed with that change. ' +
          'Answers 202 with the record; the processing itself happens afterwards.\n\n' +
          'Needs `mailboxes:manage` (admin). 409 `conflict` when the message is in any other status ' +
          '(including a second call before the first is processed); 404 `not_found` when the id is not ' +
          'an inbound record of this tenant; 503 `queue_unavailable` from a process that does not run ' +
          'the queue.',
        params: IdParams,
        response: { 202: InboundSchema, 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      if (!queue) throw new AppError('queue_unavailable', 'the queue does not run in this process');
      const result = await withTenant(pool, principalOf(request).tenantId, async (tx) => {
        const { rows } = await tx.query<{ status: string }>(
          `UPDATE inbound_messages SET status = 'queued', reason = NULL, updated_at = now()
            WHERE tenant_id = $1 AND id = $2 AND status IN ('quarantined', 'failed')
            RETURNING status`,
          [tx.tenantId, request.params.id],
        );
        if (!rows[0]) {
          const exists = await tx.query(
            'SELECT status FROM inbound_messages WHERE tenant_id = $1 AND id = $2',
            [tx.tenantId, request.params.id],
          );
          if (exists.rowCount === 0) throw notFound('inbound message');
          throw new AppError(
            'conflict',
            `only quarantined or failed messages can be reprocessed (this one is ${exists.rows[0].status})`,
          );
        }
        await queue.send(processInboundJob, { tenantId: tx.tenantId, inboundId: request.params.id }, { tx });
        const { rows: out } = await tx.query<InboundRow>(
          `${SELECT_INBOUND} WHERE i.tenant_id = $1 AND i.id = $2`,
          [tx.tenantId, request.params.id],
        );
        return toInbound(out[0]!);
      });
      return reply.code(202).send(result);
    },
  );

  app.get(
    '/attachments/:id',
    {
      config: { permission: 'tickets:read' },
      schema: {
        tags: ['tickets'],
        summary: 'Download an attachment',
        description:
          'The file of an attachment of a ticket message (ids are in `mail.attachments` of ' +
          '`GET /tickets/{id}/messages`; inline images in stored HTML link here), with its stored ' +
          'content type, `Content-Disposition: attachment` (with its file name) and ' +
          '`X-Content-Type-Options: nosniff`.\n\n' +
          'Needs `tickets:read` (every role). 404 `not_found` when the id is not an attachment of this ' +
          'tenant or its ticket was deleted.',
        params: IdParams,
        response: {
          200: {
            description: 'The file, with its stored content type',
            content: { '*/*': { schema: Type.Unsafe<Buffer>({ type: 'string', format: 'binary' }) } },
          },
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const found = await withTenantRead(pool, principalOf(request).tenantId, async (tx) => {
        const { rows } = await tx.query<{ filename: string; content_type: string; content: Buffer }>(
          `SELECT a.filename, a.content_type, b.content FROM attachments a
             JOIN blobs b ON b.tenant_id = a.tenant_id AND b.sha256 = a.sha256
             JOIN tickets t ON t.tenant_id = a.tenant_id AND t.id = a.ticket_id AND t.deleted_at IS NULL
            WHERE a.tenant_id = $1 AND a.id = $2`,
          [tx.tenantId, request.params.id],
        );
        return rows[0];
      });
      if (!found) throw notFound('attachment');
      const ascii = found.filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
      return reply
        .header('content-type', found.content_type)
        .header(
          'content-disposition',
          `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(found.filename)}`,
        )
        .header('x-content-type-options', 'nosniff')
        .send(found.content);
    },
  );
};
