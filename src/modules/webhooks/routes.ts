// Webhook endpoints over HTTP: register, change, rotate the secret, read their deliveries, replay.
import { Type } from 'typebox';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { isCursorInstant } from '../../platform/pagination.ts';
import { conflict, notFound, validation } from '../../platform/errors.ts';
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
import { principalOf, type RouteModule, type ServerDeps } from '../../platform/http/server.ts';
import type { TenantTx } from '../../platform/db/tx.ts';
import { EVENT_TYPES } from '../events/events.ts';
import { notifyDeliverJob } from '../notify/job-refs.ts';
import {
  deliveryRow,
  getDelivery,
  listDeliveries,
  replayDelivery,
  replayFailedSince,
} from '../outbound/ledger.ts';
import { DELIVERY_STATUSES } from '../outbound/model.ts';
import { DeliverySchema } from '../outbound/routes.ts';
import { checkEndpointUrl } from './address.ts';
import {
  createEndpoint,
  deleteEndpoint,
  DISABLED_REASONS,
  getEndpoint,
  listEndpoints,
  rotateSecret,
  updateEndpoint,
} from './endpoints.ts';

/** Most deliveries one `POST …/replay` queues (ask again with a later `since` for more). */
export const REPLAY_LIMIT = 1000;

const Url = Type.String({ minLength: 1, maxLength: 2048, description: 'http or https' });
const Events = Type.Array(OneOf(EVENT_TYPES), {
  minItems: 1,
  maxItems: EVENT_TYPES.length,
  uniqueItems: true,
});
const Description = Type.String({ maxLength: 500 });

const CreateBody = Type.Object(
  { url: Url, events: Events, description: Type.Optional(Description) },
  { additionalProperties: false },
);

const PatchBody = Type.Object(
  {
    url: Type.Optional(Url),
    events: Type.Optional(Events),
    description: Type.Optional(Description),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1 },
);

