// Routes of outbound mail: an agent's message on a ticket (which leaves as email), and the delivery
// ledger (read, retry).
import multipart from '@fastify/multipart';
import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { AppError, isDatabaseUnavailable, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import {
  IdParams,
  ListQuery,
  Nullable,
  OneOf,
  Page,
  problemResponses,
  Timestamp,
  Uuid,
} from '../../platform/http/schemas.ts';
import { errorHandler } from '../../platform/http/problem.ts';
import {
  type App,
  assertBodyAcceptable,
  principalOf,
  type RouteModule,
  type ServerDeps,
} from '../../platform/http/server.ts';
import { messageIdKey } from '../inbound/signing.ts';
import { blobHash } from '../blobs/service.ts';
import { listMessages, type NewAttachment } from '../tickets/messages.ts';
import { sanitizeBodyHtml, VISIBILITIES } from '../tickets/model.ts';
import { MessageSchema } from '../tickets/routes.ts';
import { sendJobOf } from './job-refs.ts';
import { getDelivery, listDeliveries, withTicketNumbers } from './ledger.ts';
import { DELIVERY_CHANNELS, DELIVERY_ERROR_CODES, DELIVERY_PURPOSES, DELIVERY_STATUSES } from './model.ts';
import { postTicketMessage, retryDeliveryWithMail, withDeliveries } from './replies.ts';

/** Files uploaded with one message: count and size (each; the total is bounded by count times size). */
export const ATTACHMENT_LIMITS = { files: 20, fileSize: 25 * 1024 * 1024 };

const Address = Type.String({ minLength: 3, maxLength: 254 });
const Addresses = Type.Array(Address, { maxItems: 50 });

const CreateMessage = Type.Object(
  {
    text: Type.String({ minLength: 1, maxLength: 1_000_000 }),
    html: Type.Optional(Type.String({ maxLength: 5_000_000 })),
    visibility: OneOf(VISIBILITIES),
    cc: Type.Optional(Addresses),
    bcc: Type.Optional(Addresses),
    mailboxId: Type.Optional(Uuid),
    seenMessageId: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);

/** The same fields as form fields (cc and bcc repeated or comma-separated), files under `attachments`. */
const CreateMessageForm = Type.Object(
  {
    text: Type.String({ minLength: 1, maxLength: 1_000_000 }),
    html: Type.Optional(Type.String({ maxLength: 5_000_000 })),
    visibility: OneOf(VISIBILITIES),
    cc: Type.Optional(Type.Union([Type.String({ maxLength: 13_000 }), Addresses])),
    bcc: Type.Optional(Type.Union([Type.String({ maxLength: 13_000 }), Addresses])),
    mailboxId: Type.Optional(Uuid),
    seenMessageId: Type.Optional(Uuid),
    attachments: Type.Optional(
      Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: ATTACHMENT_LIMITS.files })]),
    ),
  },
  { additionalProperties: false },
);

export const DeliverySchema = Type.Object({
  id: Uuid,
  channel: OneOf(DELIVERY_CHANNELS),
  purpose: Type.String({ description: '`reply`, `acknowledgement` or `notification`' }),
  destination: Type.String(),
  status: OneOf(DELIVERY_STATUSES),
  attempt: Type.Integer(),
  previousId: Nullable(Uuid),
  skipReason: Nullable(Type.String()),
  retryable: Nullable(Type.Boolean()),
  errorCode: Nullable(OneOf(DELIVERY_ERROR_CODES)),
  errorMessage: Nullable(Type.String()),
  providerMessageId: Nullable(Type.String()),
  providerResponse: Nullable(Type.String()),
  requestId: Nullable(Type.String()),
  ticketId: Nullable(Uuid),
  ticketMessageId: Nullable(Uuid),
  mailboxId: Nullable(Uuid),
  rfcMessageId: Nullable(Type.String()),
  notificationId: Nullable(Type.String({ format: 'uuid' })),
  createdAt: Timestamp,
  startedAt: Nullable(Timestamp),
  sentAt: Nullable(Timestamp),
  finishedAt: Nullable(Timestamp),
  durationMs: Nullable(Type.Integer()),
});

/** An attempt as the ledger routes show it: with the number of its ticket, for people to read. */
const LedgerDeliverySchema = Type.Object({
  ...DeliverySchema.properties,
  ticketNumber: Nullable(Type.String({ pattern: '^T-[0-9]+$' })),
});

