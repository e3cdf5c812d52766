// Provider webhooks (no user token: each verifies its own proof before anything is stored).
// Microsoft Graph change notifications: the validation handshake, clientState checked in constant
// time, then one pointer job per notification, all in one transaction: 202 only after it commits,
// 503 (Graph retries) if it cannot. Lifecycle notifications go to mailbox upkeep.
import { Type } from 'typebox';
import type { Pool } from '../../platform/db/pool.ts';
import { withSystemRead, withTenant } from '../../platform/db/tx.ts';
import { safeEqual } from '../../platform/crypto.ts';
import { AppError, notFound } from '../../platform/errors.ts';
import { ProblemSchema } from '../../platform/http/schemas.ts';
import type { RouteModule } from '../../platform/http/server.ts';
import { gmailHistoryJob, mailboxLifecycleJob, processInboundJob } from './job-refs.ts';
import { decodePushData, verifyPushToken } from './providers/gmail/push.ts';
import { graphNotifications } from './providers/graph/notifications.ts';
import { noteNotification } from './health.ts';
import { recordProviderMessages } from './records.ts';

// Health bookkeeping (the mailbox's lastNotificationAt) is written at most every 10 s per mailbox and
// outside the ingress transaction: a hot row locked by every notification would serialise them all.
const lastNoted = new Map<string, number>();
function notedNotification(pool: Pool, tenantId: string, mailboxId: string): void {
  const now = performance.now();
  if (now - (lastNoted.get(mailboxId) ?? -Infinity) < 10_000) return;
  lastNoted.set(mailboxId, now);
  void withTenant(pool, tenantId, (tx) => noteNotification(tx, mailboxId)).catch(() =>
    lastNoted.delete(mailboxId),
  );
}

