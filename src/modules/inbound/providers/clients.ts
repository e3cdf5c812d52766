// Provider clients for a mailbox, built from its settings and its sealed credentials.
import type { Clock } from '../../../platform/clock.ts';
import type { Pool } from '../../../platform/db/pool.ts';
import { withTenant } from '../../../platform/db/tx.ts';
import { seal } from '../../../platform/crypto.ts';
import { AuthExpired } from '../../../platform/provider-errors.ts';
import { type Mailbox, mailboxCredentials } from '../mailboxes.ts';
import { GmailClient, type GmailCredentials } from './gmail/client.ts';
import { GraphClient, type GraphCredentials } from './graph/client.ts';

export interface ClientDeps {
  pool: Pool;
  secretKey: Buffer;
  clock: Clock;
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

export async function graphClientFor(
  deps: ClientDeps,
  tenantId: string,
  mailbox: Mailbox,
): Promise<GraphClient> {
  return new GraphClient(
    mailbox.settings.graph,
    (await credentialsOf(deps, tenantId, mailbox)) as unknown as GraphCredentials,
    deps.clock,
  );
}

export async function gmailClientFor(
  deps: ClientDeps,
  tenantId: string,
  mailbox: Mailbox,
): Promise<GmailClient> {
  const credentials = (await credentialsOf(deps, tenantId, mailbox)) as unknown as GmailCredentials;
  // A rotated refresh token is saved the moment it arrives (losing it loses the mailbox: DESIGN §1).
  return new GmailClient(mailbox.settings.gmail, credentials, deps.clock, async (refreshToken) => {
    await withTenant(deps.pool, tenantId, (tx) =>
      tx.query('UPDATE mailboxes SET credentials = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2', [
        tenantId,
        mailbox.id,
        seal(deps.secretKey, JSON.stringify({ ...credentials, refreshToken })),
      ]),
    );
  });
}