const DeliveryQuery = Type.Object(
  {
    ...ListQuery,
    ticketId: Type.Optional(Uuid),
    ticketNumber: Type.Optional(Type.String({ pattern: '^T-[0-9]{1,18}$' })),
    channel: Type.Optional(OneOf(DELIVERY_CHANNELS)),
    purpose: Type.Optional(OneOf(DELIVERY_PURPOSES)),
    destination: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
    status: Type.Optional(OneOf(DELIVERY_STATUSES)),
    errorCode: Type.Optional(OneOf(DELIVERY_ERROR_CODES)),
    from: Type.Optional(Timestamp),
    to: Type.Optional(Timestamp),
  },
  { additionalProperties: false },
);

interface Upload {
  filename: string;
  mimetype: string;
  content: Buffer;
}

const uploads = new WeakMap<object, Upload[]>();
/** Requests whose multipart body the plugin has read (its preValidation hook is done). */
const bodyRead = new WeakSet<object>();

/** An error of the multipart parser itself: none of ours, none with a status of its own. */
const unreadableBody = (error: unknown): error is Error =>
  error instanceof Error &&
  !(error instanceof AppError) &&
  typeof (error as { statusCode?: unknown }).statusCode !== 'number' &&
  (error as { validation?: unknown }).validation === undefined &&
  !isDatabaseUnavailable(error);

const list = (v: string | string[] | undefined): string[] | undefined =>
  v === undefined
    ? undefined
    : (Array.isArray(v) ? v : [v])
        .flatMap((s) => s.split(','))
        .map((s) => s.trim())
        .filter((s) => s !== '');

function messageRoute(app: App, deps: ServerDeps): void {
  const { pool } = deps;
  const keyOf = deps.secretKey ? messageIdKey(deps.secretKey) : undefined;
  app.post(
    '/tickets/:id/messages',
    {
      config: { permission: 'tickets:write' },
      schema: {
        tags: ['tickets'],
        summary: 'Add a message to a ticket',
        description:
          "Adds a message written by the calling token's person: `visibility` `public` (a reply) or " +
          '`internal` (a note); `text` is required, `html` is stored sanitised. The direction follows ' +
          'the author: an agent writes `outbound`, anyone else `inbound`. The status follows the ' +
          "message: an agent's public message opens a `new` ticket, anyone else's public message " +
          'reopens a `pending`, `solved` or `closed` one, and internal notes change nothing; a status ' +
          'change is recorded in the history. A public message has the SLA clocks recomputed.\n\n' +
          "**An agent's public message leaves as email**, queued in the same transaction as the " +
          'message: through the mailbox of the conversation (`mailboxId` chooses another), to the ' +
          'requester, with the participants of the conversation and `cc` in Cc and `bcc` in Bcc (never ' +
          'to one of our own mailboxes), the subject with the ticket tag, a signed Message-ID and the ' +
          "conversation's References (so the answer threads back), the agent's signature and the " +
          "customer's last message quoted (mailbox setting `outbound.quoteHistory`). The answer's " +
          '`delivery` shows the attempt (`queued`, later `sent`, `failed`, …; see `/deliveries`). ' +
          'Without a mailbox or an address to send to, the delivery is `skipped` with the reason.\n\n' +
          'Send `application/json`, or `multipart/form-data` with the same fields (`cc`/`bcc` repeated ' +
          `or comma-separated) and files as \`attachments\` (at most ${ATTACHMENT_LIMITS.files}, ` +
          `${ATTACHMENT_LIMITS.fileSize / 1024 / 1024} MiB each: 413 \`payload_too_large\`), stored ` +
          'with the message and sent with the mail; through a Microsoft 365 mailbox, whose `sendMail` ' +
          'takes at most 4 MB, a reply over that (about 2.2 MB of files) is 413 as well, nothing ' +
          'written. Answers 201 with the message. Not idempotent.\n\n' +
          '**Collision detection**: `seenMessageId`, the newest message the writer had seen, makes the ' +
          'request fail with 409 `ticket_changed` (nothing written, nothing sent) when someone else ' +
          'added a message to the ticket since (`newMessages` and `latestMessageId` say what); the ' +
          "writer's own messages do not count. Send again without it to post all the same.\n\n" +
          'Needs `tickets:write` (admin, agent, integration). 404 `not_found` when the id is not a ' +
          'ticket of this tenant or it was deleted, or `mailboxId` is not a mailbox of this tenant; ' +
          '400 `validation_failed` for `cc`, `bcc` or `mailboxId` on a message that is not sent by mail, ' +
          'or a `seenMessageId` that is not a message of the ticket.',
        params: IdParams,
        consumes: ['application/json', 'multipart/form-data'],
        body: {
          content: {
            'application/json': { schema: CreateMessage },
            'multipart/form-data': { schema: CreateMessageForm },
          },
        },
        response: { 201: MessageSchema, ...problemResponses },
      } as never,
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body as {
        text: string;
        html?: string;
        visibility: 'public' | 'internal';
        cc?: string | string[];
        bcc?: string | string[];
        mailboxId?: string;
        seenMessageId?: string;
      };
      if (!keyOf || !deps.queue) throw new Error('outbound mail needs the secret key and the queue');
      const files = uploads.get(request) ?? [];
      const attachments: NewAttachment[] = files.map((f) => ({
        id: uuidv7(),
        filename: f.filename,
        contentType: f.mimetype || 'application/octet-stream',
        content: f.content,
        sha256: blobHash(f.content),
        contentId: null,
        inline: false,
      }));
      const message = await withTenant(pool, principal.tenantId, (tx) =>
        postTicketMessage(
          tx,
          { messageIdKey: keyOf, queue: deps.queue! },
          {
            ticketId: (request.params as { id: string }).id,
            authorId: principal.personId,
            visibility: body.visibility,
            text: body.text,
            ...(body.html === undefined ? {} : { html: sanitizeBodyHtml(body.html) }),
            cc: list(body.cc),
            bcc: list(body.bcc),
            mailboxId: body.mailboxId,
            seenMessageId: body.seenMessageId,
            attachments,
          },
        ),
      );
      return reply.code(201).send(message as never);
    },
  );
}

