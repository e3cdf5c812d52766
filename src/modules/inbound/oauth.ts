// Connecting a Graph or Gmail mailbox as an operator would: the OAuth 2.0 authorization code flow
// with PKCE (RFC 7636). `startConnection` hands out the provider's authorization URL and keeps a
// single-use state for it (oauth_states: the state's SHA-256, the code verifier sealed, 10 minutes);
// `finishConnection` is the callback: it finds the state by its hash alone (the provider's redirect
// says nothing else), exchanges the code for tokens, stores the refresh token sealed on the mailbox
// (through mailboxes.ts, in the transaction that marks the state used) and subscribes at once.
//
// What must stay true: a state finishes at most one connection, only of the mailbox and tenant it
// was made for; nothing is stored when the provider refused (access_denied, invalid_grant) or the
// state is unknown, used or expired; the code verifier and the tokens never leave sealed storage
// except in the requests to the provider.
import { createHash, randomBytes } from 'node:crypto';
import type { Clock } from '../../platform/clock.ts';
import type { Config } from '../../platform/config.ts';
import { seal, sha256, unseal } from '../../platform/crypto.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { type TenantTx, withSystemRead, withTenant } from '../../platform/db/tx.ts';
import { isDatabaseUnavailable, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { ProviderError, providerRequest, throwForResponse } from '../../platform/provider-errors.ts';
import { getHealth, type HealthStatus } from './health.ts';
import { getMailbox, type Mailbox, mailboxCredentials, updateMailbox } from './mailboxes.ts';
import { forgetGraphTokens } from './providers/graph/client.ts';

/** How long an authorization URL can be completed. */
export const STATE_LIFETIME_MS = 10 * 60_000;

/** What each provider is asked for: reading and sending the mailbox's mail, and a refresh token. */
export const OAUTH_SCOPES = {
  graph: 'offline_access https://graph.microsoft.com/Mail.Read https://graph.microsoft.com/Mail.Send',
  gmail: 'https://www.googleapis.com/auth/gmail.modify',
} as const;

/**
 * Whether a returnTo is a path of the console: under /console, no "//" (which a browser could read as
 * another host once joined to the public URL), no backslash, no control characters or spaces. The
 * callback joins it to RELAYDESK_PUBLIC_URL, so it can only ever lead back to this install.
 */
export const isConsolePath = (value: string): boolean =>
  value.length <= 512 &&
  /^\/console(\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*)?$/.test(value) &&
  !value.includes('//');

/** The redirect URI to register with the provider. */
export const redirectUriOf = (publicUrl: string): string => `${publicUrl}/oauth/callback`;

export interface OAuthDeps {
  pool: Pool;
  secretKey: Buffer;
  clock: Clock;
  /** RELAYDESK_PUBLIC_URL: the provider redirects the browser to {publicUrl}/oauth/callback. */
  publicUrl: string | undefined;
  /** The install's app registrations (RELAYDESK_MICROSOFT_* and RELAYDESK_GOOGLE_*). */
  oauth: Config['oauth'] | undefined;
}

type Provider = 'graph' | 'gmail';

interface AppRegistration {
  clientId: string;
  clientSecret: string;
  /** The mailbox's own (settings.oauth.clientId): its secret is stored with the tokens. */
  own: boolean;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * The app registration a mailbox connects with: its own (settings.oauth.clientId, the secret in
 * credentials.oauthClientSecret, or clientSecret once connected with it), else the install's.
 */
function appRegistration(
  mailbox: Mailbox & { kind: Provider },
  credentials: Record<string, unknown> | null,
  oauth: Config['oauth'] | undefined,
): AppRegistration {
  const ownId = text(mailbox.settings.oauth?.clientId);
  if (ownId) {
    const secret =
      text(credentials?.['oauthClientSecret']) ??
      (credentials?.['clientId'] === ownId ? text(credentials['clientSecret']) : undefined);
    if (!secret)
      throw validation(
        `settings.oauth.clientId is set: give the secret of that app registration as credentials.oauthClientSecret`,
        [{ path: '/credentials/oauthClientSecret', message: 'is required with settings.oauth.clientId' }],
      );
    return { clientId: ownId, clientSecret: secret, own: true };
  }
  const [app, prefix, name] =
    mailbox.kind === 'graph'
      ? [oauth?.microsoft, 'RELAYDESK_MICROSOFT', 'Microsoft']
      : [oauth?.google, 'RELAYDESK_GOOGLE', 'Google'];
  if (!app)
    throw validation(
      `no ${name} app registration to connect with: set ${prefix}_CLIENT_ID and ${prefix}_CLIENT_SECRET ` +
        `(or give the mailbox its own: settings.oauth.clientId and credentials.oauthClientSecret)`,
    );
  return { ...app, own: false };
}

function assertConnectable(mailbox: Mailbox): asserts mailbox is Mailbox & { kind: Provider } {
  if (mailbox.kind !== 'graph' && mailbox.kind !== 'gmail')
    throw validation(
      `a ${mailbox.kind} mailbox is not connected by OAuth (only graph and gmail mailboxes are)`,
    );
}

function publicUrlOrFail(deps: OAuthDeps): string {
  if (!deps.publicUrl)
    throw validation(
      'RELAYDESK_PUBLIC_URL is not set: the provider must be told where to send the browser back ' +
        '({RELAYDESK_PUBLIC_URL}/oauth/callback); set it to the address this install is reached at',
    );
  return deps.publicUrl;
}

/**
 * Starts connecting a mailbox: a single-use state with its PKCE verifier, and the provider's
 * authorization URL to send the mailbox's owner to.
 */
export async function startConnection(
  deps: OAuthDeps,
  tx: TenantTx,
  input: {
    mailboxId: string;
    /** The person who asked (the token's), for the record. */
    requestedBy: string | null;
    /** A console path the callback sends the browser to afterwards (checked by isConsolePath). */
    returnTo?: string | undefined;
  },
): Promise<{ authorizationUrl: string; expiresAt: string }> {
  if (input.returnTo !== undefined && !isConsolePath(input.returnTo))
    throw validation('returnTo must be a path of the console (/console/...)', [
      { path: '/returnTo', message: 'must be a path under /console' },
    ]);
  const mailbox = await getMailbox(tx, input.mailboxId);
  assertConnectable(mailbox);
  const redirectUri = redirectUriOf(publicUrlOrFail(deps));
  const app = appRegistration(mailbox, await mailboxCredentials(tx, deps.secretKey, mailbox.id), deps.oauth);

  const state = randomBytes(32).toString('base64url');
  // 64 characters of the unreserved set (RFC 7636 §4.1 asks for 43 to 128).
  const verifier = randomBytes(48).toString('base64url');
  const now = deps.clock.now();
  const expiresAt = new Date(now.getTime() + STATE_LIFETIME_MS);
  await tx.query(
    `INSERT INTO oauth_states (tenant_id, id, mailbox_id, state_hash, code_verifier, client_id, redirect_uri,
                               requested_by, created_at, expires_at, return_to)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [
      tx.tenantId,
      uuidv7(),
      mailbox.id,
      sha256(state),
      seal(deps.secretKey, verifier),
      app.clientId,
      redirectUri,
      input.requestedBy,
      now,
      expiresAt,
      input.returnTo ?? null,
    ],
  );

  const settings = mailbox.kind === 'graph' ? mailbox.settings.graph : mailbox.settings.gmail;
  const url = new URL(settings.authorizeUrl);
  const params: Record<string, string> = {
    client_id: app.clientId,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: OAUTH_SCOPES[mailbox.kind],
    state,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    login_hint: mailbox.address,
    // Google gives a refresh token only for offline access, and again only when consent is asked again.
    ...(mailbox.kind === 'gmail' ? { access_type: 'offline', prompt: 'consent' } : {}),
  };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return { authorizationUrl: url.toString(), expiresAt: expiresAt.toISOString() };
}

interface StateRow {
  tenant_id: string;
  id: string;
  mailbox_id: string;
  code_verifier: Buffer;
  client_id: string;
  redirect_uri: string;
  expired: boolean;
  used: boolean;
  return_to: string | null;
}

/** The result of a callback the state of which was good: what the page tells the browser user. */
export type ConnectionResult = (
  | {
      connected: true;
      mailbox: Mailbox;
      health: HealthStatus;
      /** Why subscribing did not work yet (upkeep goes on trying), when it did not. */
      subscribeProblem: string | undefined;
    }
  | {
      connected: false;
      mailbox: Mailbox | undefined;
      reason: string;
      /** The provider's OAuth error code (access_denied, ...), when it sent one. */
      error?: string | undefined;
    }
) & {
  /** The console path connecting started from, to send the browser back to. */
  returnTo?: string | undefined;
};

/** Marks a state used; false when it was used meanwhile. */
async function markUsed(tx: TenantTx, id: string, now: Date): Promise<boolean> {
  const { rowCount } = await tx.query(
    'UPDATE oauth_states SET used_at = $3 WHERE tenant_id = $1 AND id = $2 AND used_at IS NULL',
    [tx.tenantId, id, now],
  );
  return rowCount === 1;
}

const stateRefused = (why: string) =>
  validation(`${why}: start connecting the mailbox again (POST /api/v1/mailboxes/{id}/connect)`, [
    { path: '/state', message: why, in: 'query' },
  ]);

/**
 * The callback: checks the state, exchanges the code, stores the tokens and subscribes. Throws
 * validation_failed for a state that is unknown, used or expired (nothing stored); answers
 * `connected: false` with the reason when the provider refused (nothing stored either).
 */
export async function finishConnection(
  deps: OAuthDeps,
  input: {
    state: string;
    code?: string | undefined;
    error?: string | undefined;
    errorDescription?: string | undefined;
  },
  subscribe: (tenantId: string, mailboxId: string) => Promise<string | undefined>,
): Promise<ConnectionResult> {
  // By the hash alone, across tenants: the redirect carries nothing else. The tenant comes from the row.
  const now = deps.clock.now();
  const { rows } = await withSystemRead(deps.pool, (sys) =>
    sys.query<StateRow>(
      `SELECT tenant_id, id, mailbox_id, code_verifier, client_id, redirect_uri,
              expires_at <= $2 AS expired, used_at IS NOT NULL AS used, return_to
         FROM oauth_states WHERE state_hash = $1`,
      [sha256(input.state), now],
    ),
  );
  const row = rows[0];
  if (!row) throw stateRefused('unknown state');
  if (row.used) throw stateRefused('this state was used already');
  if (row.expired) throw stateRefused('this state has expired');
  if (input.error === undefined && input.code === undefined)
    throw validation('the callback needs code (or error) with the state', [
      { path: '/code', message: 'is required without error', in: 'query' },
    ]);

  const tenantId = row.tenant_id;
  const mailbox = await withTenant(deps.pool, tenantId, (tx) => getMailbox(tx, row.mailbox_id));
  assertConnectable(mailbox);
  // A state serves one return from the provider, whatever it brings.
  const spend = () => withTenant(deps.pool, tenantId, (tx) => markUsed(tx, row.id, now));
  const returnTo = row.return_to ?? undefined;

  if (input.error !== undefined) {
    await spend();
    const said = input.errorDescription ? `: ${input.errorDescription}` : '';
    return {
      connected: false,
      mailbox,
      reason:
        input.error === 'access_denied'
          ? `access was not granted (access_denied${said})`
          : `the provider answered ${input.error}${said}`,
      error: input.error,
      returnTo,
    };
  }

  let tokens: { refreshToken: string };
  let app: AppRegistration;
  try {
    app = appRegistration(
      mailbox,
      await withTenant(deps.pool, tenantId, (tx) => mailboxCredentials(tx, deps.secretKey, mailbox.id)),
      deps.oauth,
    );
    if (app.clientId !== row.client_id)
      throw new Error('the app registration of the mailbox changed since connecting started');
    tokens = await exchangeCode(mailbox, app, deps.clock, {
      code: input.code!,
      redirectUri: row.redirect_uri,
      verifier: unseal(deps.secretKey, row.code_verifier).toString('utf8'),
    });
  } catch (err) {
    // The database failing is ours to answer (503); anything else failed the connection.
    if (isDatabaseUnavailable(err)) throw err;
    await spend();
    const reason =
      err instanceof ProviderError ? `the provider refused: ${err.message}` : (err as Error).message;
    return { connected: false, mailbox, reason, returnTo };
  }

  // The state is spent in the transaction that stores the tokens: two callbacks racing on one
  // state store at most one connection.
  const credentials: Record<string, unknown> = {
    refreshToken: tokens.refreshToken,
    clientId: app.clientId,
    ...(app.own ? { clientSecret: app.clientSecret } : {}),
  };
  await withTenant(deps.pool, tenantId, async (tx) => {
    if (!(await markUsed(tx, row.id, now))) throw stateRefused('this state was used already');
    await updateMailbox(tx, deps.secretKey, mailbox.id, { credentials });
  });
  forgetGraphTokens(mailbox.id);

  // Connected (committed): whatever fails from here is said on the page, never a 500 that would
  // send the person back to a state already used.
  let subscribeProblem: string | undefined;
  let health: { status: HealthStatus; failureReason: string | null } = {
    status: 'renewing',
    failureReason: null,
  };
  try {
    subscribeProblem = await subscribe(tenantId, mailbox.id);
    health = await withTenant(deps.pool, tenantId, (tx) => getHealth(tx, mailbox.id));
  } catch (err) {
    subscribeProblem = `connected, but subscribing failed for now (upkeep tries again): ${(err as Error)?.message ?? String(err)}`;
  }
  return {
    connected: true,
    mailbox: { ...mailbox, hasCredentials: true },
    health: health.status,
    subscribeProblem:
      subscribeProblem ?? (health.status === 'healthy' ? undefined : (health.failureReason ?? undefined)),
    returnTo,
  };
}

/** The authorization_code grant (with the PKCE verifier); a refresh token is required. */
async function exchangeCode(
  mailbox: Mailbox & { kind: Provider },
  app: AppRegistration,
  clock: Clock,
  grant: { code: string; redirectUri: string; verifier: string },
): Promise<{ refreshToken: string }> {
  const url =
    mailbox.kind === 'graph' ? mailbox.settings.graph.delegatedTokenUrl : mailbox.settings.gmail.tokenUrl;
  const res = await providerRequest(
    mailbox.kind,
    url,
    {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: grant.code,
        redirect_uri: grant.redirectUri,
        client_id: app.clientId,
        client_secret: app.clientSecret,
        code_verifier: grant.verifier,
        ...(mailbox.kind === 'graph' ? { scope: OAUTH_SCOPES.graph } : {}),
      }).toString(),
    },
    30_000,
  );
  if (!res.ok) await throwForResponse(mailbox.kind, res, clock.now());
  const body = (await res.json()) as { refresh_token?: unknown };
  if (typeof body.refresh_token !== 'string' || body.refresh_token === '')
    throw new Error(
      mailbox.kind === 'gmail'
        ? 'Google gave no refresh token (offline access was not granted)'
        : 'Microsoft gave no refresh token (offline_access was not granted)',
    );
  return { refreshToken: body.refresh_token };
}
