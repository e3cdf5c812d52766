// The Teams notification channel (notify/channel.ts): a person is reached in their most recent
// personal conversation with the bot, a rule's fixed destination is a channel or group chat the bot
// has seen; a notification is an Adaptive Card posted proactively to the conversation through the
// connector, paced under Teams' per-conversation limits. A conversation that refuses the bot for
// good (removed from the roster, blocked, disabled, gone) is marked stale until it is used again.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withTenant, withTenantRead } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import type { ChannelAdapter, ChannelSend, ChannelSent } from '../notify/channel.ts';
import { DeliveryError } from '../outbound/transports.ts';
import { ADAPTIVE_CARD, notificationCard } from './cards.ts';
import { BotConnector } from './connector.ts';
import { integrationCredentials } from './integrations.ts';
import { ConversationPacer, type Sleep } from './pacing.ts';
import {
  conversationTarget,
  markConversationStale,
  personalConversationOf,
  sharedConversationExists,
} from './references.ts';

export interface TeamsChannelDeps {
  pool: Pool;
  secretKey: Buffer;
  clock: Clock;
  logger: Logger;
  /** Tests: the connector's HTTP client, the pacer's sleep, or the pacer itself. */
  fetch?: typeof fetch;
  sleep?: Sleep;
  pacer?: ConversationPacer;
}

/** Attempts after which a retryable failure is given up (the 8th failure is the last). */
export const TEAMS_MAX_ATTEMPTS = 8;
const FIRST_DELAY_SECONDS = 30;
const MAX_DELAY_SECONDS = 3600;

/** Failures after which the conversation is not worth sending to until it is used again. */
const STALE_CODES = new Set(['invalid_recipient', 'not_found']);

/** Seconds before attempt `attempt + 1`: Retry-After when given, else 30 s doubling to an hour. */
export function teamsRetryDelaySeconds(attempt: number, retryAfter: number | undefined): number | undefined {
  if (attempt >= TEAMS_MAX_ATTEMPTS) return undefined;
  if (retryAfter !== undefined) return Math.min(Math.max(1, Math.ceil(retryAfter)), MAX_DELAY_SECONDS);
  return Math.min(FIRST_DELAY_SECONDS * 2 ** Math.max(0, attempt - 1), MAX_DELAY_SECONDS);
}

export function teamsChannel(deps: TeamsChannelDeps): ChannelAdapter {
  const connector = new BotConnector({ clock: deps.clock, ...(deps.fetch ? { fetch: deps.fetch } : {}) });
  const pacer =
    deps.pacer ?? new ConversationPacer({ clock: deps.clock, ...(deps.sleep ? { sleep: deps.sleep } : {}) });

  // Teams' limits are per bot and conversation; each tenant has its own bot, and one channel's
  // conversation id is the same for every bot in it.
  const keyOf = (input: Pick<ChannelSend, 'tenantId' | 'destination'>) =>
    `${input.tenantId}/${input.destination}`;
  const pace = (input: ChannelSend): Promise<void> => pacer.wait(keyOf(input), input.signal);

  async function send(input: ChannelSend): Promise<ChannelSent> {
    const conversationId = input.destination;
    const { credentials, target } = await withTenantRead(deps.pool, input.tenantId, async (tx) => ({
      credentials: await integrationCredentials(tx, deps.secretKey),
      target: await conversationTarget(tx, conversationId),
    }));
    if (!credentials)
      throw new DeliveryError('auth', 'the tenant has no Teams integration (PUT /integrations/teams)');
    if (!target) throw new DeliveryError('not_found', 'the bot has never seen this Teams conversation');
    if (target.stale)
      throw new DeliveryError(
        'invalid_recipient',
        'the Teams conversation refused the bot earlier; it is used again after a new activity from it',
      );
    const card = notificationCard(input.content);
    if (!input.paced) await pace(input);
    const sent = await connector
      .sendActivity({
        credentials,
        serviceUrl: target.serviceUrl,
        conversationId,
        activity: {
          type: 'message',
          summary: input.content.title,
          text: input.content.title,
          attachments: [{ contentType: ADAPTIVE_CARD, content: card }],
        },
        signal: input.signal,
      })
      .catch((err: unknown) => {
        if (err instanceof DeliveryError && err.code === 'throttled')
          pacer.backOff(keyOf(input), err.retryAfterSeconds ?? FIRST_DELAY_SECONDS);
        throw err;
      });
    return {
      providerMessageId: sent.id,
      providerResponse: `${sent.status}${sent.id ? ` activity ${sent.id}` : ''}`,
      requestId: sent.requestId,
    };
  }

  return {
    channel: 'teams',
    resendIsSafe: false,
    personDestination: (tx, personId) => personalConversationOf(tx, personId),
    destinationExists: (tx, destination) => sharedConversationExists(tx, destination),
    pace,
    send,
    retryDelaySeconds: teamsRetryDelaySeconds,
    async onTerminalFailure(tenantId, destination, error) {
      if (!STALE_CODES.has(error.code)) return;
      const marked = await withTenant(deps.pool, tenantId, (tx) =>
        markConversationStale(tx, destination, `${error.code}: ${error.message}`),
      );
      deps.logger.info({ tenantId, marked, code: error.code }, 'a Teams conversation was marked stale');
    },
  };
}