export const outboundRoutes: RouteModule = async (app, deps) => {
  const { pool } = deps;
  const keyOf = deps.secretKey ? messageIdKey(deps.secretKey) : undefined;

  // Multipart only here: the message route takes files, no other route does.
  await app.register(async (scope) => {
    await scope.register(multipart, {
      attachFieldsToBody: 'keyValues',
      limits: { ...ATTACHMENT_LIMITS, fields: 120, fieldSize: 5_000_000, parts: 150 },
      async onFile(part) {
        if (part.fieldname !== 'attachments') {
          await part.toBuffer();
          throw validation(`files go in the field "attachments", not "${part.fieldname}"`, [
            { path: `/${part.fieldname}`, message: 'must not be a file' },
          ]);
        }
        const content = await part.toBuffer();
        const name = (part.filename || 'attachment').replace(/^.*[\\/]/, '').slice(0, 255) || 'attachment';
        const files = uploads.get(this) ?? [];
        files.push({ filename: name, mimetype: part.mimetype, content });
        uploads.set(this, files);
        // What the audit trail hashes of the request: the file's name and size, not its content.
        (this.uploadedFiles ??= []).push({ field: part.fieldname, filename: name, size: content.length });
        (part as unknown as { value: string }).value = name;
      },
    });
    scope.addHook('preValidation', async (request) => {
      // After the plugin's own preValidation hook: the body has been read.
      bodyRead.add(request);
      if (!request.isMultipart()) return;
      assertBodyAcceptable(request);
      // Each file stands in the body as its name (onFile); a field named `attachments` that holds
      // text, not a file, stands there too and would otherwise be dropped without a word.
      const entries = (request.body as { attachments?: unknown } | undefined)?.attachments;
      const named = Array.isArray(entries) ? entries.length : entries === undefined ? 0 : 1;
      if (named > (uploads.get(request)?.length ?? 0))
        throw validation('attachments must be files, not text fields', [
          { path: '/attachments', message: 'must be a file' },
        ]);
    });
    // A multipart body the parser cannot take apart (no boundary, cut short, no part where one
    // belongs) fails in busboy with a plain Error: the request's fault, a 400, never a 500.
    scope.setErrorHandler((error, request, reply) =>
      errorHandler(
        request.isMultipart() && !bodyRead.has(request) && unreadableBody(error)
          ? new AppError('bad_request', `The multipart/form-data body could not be read: ${error.message}`)
          : error,
        request,
        reply,
      ),
    );
    messageRoute(scope as App, deps);
  });

  app.get(
    '/tickets/:id/messages',
    {
      config: { permission: 'tickets:read' },
      schema: {
        tags: ['tickets'],
        summary: "List a ticket's messages",
        description:
          "The ticket's messages, newest first: author, visibility, direction, text and sanitised HTML, " +
          'and for those that came by mail the mail details (from, to, cc, subject, the reply without ' +
          'quotes and signature, classification, and attachments, which `GET /attachments/{id}` ' +
          'serves). Internal notes are included unless `visibility` keeps one kind. Paged: `limit` ' +
          "(default 50, max 200) and `cursor` (the previous page's `nextCursor`). An agent's public " +
          'message carries the `delivery` of its mail: the latest attempt (`status`, `attempt`), how many ' +
          'there were (`attempts`) and the error of the latest that failed (`lastError`).\n\n' +
          'Needs `tickets:read` (every role). 404 `not_found` when the id is not a ticket of this ' +
          'tenant or it was deleted.',
        params: IdParams,
        querystring: Type.Object(
          { ...ListQuery, visibility: Type.Optional(OneOf(VISIBILITIES)) },
          { additionalProperties: false },
        ),
        response: { 200: Page(MessageSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, async (tx) => {
        const page = await listMessages(tx, { ...request.query, ticketId: request.params.id });
        return { ...page, items: await withDeliveries(tx, page.items) };
      }),
  );

  app.get(
    '/deliveries',
    {
      config: { permission: 'deliveries:read' },
      schema: {
        tags: ['deliveries'],
        summary: 'List delivery attempts',
        description:
          'The delivery ledger: one item per attempt to deliver something (an email reply, an ' +
          'acknowledgement), newest first. `status`: `queued`, `skipped` (with `skipReason`), `sent` ' +
          '(the provider took it: `providerResponse`, `providerMessageId`, `requestId`), `delivered` ' +
          '(a delivery-status report for its Message-ID says its destination took it), `bounced` (one ' +
          'says the mail failed for its destination, or a plain bounce quoting it came back), `failed` ' +
          '(`errorCode` ' +
          '`throttled`, `auth`, `not_found`, `invalid_recipient`, `transient` or `permanent`; ' +
          '`retryable` says whether a next attempt follows) or `unknown` (the sending process stopped ' +
          'after the send began and the provider cannot tell: review, then retry). Filters: ' +
          '`ticketId` or `ticketNumber` (`T-12`), `channel`, `purpose`, `destination` (exactly: an ' +
          "address, a webhook endpoint's id), `status`, `errorCode`, `from` and `to` (creation time, " +
          '`to` exclusive). Each attempt carries `ticketNumber` beside `ticketId`. Paged: `limit` ' +
          '(default 50, max 200) and `cursor`.\n\n' +
          'Needs `deliveries:read` (admin, agent).',
        querystring: DeliveryQuery,
        response: { 200: Page(LedgerDeliverySchema), ...problemResponses },
      },
    },
    async (request) => {
      const q = request.query as Record<string, unknown>;
      if (q['from'] && q['to'] && Date.parse(String(q['from'])) > Date.parse(String(q['to'])))
        throw validation('from must not be after to', [{ path: '/from', message: 'is after to' }]);
      return withTenantRead(pool, principalOf(request).tenantId, async (tx) => {
        const page = await listDeliveries(tx, request.query);
        return { ...page, items: await withTicketNumbers(tx, page.items) };
      });
    },
  );

  app.get(
    '/deliveries/:id',
    {
      config: { permission: 'deliveries:read' },
      schema: {
        tags: ['deliveries'],
        summary: 'Get a delivery attempt',
        description:
          'One attempt of the ledger (see `GET /deliveries`). Needs `deliveries:read` (admin, agent). ' +
          '404 `not_found` when the id is not an attempt of this tenant.',
        params: IdParams,
        response: { 200: LedgerDeliverySchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, async (tx) => {
        const [one] = await withTicketNumbers(tx, [await getDelivery(tx, request.params.id)]);
        return one!;
      }),
  );

  app.post(
    '/deliveries/:id/retry',
    {
      config: { permission: 'deliveries:manage' },
      schema: {
        tags: ['deliveries'],
        summary: 'Retry a delivery',
        description:
          'Queues a new attempt of the delivery the id belongs to, after its latest attempt, which must ' +
          'have ended without delivering (`failed`, `unknown`, `bounced` or `skipped`); the new attempt ' +
          "has its own idempotency key. An agent's reply skipped before its mail was made (no mailbox, " +
          "no recipient) gets its mail now: through the ticket's mailbox, to its requester and " +
          'participants (the Cc and Bcc given with it were not kept), with a signed Message-ID. Answers ' +
          '202 with the new attempt.\n\n' +
          'Needs `deliveries:manage` (admin, agent). 404 `not_found` when the id is not an attempt of ' +
          'this tenant; 400 `validation_failed` when the latest attempt is queued, sent or delivered, ' +
          'or a skipped reply still cannot be sent (saying why: no mailbox, no address).',
        params: IdParams,
        response: { 202: LedgerDeliverySchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      if (!keyOf || !deps.queue) throw new Error('retrying a delivery needs the secret key and the queue');
      const queue = deps.queue;
      const mail = { messageIdKey: keyOf };
      const delivery = await withTenant(pool, principalOf(request).tenantId, async (tx) => {
        const row = await retryDeliveryWithMail(tx, async () => mail, request.params.id);
        await queue.send(sendJobOf(row.channel), { tenantId: tx.tenantId, deliveryId: row.id }, { tx });
        const [one] = await withTicketNumbers(tx, [await getDelivery(tx, row.id)]);
        return one!;
      });
      return reply.code(202).send(delivery);
    },
  );
};
