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
import {
  createMailbox,
  deleteMailbox,
  getMailbox,
  listMailboxes,
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

export const inboundRoutes: RouteModule = (app, { pool, queue, secretKey }) => {
  const key = () => {
    if (!secretKey) throw new AppError('internal_error', 'no secret key configured');
    return secretKey;
  };

  app.post(
    '/mailboxes',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        body: Type.Object({ kind: OneOf(MAILBOX_KINDS), ...mailboxFields }, { additionalProperties: false }),
        response: { 201: MailboxSchema, 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const mailbox = await withTenant(pool, principalOf(request).tenantId, (tx) =>
        createMailbox(tx, key(), request.body),
      );
      return reply.code(201).send(mailbox);
    },
  );

  app.get(
    '/mailboxes',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        querystring: Type.Object(ListQuery, { additionalProperties: false }),
        response: { 200: Page(MailboxSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => listMailboxes(tx, request.query)),
  );

  app.get(
    '/mailboxes/:id',
    {
      config: { permission: 'mailboxes:manage' },
      schema: { tags: ['inbound'], params: IdParams, response: { 200: MailboxSchema, ...problemResponses } },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => getMailbox(tx, request.params.id)),
  );

  app.patch(
    '/mailboxes/:id',
    {
      config: { permission: 'mailboxes:manage' },
      schema: {
        tags: ['inbound'],
        params: IdParams,
        body: Type.Object(
          { ...mailboxFields, address: Type.Optional(mailboxFields.address) },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: MailboxSchema, 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenant(pool, principalOf(request).tenantId, (tx) =>
        updateMailbox(tx, key(), request.params.id, request.body),
      ),
  );

  app.delete(
    '/mailboxes/:id',
    {
      config: { permission: 'mailboxes:manage' },
      schema: { tags: ['inbound'], params: IdParams, response: { 204: Type.Null(), ...problemResponses } },
    },
    async (request, reply) => {
      await withTenant(pool, principalOf(request).tenantId, (tx) => deleteMailbox(tx, request.params.id));
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
          description: 'Submit one raw message (Content-Type: message/rfc822).',
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
      schema: { tags: ['inbound'], params: IdParams, response: { 200: InboundSchema, ...problemResponses } },
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
    { config: { permission: 'tickets:read' }, schema: { tags: ['inbound'], params: IdParams } },
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