const EndpointSchema = Type.Object({
  id: Uuid,
  url: Type.String(),
  description: Type.String(),
  events: Type.Array(OneOf(EVENT_TYPES)),
  enabled: Type.Boolean(),
  disabledReason: Nullable(OneOf(DISABLED_REASONS)),
  disabledAt: Nullable(Timestamp),
  failingSince: Nullable(Timestamp),
  secretRotatedAt: Nullable(Timestamp),
  previousSecretExpiresAt: Nullable(Timestamp),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const Secret = Type.String({ description: '`whsec_` and the base64 of 32 random bytes; shown only here' });

const CreatedSchema = Type.Object({ ...EndpointSchema.properties, secret: Secret });

const RotatedSchema = Type.Object({ secret: Secret, previousSecretExpiresAt: Timestamp });

const DeliveryParams = Type.Object({ id: Uuid, deliveryId: Uuid }, { additionalProperties: false });

const DeliveryQuery = Type.Object(
  {
    ...ListQuery,
    status: Type.Optional(OneOf(DELIVERY_STATUSES)),
    from: Type.Optional(Timestamp),
    to: Type.Optional(Timestamp),
  },
  { additionalProperties: false },
);

const ReplayBody = Type.Object({ since: Timestamp }, { additionalProperties: false });

const ReplayedSchema = Type.Object({
  replayed: Type.Integer(),
  deliveryIds: Type.Array(Uuid),
  more: Type.Boolean({ description: `true when ${REPLAY_LIMIT} were queued and more may be left` }),
});

const PAYLOAD =
  'Each event is POSTed as JSON `{type, timestamp, data}` (`timestamp`: when the event happened; ' +
  '`data`: `ticket` (the ticket or null), the fields of the event, `title` and `text`), signed per ' +
  'Standard Webhooks: `webhook-id` (the same on every retry and replay of one notification: drop ' +
  'what you have seen), `webhook-timestamp` (Unix seconds of the send) and `webhook-signature` ' +
  '(`v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">` keyed with the base64 ' +
  'after `whsec_`; during a rotation one per secret, space-separated). A 2xx answer within 15 s ' +
  'delivers it; other answers are retried after about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h ' +
  '(±10%, never sooner than a `Retry-After`), except 410 (the endpoint is disabled at once) and 4xx ' +
  'other than 408 and 429 (not retried). An endpoint whose every attempt failed for 5 days is ' +
  'disabled, with a `delivery.failed` event.';

const URL_RULES =
  'The URL must be http or https without credentials, and its host must resolve only to public ' +
  'addresses (not loopback, private, link-local, CGNAT, unique-local or unspecified, IPv4 or IPv6, ' +
  'IPv4-mapped included), checked here and again at each send, which connects to the checked ' +
  'address; redirects are not followed. `RELAYDESK_ALLOW_PRIVATE_WEBHOOKS=1` lifts the address rule.';

export const webhookRoutes: RouteModule = (app, deps: ServerDeps) => {
  const { pool, clock } = deps;
  const manage = { config: { permission: 'webhooks:manage' as const } };
  const tags = ['webhooks'];
  const secretKey = () => {
    if (!deps.secretKey) throw new Error('webhook secrets need the secret key');
    return deps.secretKey;
  };
  const checkUrl = (url: string) =>
    checkEndpointUrl(url, { allowPrivate: deps.config.allowPrivateWebhooks ?? false });

  app.post(
    '/webhook-endpoints',
    {
      ...manage,
      schema: {
        tags,
        summary: 'Register a webhook endpoint',
        description:
          'Registers an endpoint that takes the `events` it names (`ticket.created`, …). Answers 201 ' +
          'with the endpoint, a `Location` header and its signing `secret`, **shown only in this ' +
          'answer** (stored encrypted; `rotate-secret` makes a new one).\n\n' +
          PAYLOAD +
          '\n\n' +
          URL_RULES +
          '\n\nNeeds `webhooks:manage` (admin). 400 `validation_failed` for a refused URL or an unknown event.',
        body: CreateBody,
        response: { 201: CreatedSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const url = await checkUrl(request.body.url);
      const created = await withTenant(pool, principalOf(request).tenantId, (tx) =>
        createEndpoint(tx, { secretKey: secretKey(), clock }, { ...request.body, url }),
      );
      return reply.code(201).header('location', `/api/v1/webhook-endpoints/${created.id}`).send(created);
    },
  );

  app.get(
    '/webhook-endpoints',
    {
      ...manage,
      schema: {
        tags,
        summary: 'List webhook endpoints',
        description:
          "The tenant's endpoints, newest first, without secrets. Paged: `limit` (default 50, max " +
          '200) and `cursor`.\n\nNeeds `webhooks:manage` (admin).',
        querystring: Type.Object({ ...ListQuery }, { additionalProperties: false }),
        response: { 200: Page(EndpointSchema), ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => listEndpoints(tx, request.query)),
  );

  app.get(
    '/webhook-endpoints/:id',
    {
      ...manage,
      schema: {
        tags,
        summary: 'Get a webhook endpoint',
        description:
          'One endpoint, without its secret: `enabled`, and when it is off `disabledReason` (`manual`, ' +
          '`gone`: it answered 410, `failing`: 5 days of failures) and `disabledAt`; `failingSince` ' +
          'while its attempts fail; `previousSecretExpiresAt` while the secret before the last ' +
          'rotation still signs.\n\nNeeds `webhooks:manage` (admin). 404 `not_found` when the id is ' +
          'not an endpoint of this tenant.',
        params: IdParams,
        response: { 200: EndpointSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenantRead(pool, principalOf(request).tenantId, (tx) => getEndpoint(tx, request.params.id)),
  );

  app.patch(
    '/webhook-endpoints/:id',
    {
      ...manage,
      schema: {
        tags,
        summary: 'Change a webhook endpoint',
        description:
          'Changes the fields given: `url` (checked as when registering), `events`, `description`, ' +
          '`enabled` (`false` turns it off, `true` back on, forgetting its failing streak; the URL is ' +
          'checked again).\n\nNeeds `webhooks:manage` (admin). 404 `not_found` when the id is not an ' +
          'endpoint of this tenant; 400 `validation_failed` for a refused URL.',
        params: IdParams,
        body: PatchBody,
        response: { 200: EndpointSchema, ...problemResponses },
      },
    },
    async (request) => {
      const { tenantId } = principalOf(request);
      const body = request.body;
      let url = body.url === undefined ? undefined : await checkUrl(body.url);
      if (url === undefined && body.enabled === true) {
        const current = await withTenantRead(pool, tenantId, (tx) => getEndpoint(tx, request.params.id));
        await checkUrl(current.url);
        url = current.url;
      }
      return withTenant(pool, tenantId, (tx) =>
        updateEndpoint(tx, { clock }, request.params.id, { ...body, url }),
      );
    },
  );

  app.delete(
    '/webhook-endpoints/:id',
    {
      ...manage,
      schema: {
        tags,
        summary: 'Delete a webhook endpoint',
        description:
          'Deletes the endpoint; its queued attempts then fail (`not_found`) and its deliveries stay in ' +
          'the ledger. Answers 204.\n\nNeeds `webhooks:manage` (admin). 404 `not_found` when the id ' +
          'is not an endpoint of this tenant (also on a second DELETE).',
        params: IdParams,
        response: { 204: Type.Null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      await withTenant(pool, principalOf(request).tenantId, (tx) => deleteEndpoint(tx, request.params.id));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/webhook-endpoints/:id/rotate-secret',
    {
      ...manage,
      schema: {
        tags,
        summary: "Rotate a webhook endpoint's secret",
        description:
          'Makes a new signing secret and answers it, **shown only in this answer**. The secret it ' +
          'replaces keeps signing beside it for 24 hours (`previousSecretExpiresAt`): requests carry ' +
          'both signatures meanwhile, so the receiver can switch at its pace. Rotating again within ' +
          'the 24 hours drops the oldest secret. The body is empty.\n\nNeeds `webhooks:manage` ' +
          '(admin). 404 `not_found` when the id is not an endpoint of this tenant.',
        params: IdParams,
        response: { 200: RotatedSchema, ...problemResponses },
      },
    },
    async (request) =>
      withTenant(pool, principalOf(request).tenantId, (tx) =>
        rotateSecret(tx, { secretKey: secretKey(), clock }, request.params.id),
      ),
  );

  app.get(
    '/webhook-endpoints/:id/deliveries',
    {
      ...manage,
      schema: {
        tags,
        summary: "List a webhook endpoint's deliveries",
        description:
          'The attempts sent or to be sent to this endpoint, from the delivery ledger, newest first ' +
          '(see `GET /deliveries`). Filters: `status`, `from` and `to` (creation time, `to` ' +
          'exclusive). Paged: `limit` (default 50, max 200) and `cursor`.\n\nNeeds `webhooks:manage` ' +
          '(admin). 404 `not_found` when the id is not an endpoint of this tenant.',
        params: IdParams,
        querystring: DeliveryQuery,
        response: { 200: Page(DeliverySchema), ...problemResponses },
      },
    },
    async (request) => {
      const q = request.query;
      if (q.from && q.to && Date.parse(q.from) > Date.parse(q.to))
        throw validation('from must not be after to', [
          { path: '/from', message: 'is after to', in: 'query' },
        ]);
      return withTenantRead(pool, principalOf(request).tenantId, async (tx) => {
        await getEndpoint(tx, request.params.id);
        return listDeliveries(tx, { ...q, channel: 'webhook', destination: request.params.id });
      });
    },
  );

  /** The endpoint, which must be on to take a replay. */
  async function replayable(tx: TenantTx, id: string) {
    const endpoint = await getEndpoint(tx, id);
    if (!endpoint.enabled)
      throw conflict('the endpoint is disabled: enable it (PATCH enabled: true) before replaying', {
        field: 'enabled',
      });
    return endpoint;
  }

  const queue = () => {
    if (!deps.queue) throw new Error('replaying a webhook delivery needs the queue');
    return deps.queue;
  };

  app.post(
    '/webhook-endpoints/:id/deliveries/:deliveryId/replay',
    {
      ...manage,
      schema: {
        tags,
        summary: 'Replay a webhook delivery',
        description:
          'Sends a delivery of this endpoint again: a new attempt after its latest one, whatever that ' +
          'one did (a delivered one too), with the same `webhook-id`. Answers 202 with the new ' +
          'attempt. The body is empty.\n\nNeeds `webhooks:manage` (admin). 404 `not_found` when the ' +
          'id is not an endpoint of this tenant or the delivery not one of its deliveries; 409 ' +
          '`conflict` when the endpoint is disabled or the delivery has a queued attempt already.',
        params: DeliveryParams,
        response: { 202: DeliverySchema, 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const q = queue();
      const { id, deliveryId } = request.params;
      const delivery = await withTenant(pool, principalOf(request).tenantId, async (tx) => {
        await replayable(tx, id);
        const row = await deliveryRow(tx, deliveryId);
        if (!row || row.channel !== 'webhook' || row.destination !== id) throw notFound('delivery');
        const next = await replayDelivery(tx, deliveryId);
        await q.send(notifyDeliverJob, { tenantId: tx.tenantId, deliveryId: next.id }, { tx });
        return getDelivery(tx, next.id);
      });
      return reply.code(202).send(delivery);
    },
  );

  app.post(
    '/webhook-endpoints/:id/replay',
    {
      ...manage,
      schema: {
        tags,
        summary: "Replay a webhook endpoint's failed deliveries",
        description:
          'Sends again every delivery of this endpoint whose latest attempt failed and was made at or ' +
          `after \`since\`, oldest first, at most ${REPLAY_LIMIT} (\`more\` says whether to ask again ` +
          "with a later `since`). Answers 202 with the new attempts' ids.\n\nNeeds `webhooks:manage` " +
          '(admin). 404 `not_found` when the id is not an endpoint of this tenant; 409 `conflict` when ' +
          'the endpoint is disabled.',
        params: IdParams,
        body: ReplayBody,
        response: { 202: ReplayedSchema, 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const q = queue();
      const { id } = request.params;
      // An instant PostgreSQL takes as written (no year 0, no leap second, at most microseconds).
      if (!isCursorInstant(request.body.since))
        throw validation(
          'since: a UTC instant like 2026-03-02T10:00:00Z (years 1 to 9999, at most microseconds)',
          [{ path: '/since', message: 'not a UTC instant' }],
        );
      const replayed = await withTenant(pool, principalOf(request).tenantId, async (tx) => {
        await replayable(tx, id);
        const { ids, more } = await replayFailedSince(tx, {
          channel: 'webhook',
          destination: id,
          since: request.body.since,
          limit: REPLAY_LIMIT,
        });
        if (ids.length > 0)
          await q.sendMany(
            notifyDeliverJob,
            ids.map((deliveryId) => ({ tenantId: tx.tenantId, deliveryId })),
            { tx },
          );
        return { ids, more };
      });
      return reply
        .code(202)
        .send({ replayed: replayed.ids.length, deliveryIds: replayed.ids, more: replayed.more });
    },
  );
};
