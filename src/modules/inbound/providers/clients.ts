// Provider clients for a mailbox, built from its settings and its sealed credentials. A mailbox
// connected by OAuth with the install's app registration stores no client secret: it is taken from
// the configuration (RELAYDESK_MICROSOFT_* / RELAYDESK_GOOGLE_*) when the client is built, so the
// operator can rotate it in one place.
import type { Clock } from '../../../platform/clock.ts';
import type { Config } from '../../../platform/config.ts';
import type { Pool } from '../../../platform/db/pool.ts';
import { withTenant } from '../../../platform/db/tx.ts';
import { AuthExpired } from '../../../platform/provider-errors.ts';
import { type Mailbox, mailboxCredentials, saveRotatedRefreshToken } from '../mailboxes.ts';
import { GmailClient, type GmailCredentials } from './gmail/client.ts';
import { GraphClient, type GraphCredentials } from './graph/client.ts';

export interface ClientDeps {
  pool: Pool;
  secretKey: Buffer;
  clock: Clock;
  /** The install's OAuth app registrations (the secret of a mailbox connected with one of them). */
  oauth?: Config['oauth'] | undefined;
}

async function credentialsOf(
  deps: ClientDeps,
  tenantId: string,
  mailbox: Mailbox,
): Promise<Record<string, unknown>> {
  const credentials = await withTenant(deps.pool, tenantId, (tx) =>
    mailboxCredentials(tx, deps.secretKey, mailbox.id),
  );
  if (!credentials) throw new AuthExpired(mailbox.kind, `the mailbox ${mailbox.address} has no credentials`);
  return credentials;
}

/** The mailbox user the provider knows (a setting, else the address). */
export const providerUser = (mailbox: Mailbox, provider: 'graph' | 'gmail'): string =>
  String(mailbox.settings[provider]['user'] ?? mailbox.address);

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * Saves a refresh token the provider rotated, the moment it arrives (losing it loses the mailbox:
 * DESIGN §3.7), through the mailbox's own operation.
 */
const rotationSaver =
  (deps: ClientDeps, tenantId: string, mailbox: Mailbox) =>
  async (rotation: { previous: string; next: string }): Promise<void> => {
    await withTenant(deps.pool, tenantId, (tx) =>
      saveRotatedRefreshToken(tx, deps.secretKey, mailbox.id, rotation),
    );
  };

/** Delegated credentials completed with the install's app registration, or why they cannot be. */
function delegatedCredentials(
  stored: Record<string, unknown>,
  app: { clientId: string; clientSecret: string } | undefined,
  mailbox: Mailbox,
  envPrefix: string,
): { refreshToken: string; clientId: string; clientSecret: string | undefined } {
  const refreshToken = text(stored['refreshToken']);
  if (!refreshToken)
    throw new AuthExpired(
      mailbox.kind,
      `the mailbox ${mailbox.address} is not connected yet (no refresh token)`,
    );
  const clientId = text(stored['clientId']) ?? app?.clientId;
  if (!clientId)
    throw new AuthExpired(
      mailbox.kind,
      `the mailbox ${mailbox.address} names no app registration: set ${envPrefix}_CLIENT_ID and ${envPrefix}_CLIENT_SECRET`,
    );
  const clientSecret =
    text(stored['clientSecret']) ?? (app?.clientId === clientId ? app.clientSecret : undefined);
  return { refreshToken, clientId, clientSecret };
}

export async function graphClientFor(
  deps: ClientDeps,
  tenantId: string,
  mailbox: Mailbox,
): Promise<GraphClient> {
  const stored = await credentialsOf(deps, tenantId, mailbox);
  const credentials: GraphCredentials =
    text(stored['refreshToken']) || text(stored['oauthClientSecret'])
      ? delegatedCredentials(stored, deps.oauth?.microsoft, mailbox, 'RELAYDESK_MICROSOFT')
      : (stored as unknown as GraphCredentials);
  return new GraphClient(mailbox.settings.graph, credentials, deps.clock, {
    cacheKey: mailbox.id,
    onRotatedRefreshToken: rotationSaver(deps, tenantId, mailbox),
  });
}

export async function gmailClientFor(
  deps: ClientDeps,
  tenantId: string,
  mailbox: Mailbox,
): Promise<GmailClient> {
  const stored = await credentialsOf(deps, tenantId, mailbox);
  const delegated = delegatedCredentials(stored, deps.oauth?.google, mailbox, 'RELAYDESK_GOOGLE');
  const credentials: GmailCredentials = { ...delegated, clientSecret: delegated.clientSecret ?? '' };
  return new GmailClient(
    mailbox.settings.gmail,
    credentials,
    deps.clock,
    rotationSaver(deps, tenantId, mailbox),
  );
}