export const hookRoutes: RouteModule = (app, { pool, queue }) => {
  // Graph's handshake POST is text/plain with an empty body.
  app.addContentTypeParser('text/plain', { parseAs: 'string', bodyLimit: 1024 }, (_req, body, done) =>
    done(null, body),
  );

  app.post(
    '/hooks/graph/:mailboxId',
    {
      config: { public: true },
      bodyLimit: 1024 * 1024,
      schema: {
        tags: ['hooks'],
        summary: 'Receive Microsoft Graph notifications for a mailbox',
        // No API token (config.public): the provider's own proof is checked instead.
        security: [],
        description:
          'The notification URL of a Microsoft Graph subscription to the messages of the mailbox ' +
          "`mailboxId`. It takes no API token: Graph proves itself with the subscription's " +
          '`clientState` instead.\n\n' +
          'Validation handshake: a request with `validationToken` in the query is answered at once with ' +
          '200 and the token as `text/plain`, and nothing is stored (Graph sends it when a subscription ' +
          'is created); for a mailbox that does not exist or is not of kind `graph`, 404.\n\n' +
          'Notifications: the body is Graph\'s collection `{"value": [...]}`. Before anything is stored, ' +
          'the mailbox must exist and be of kind `graph`, and every notification of the collection must ' +
          "carry the `clientState` recorded with the mailbox's health when its subscription was made, " +
          "compared in constant time, and that subscription's id (`health.subscriptionId`); a mailbox " +
          'with no recorded `clientState` or subscription ' +
          'accepts nothing. Then, in ' +
          'one transaction, each change notification with a `resourceData.id` becomes an inbound record ' +
          'and a job that fetches that message from Graph, and each lifecycle notification ' +
          '(`lifecycleEvent`) a subscription upkeep job; other entries are ignored. The answer, 202 ' +
          '`{"accepted": n}` (the entries taken), comes only after that commit. A message notified ' +
          'twice is applied once: the later record ends as `duplicate`.\n\n' +
          'Errors: 400 `validation_failed` when the body is not a non-empty collection; 404 `not_found` ' +
          'for an unknown mailbox or one of another kind; 401 `webhook_signature_invalid` when a ' +
          '`clientState` or a `subscriptionId` does not match (nothing is stored); 503 `database_unavailable` or ' +
          '`queue_unavailable` when it could not be stored, for Graph to retry.',
        params: Type.Object({ mailboxId: Type.String({ format: 'uuid' }) }),
        querystring: Type.Object({ validationToken: Type.Optional(Type.String({ maxLength: 1024 })) }),
        response: {
          200: {
            description: 'The validation handshake: the validationToken, as text/plain',
            content: { 'text/plain': { schema: Type.String() } },
          },
          202: Type.Object(
            { accepted: Type.Integer() },
            { description: 'The notifications taken, committed with their jobs' },
          ),
          400: ProblemSchema,
          401: ProblemSchema,
          404: ProblemSchema,
          503: ProblemSchema,
        },
      },
    },
    async (request, reply) => {
      // The mailbox by id alone, across tenants: the URL is all a provider's request says.
      const { rows } = await withSystemRead(pool, (sys) =>
        sys.query<{
          tenant_id: string;
          kind: string;
          client_state: string | null;
          subscription_id: string | null;
        }>(
          `SELECT m.tenant_id, m.kind, h.client_state, h.subscription_id
             FROM mailboxes m LEFT JOIN mailbox_health h ON h.tenant_id = m.tenant_id AND h.mailbox_id = m.id
            WHERE m.id = $1`,
          [request.params.mailboxId],
        ),
      );
      const mailbox = rows[0];
      if (!mailbox || mailbox.kind !== 'graph') throw notFound('mailbox');

      // The handshake: answer the decoded token as text/plain, at once (Graph waits at most 10 s).
      const token = request.query.validationToken;
      if (token !== undefined) return reply.code(200).type('text/plain; charset=utf-8').send(token);

      const notifications = graphNotifications(request.body);
      const expected = mailbox.client_state ?? '';
      // Every notification must carry our secret; one that does not means the batch is not from our subscription.
      if (
        expected === '' ||
        !notifications.every((n) => typeof n.clientState === 'string' && safeEqual(n.clientState, expected))
      ) {
        throw new AppError('webhook_signature_invalid', 'clientState does not match this mailbox');
      }
      // And be about the subscription recorded for the mailbox: a notification for another one (a
      // subscription we did not make, or one replaced since) is not ours to act on.
      if (
        !mailbox.subscription_id ||
        !notifications.every((n) => n.subscriptionId === mailbox.subscription_id)
      ) {
        throw new AppError(
          'webhook_signature_invalid',
          'the notification is not for the subscription recorded for this mailbox',
        );
      }
      if (!queue) throw new AppError('queue_unavailable', 'the queue does not run in this process');
      const tenantId = mailbox.tenant_id;
      // One transaction, a handful of statements whatever the batch size: the records in one INSERT,
      // their jobs in one INSERT.
      const lifecycle = notifications.filter((n) => n.lifecycleEvent);
      const messageIds = notifications
        .filter((n) => !n.lifecycleEvent && n.resourceData?.id)
        .map((n) => n.resourceData!.id!);
      await withTenant(pool, tenantId, async (tx) => {
        const inboundIds = await recordProviderMessages(tx, request.params.mailboxId, 'graph', messageIds);
        if (inboundIds.length > 0)
          await queue.sendMany(
            processInboundJob,
            inboundIds.map((inboundId) => ({ tenantId, inboundId })),
            { tx },
          );
        for (const n of lifecycle) {
          await queue.send(
            mailboxLifecycleJob,
            {
              tenantId,
              mailboxId: request.params.mailboxId,
              event: n.lifecycleEvent!,
              subscriptionId: n.subscriptionId ?? null,
            },
            { tx },
          );
        }
      });
      notedNotification(pool, tenantId, request.params.mailboxId);
      const accepted = messageIds.length + lifecycle.length;
      return reply.code(202).send({ accepted });
    },
  );

  // Gmail Pub/Sub push: verify the OIDC token, then enqueue a history pointer (202 after commit).
  app.post(
    '/hooks/gmail/:mailboxId',
    {
      config: { public: true },
      bodyLimit: 256 * 1024,
      schema: {
        tags: ['hooks'],
        summary: 'Receive Gmail push notifications for a mailbox',
        // No API token (config.public): the provider's own proof is checked instead.
        security: [],
        description:
          'The push endpoint of the Pub/Sub subscription on the Gmail watch topic of the mailbox ' +
          '`mailboxId`. It takes no API token: before anything is stored, the OIDC token Pub/Sub sends ' +
          "as `Authorization: Bearer` is verified. It must be an RS256 JWT signed by a key of Google's " +
          'JWKS (or of `settings.gmail.jwksUrl`), issued by `accounts.google.com`, for the audience ' +
          '`settings.gmail.pushAudience`, its `email` claim `settings.gmail.serviceAccountEmail` with ' +
          '`email_verified` true, and in date (30 s of clock tolerance). The mailbox must be of kind ' +
          '`gmail` and have both settings.\n\n' +
          'The body is the push envelope, whose `message.data` is base64 JSON `{emailAddress, ' +
          "historyId}`; `emailAddress` must be the mailbox's Gmail user (`settings.gmail.user`, else " +
          "its address; case-insensitive). Then a job that reads the mailbox's history since the last " +
          'point read is committed, and the answer is 202 `{"accepted": 1}`. That job makes an inbound ' +
          'record per new message; pushes repeated or out of order are harmless (a message found twice ' +
          'ends as `duplicate`).\n\n' +
          'Errors: 401 `webhook_signature_invalid` for a missing or invalid token, a wrong audience or ' +
          'service account, or a mailbox without `pushAudience` and `serviceAccountEmail` (nothing is ' +
          'stored); 404 `not_found` for an unknown mailbox or one of another kind; 400 ' +
          '`validation_failed` for a malformed envelope or a push for another address; 503 ' +
          '`provider_unavailable` when the JWKS could not be read (no verdict on the token), ' +
          '`database_unavailable` or `queue_unavailable` when it could not be stored. Pub/Sub delivers ' +
          'again whatever is not answered with a 2xx.',
        params: Type.Object({ mailboxId: Type.String({ format: 'uuid' }) }),
        response: {
          202: Type.Object({ accepted: Type.Integer() }, { description: 'The push, committed as a job' }),
          400: ProblemSchema,
          401: ProblemSchema,
          404: ProblemSchema,
          503: ProblemSchema,
        },
      },
    },
    async (request, reply) => {
      const { rows } = await withSystemRead(pool, (sys) =>
        sys.query<{
          tenant_id: string;
          kind: string;
          address_normalized: string;
          settings: Record<string, any>;
        }>('SELECT tenant_id, kind, address_normalized, settings FROM mailboxes WHERE id = $1', [
          request.params.mailboxId,
        ]),
      );
      const mailbox = rows[0];
      if (!mailbox || mailbox.kind !== 'gmail') throw notFound('mailbox');
      const gmail = (mailbox.settings['gmail'] ?? {}) as Record<string, unknown>;
      const jwksUrl = String(gmail['jwksUrl'] ?? 'https://www.googleapis.com/oauth2/v3/certs');
      const audience = typeof gmail['pushAudience'] === 'string' ? gmail['pushAudience'] : undefined;
      const serviceAccountEmail =
        typeof gmail['serviceAccountEmail'] === 'string' ? gmail['serviceAccountEmail'] : undefined;
      if (!audience || !serviceAccountEmail) {
        throw new AppError(
          'webhook_signature_invalid',
          'the mailbox has no pushAudience/serviceAccountEmail to verify pushes against',
        );
      }
      await verifyPushToken(request.headers.authorization, { jwksUrl, audience, serviceAccountEmail });
      const { emailAddress, historyId } = decodePushData(request.body);
      const user = String(gmail['user'] ?? mailbox.address_normalized).toLowerCase();
      if (emailAddress.toLowerCase() !== user) {
        throw new AppError('validation_failed', `the push is for ${emailAddress}, not this mailbox`);
      }
      if (!queue) throw new AppError('queue_unavailable', 'the queue does not run in this process');
      const tenantId = mailbox.tenant_id;
      await withTenant(pool, tenantId, async (tx) => {
        await queue.send(
          gmailHistoryJob,
          { tenantId, mailboxId: request.params.mailboxId, historyId },
          { tx },
        );
      });
      notedNotification(pool, tenantId, request.params.mailboxId);
      return reply.code(202).send({ accepted: 1 });
    },
  );
};
