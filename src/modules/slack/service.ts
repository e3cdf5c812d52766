// Connecting a tenant to its Slack workspace: the base URL is checked against where Slack's Web API
// lives (or what the operator allows), the token against Slack itself (auth.test), and only a token
// Slack accepts is sealed and kept.
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { AppError, validation } from '../../platform/errors.ts';
import { operatorAllows } from '../inbound/mailboxes.ts';
import { DeliveryError } from '../outbound/transports.ts';
import {
  DEFAULT_SLACK_API_BASE_URL,
  saveSlackIntegration,
  type SlackIntegrationView,
} from './integration.ts';
import { SlackApiError, slackAuthTest } from './web-api.ts';

/** Where Slack's Web API is: the commercial and the GovSlack workspaces. */
export const SLACK_ORIGINS = ['https://slack.com', 'https://slack-gov.com'];

/** The base URL as stored (no trailing slash); refuses one that is not Slack's or allowed by the operator. */
export function checkApiBaseUrl(given: string | undefined, operatorOrigins: readonly string[]): string {
  if (given === undefined) return DEFAULT_SLACK_API_BASE_URL;
  const where = [{ path: '/apiBaseUrl', message: '' }];
  let url: URL | undefined;
  try {
    url = new URL(given);
  } catch {
    url = undefined;
  }
  if (!url || url.username || url.password || url.search || url.hash || !/^https?:$/.test(url.protocol)) {
    where[0]!.message = 'must be an http(s) URL without credentials, query or fragment';
    throw validation(`apiBaseUrl ${where[0]!.message}`, where);
  }
  if (!SLACK_ORIGINS.includes(url.origin) && !operatorAllows(url, operatorOrigins)) {
    where[0]!.message = `must be on ${SLACK_ORIGINS.join(', ')} (or an origin the operator allows in RELAYDESK_PROVIDER_ORIGINS)`;
    throw validation(`apiBaseUrl ${where[0]!.message}`, where);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

export interface ConnectSlackInput {
  pool: Pool;
  secretKey: Buffer;
  clock: Clock;
  tenantId: string;
  botToken: string;
  apiBaseUrl?: string | undefined;
  /** RELAYDESK_PROVIDER_ORIGINS. */
  operatorOrigins: readonly string[];
}

/** Checks the token with auth.test and stores it (replacing the tenant's earlier one). */
export async function connectSlack(input: ConnectSlackInput): Promise<SlackIntegrationView> {
  const apiBaseUrl = checkApiBaseUrl(input.apiBaseUrl, input.operatorOrigins);
  const botToken = input.botToken.trim();
  let who: Awaited<ReturnType<typeof slackAuthTest>>;
  try {
    who = await slackAuthTest({ apiBaseUrl, botToken, now: input.clock.now() });
  } catch (err) {
    if (!(err instanceof DeliveryError)) throw err;
    // Slack's rate limit or an outage says nothing about the token: ask again later.
    if (err.retryable)
      throw new AppError('provider_unavailable', `Slack could not check the token: ${err.message}`, {
        cause: err,
      });
    const providerError = err instanceof SlackApiError ? err.slackError : undefined;
    throw new AppError(
      'provider_credentials_rejected',
      `Slack refused the bot token${providerError ? ` (${providerError})` : `: ${err.message}`}`,
      { details: { providerError: providerError ?? null }, cause: err },
    );
  }
  return withTenant(input.pool, input.tenantId, (tx) =>
    saveSlackIntegration(tx, {
      secretKey: input.secretKey,
      botToken,
      apiBaseUrl,
      ...who,
      now: input.clock.now(),
    }),
  );
}
