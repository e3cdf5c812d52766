// The Slack notification channel: a person is reached by their `slack` identity (a Slack user id;
// chat.postMessage to a user id posts in the app's DM with them), a rule names a channel by its id.
// One attempt is one chat.postMessage, paced per channel (pacing.ts) and classified (web-api.ts).
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withTenantRead } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import type { ChannelAdapter, ChannelSend, ChannelSent } from '../notify/channel.ts';
import { DeliveryError } from '../outbound/transports.ts';
import { slackMessage } from './blocks.ts';
import { hasSlackIntegration, slackConnection } from './integration.ts';
import { ChannelPacer, type PacerOptions } from './pacing.ts';
import { callSlack } from './web-api.ts';

/** A conversation id: public (C), private (G) channel or a DM (D). What a rule may name. */
export const SLACK_CHANNEL_ID = /^[CGD][A-Z0-9]{6,30}$/;
/** Where a post may go: a conversation, or a user (U, W: Enterprise Grid) for their DM. */
const SLACK_TARGET_ID = /^[CGDUW][A-Z0-9]{6,30}$/;

export const SLACK_MAX_ATTEMPTS = 8;

export interface SlackChannelDeps {
  pool: Pool;
  secretKey: Buffer;
  clock: Clock;
  logger: Logger;
  /** Per-channel spacing (defaults: one a second, a send waits at most 20 s for its slot). */
  pacing?: PacerOptions;
  /** Per call to Slack (default 10 s). */
  timeoutMs?: number;
}

/** Seconds before the next attempt: Slack's Retry-After, else 30 s doubling up to an hour; none after the 8th. */
export function slackRetryDelaySeconds(attempt: number, retryAfter: number | undefined): number | undefined {
  if (attempt >= SLACK_MAX_ATTEMPTS) return undefined;
  return Math.min(3600, retryAfter ?? 30 * 2 ** (attempt - 1));
}

export function slackChannel(deps: SlackChannelDeps): ChannelAdapter {
  const pacer = new ChannelPacer(deps.pacing);
  // The slot is taken first, before any await: sends to one channel go out in the order they were
  // asked for.
  const pace = (input: ChannelSend): Promise<void> =>
    pacer.wait(`${input.tenantId}/${input.destination}`, input.signal);
  const log = deps.logger.child({ component: 'slack' });

  return {
    channel: 'slack',
    // Posting to a user id is not idempotent at Slack (no client key): a resend after an unknown
    // outcome could post twice.
    resendIsSafe: false,

    async personDestination(tx: TenantTx, personId: string) {
      // The person's first Slack identity, and only while the tenant has a workspace to post with.
      const { rows } = await tx.query<{ external_id: string }>(
        `SELECT i.external_id FROM person_identities i
          WHERE i.tenant_id = $1 AND i.person_id = $2 AND i.kind = 'slack'
            AND EXISTS (SELECT 1 FROM slack_integrations s WHERE s.tenant_id = $1)
          ORDER BY i.created_at, i.external_id LIMIT 1`,
        [tx.tenantId, personId],
      );
      return rows[0]?.external_id;
    },

    async destinationExists(tx: TenantTx, destination: string) {
      // The shape and the integration only: asking Slack (conversations.info) from inside the
      // rule's transaction would hold it open on the network, and a channel the bot cannot see yet
      // may be one it is about to be invited to. A wrong id shows as not_found on the first send.
      return SLACK_CHANNEL_ID.test(destination) && (await hasSlackIntegration(tx));
    },

    pace,

    async send(input: ChannelSend): Promise<ChannelSent> {
      if (!SLACK_TARGET_ID.test(input.destination))
        throw new DeliveryError(
          'invalid_recipient',
          `Slack: "${input.destination.slice(0, 64)}" is not a Slack channel or user id`,
        );
      const key = `${input.tenantId}/${input.destination}`;
      if (!input.paced) await pace(input);
      const connection = await withTenantRead(deps.pool, input.tenantId, (tx) =>
        slackConnection(tx, deps.secretKey),
      );
      if (!connection) throw new DeliveryError('auth', 'Slack is not connected for this tenant');
      const message = slackMessage(input.content);
      try {
        const { body, requestId } = await callSlack({
          apiBaseUrl: connection.apiBaseUrl,
          botToken: connection.botToken,
          method: 'chat.postMessage',
          args: {
            channel: input.destination,
            text: message.text,
            blocks: message.blocks,
            unfurl_links: false,
          },
          json: true,
          writes: true,
          timeoutMs: deps.timeoutMs,
          signal: input.signal,
          now: deps.clock.now(),
        });
        const channel = typeof body['channel'] === 'string' ? body['channel'] : input.destination;
        const ts = typeof body['ts'] === 'string' ? body['ts'] : null;
        return {
          providerMessageId: ts ? `${channel}/${ts}` : null,
          providerResponse: `ok channel=${channel}${ts ? ` ts=${ts}` : ''}`.slice(0, 1024),
          requestId,
        };
      } catch (err) {
        if (err instanceof DeliveryError && err.code === 'throttled') {
          pacer.backOff(key, err.retryAfterSeconds ?? 30);
          log.info(
            { tenantId: input.tenantId, destination: input.destination, retryAfter: err.retryAfterSeconds },
            'Slack rate-limited a post',
          );
        }
        throw err;
      }
    },

    retryDelaySeconds: slackRetryDelaySeconds,
  };
}
