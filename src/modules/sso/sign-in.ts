// Signing in to the console through a tenant's OpenID provider (authorization code flow with PKCE,
// state and nonce). `startSignIn` makes a single-use state and the provider's authorization URL;
// `finishSignIn` is the callback: it spends the state, redeems the code (openid-client checks the
// state, the nonce, the verifier and the id_token) and finds the person the provider vouched for.
//
// What must stay true:
// - A state finishes at most one sign-in, only in the tenant it was made for, only in the browser
//   that started it (the state is also in a cookie of that browser: a callback URL someone else
//   started cannot sign this browser in as them), and only while the provider's issuer and client
//   are the ones it was made with.
// - The person is found by the external identity (tenant, provider kind, subject) first; only then
//   by a *verified* email of an agent, and that link is then kept as an identity (auto_merge), so the
//   next sign-in goes by the subject even if the address changes. Entra is known by the user's
//   object id (`oid`, the id Teams reports too, kind `entra`) rather than its per-app `sub`.
// - Contacts, suspended people and people nobody knows are refused; nothing is stored for them but
//   a triage row (unmapped identity) when the identity is linked to nobody. An invited agent
//   becomes active by signing in.
import { randomNonce, randomPKCECodeVerifier, randomState } from 'openid-client';
import type { Clock } from '../../platform/clock.ts';
import { safeEqual, seal, sha256, unseal } from '../../platform/crypto.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withSystemRead, withTenant, withTenantRead } from '../../platform/db/tx.ts';
import { isDatabaseUnavailable } from '../../platform/errors.ts';
import { isUuid } from '../../platform/ids.ts';
import type { Logger } from '../../platform/logging.ts';
import { recordAudit } from '../audit/audit.ts';
import { addIdentity, resolvePerson } from '../people/identities.ts';
import { updatePerson } from '../people/service.ts';
import { recordUnmapped } from '../people/unmapped.ts';
import { authorizationUrl, configurationFor, redeemCode, type SignedInClaims } from './oidc-client.ts';
import { emailInDomains, type SsoProvider, ssoProviderSettings } from './providers.ts';
import { createLoginState, findLoginState, spendLoginState } from './states.ts';

export interface SignInDeps {
  pool: Pool;
  secretKey: Buffer;
  clock: Clock;
  logger: Logger;
  /** RELAYDESK_PUBLIC_URL: the provider sends the browser back to {publicUrl}/auth/oidc/callback. */
  publicUrl: string | undefined;
}

export const DEFAULT_RETURN_TO = '/console/';
const CALLBACK_PATH = '/auth/oidc/callback';

/** The redirect URI to register with the provider. */
export const ssoRedirectUriOf = (publicUrl: string): string => `${publicUrl}${CALLBACK_PATH}`;

/**
 * Where to go after signing in: a path of this origin under /console (normalised, so that dot
 * segments cannot leave it); anything else, or nothing, is the console's start page.
 */
export function safeReturnTo(given: string | undefined): string {
  if (given === undefined || given === '') return DEFAULT_RETURN_TO;
  // Only a path: not another origin ("//host", "https://..."), no backslashes (which browsers read
  // as slashes) and no control characters.
  if (
    !given.startsWith('/') ||
    given.startsWith('//') ||
    given.includes('\\') ||
    [...given].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)
  )
    return DEFAULT_RETURN_TO;
  const base = 'http://relaydesk.invalid';
  let url: URL;
  try {
    url = new URL(given, base);
  } catch {
    return DEFAULT_RETURN_TO;
  }
  if (url.origin !== base || (url.pathname !== '/console' && !url.pathname.startsWith('/console/')))
    return DEFAULT_RETURN_TO;
  return `${url.pathname}${url.search}${url.hash}`;
}

/**
 * The tenant a sign-in is for: by name (or id); without one, the only tenant of the install.
 * Undefined when there is no such tenant (or several and none was named).
 */
export async function resolveSignInTenant(
  pool: Pool,
  tenant: string | undefined,
): Promise<string | undefined> {
  const { rows } = await withSystemRead(pool, (sys) =>
    tenant === undefined
      ? sys.query<{ id: string }>('SELECT id FROM tenants ORDER BY id LIMIT 2')
      : isUuid(tenant)
        ? sys.query<{ id: string }>('SELECT id FROM tenants WHERE id = $1', [tenant])
        : sys.query<{ id: string }>('SELECT id FROM tenants WHERE lower(name) = lower($1)', [tenant]),
  );
  return rows.length === 1 ? rows[0]!.id : undefined;
}

export type StartResult =
  | { ok: true; authorizationUrl: string; state: string }
  | { ok: false; reason: string; tenantId: string | undefined };

/** Starts signing in: a single-use state and the authorization URL to send the browser to. */
export async function startSignIn(
  deps: SignInDeps,
  input: { provider: SsoProvider; tenant: string | undefined; returnTo: string | undefined },
): Promise<StartResult> {
  const tenantId = await resolveSignInTenant(deps.pool, input.tenant);
  if (!tenantId) return { ok: false, reason: 'no such tenant', tenantId: undefined };
  const fail = (reason: string): StartResult => ({ ok: false, reason, tenantId });
  if (!deps.publicUrl)
    return fail(
      'RELAYDESK_PUBLIC_URL is not set: the provider cannot be told where to send the browser back',
    );
  const settings = await withTenantRead(deps.pool, tenantId, (tx) =>
    ssoProviderSettings(tx, deps.secretKey, input.provider),
  );
  if (!settings?.enabled) return fail(`the ${input.provider} provider is not set up or not enabled`);

  const state = randomState();
  const nonce = randomNonce();
  const codeVerifier = randomPKCECodeVerifier();
  const redirectUri = ssoRedirectUriOf(deps.publicUrl);
  let url: URL;
  try {
    const config = await configurationFor(settings, deps.clock);
    url = await authorizationUrl(config, {
      redirectUri,
      state,
      nonce,
      codeVerifier,
      selectAccount: input.provider !== 'oidc',
    });
  } catch (err) {
    return fail(`discovery at ${settings.issuer} failed: ${describe(err)}`);
  }
  await withTenant(deps.pool, tenantId, (tx) =>
    createLoginState(tx, {
      provider: input.provider,
      stateHash: sha256(state),
      codeVerifier: seal(deps.secretKey, codeVerifier),
      nonce: seal(deps.secretKey, nonce),
      issuer: settings.issuer,
      clientId: settings.clientId,
      redirectUri,
      returnTo: safeReturnTo(input.returnTo),
      now: deps.clock.now(),
    }),
  );
  return { ok: true, authorizationUrl: url.toString(), state };
}

/**
 * The audit trail's record of a sign-in through single sign-on: by the person when it succeeded,
 * by nobody (unauthorised) when it was refused in a tenant. The reason of a refusal goes to the log.
 */
export async function auditSignIn(
  deps: Pick<SignInDeps, 'pool' | 'logger'>,
  input: { tenantId: string; provider: SsoProvider; personId: string | undefined },
): Promise<void> {
  await recordAudit(deps, {
    tenantId: input.tenantId,
    actorId: input.personId ?? null,
    actorVia: 'oidc',
    action: 'sso.sign_in',
    targetType: input.personId ? 'person' : null,
    targetId: input.personId ?? null,
    outcome: input.personId ? 'success' : 'unauthorised',
    errorCode: input.personId ? null : 'sso_failed',
    payload: { provider: input.provider },
  });
}

export type FinishResult =
  | { ok: true; tenantId: string; personId: string; provider: SsoProvider; returnTo: string }
  | { ok: false; reason: string };

/** What went wrong, in a few words for the log (never the secret, never a token). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { code?: unknown; error?: unknown; status?: unknown };
  const parts = [e.message];
  if (typeof e.error === 'string') parts.push(`(${e.error})`);
  else if (typeof e.code === 'string') parts.push(`(${e.code})`);
  return parts.join(' ').slice(0, 300);
}

/**
 * The callback. `query` is the query string the provider sent (without "?"); `boundState` the state
 * this browser's cookie holds. Refusals say why for the log and the audit trail only.
 */
export async function finishSignIn(
  deps: SignInDeps,
  input: { state: string | undefined; query: string; boundState: string | undefined },
): Promise<FinishResult> {
  const refuse = (reason: string): FinishResult => ({ ok: false, reason });
  if (!input.state) return refuse('the callback has no state');
  if (input.boundState === undefined || !safeEqual(input.boundState, input.state))
    return refuse('the sign-in was not started in this browser (no matching state cookie)');
  const now = deps.clock.now();
  const row = await findLoginState(deps.pool, sha256(input.state), now);
  if (!row) return refuse('unknown state');
  if (row.used) return refuse('the state was used already');
  if (row.expired) return refuse('the state has expired');
  // A state serves one return from the provider, whatever it brings.
  if (!(await withTenant(deps.pool, row.tenantId, (tx) => spendLoginState(tx, row.id, now))))
    return refuse('the state was used already');

  const tenantId = row.tenantId;
  const refuseInTenant = async (reason: string): Promise<FinishResult> => {
    await auditSignIn(deps, { tenantId, provider: row.provider, personId: undefined });
    return refuse(reason);
  };

  const settings = await withTenantRead(deps.pool, tenantId, (tx) =>
    ssoProviderSettings(tx, deps.secretKey, row.provider),
  );
  if (!settings?.enabled) return refuseInTenant(`the ${row.provider} provider is not set up or not enabled`);
  if (settings.issuer !== row.issuer || settings.clientId !== row.clientId)
    return refuseInTenant("the provider's issuer or client changed since the sign-in started");

  let claims: SignedInClaims;
  try {
    const config = await configurationFor(settings, deps.clock);
    const callbackUrl = new URL(row.redirectUri);
    callbackUrl.search = input.query;
    claims = await redeemCode(config, settings.issuer, callbackUrl, {
      state: input.state,
      nonce: unseal(deps.secretKey, row.nonce).toString('utf8'),
      codeVerifier: unseal(deps.secretKey, row.codeVerifier).toString('utf8'),
    });
  } catch (err) {
    if (isDatabaseUnavailable(err)) throw err;
    return refuseInTenant(`the provider's answer did not verify: ${describe(err)}`);
  }

  const verified = claims.emailVerified || (row.provider === 'entra' && claims.emailDomainVerified);
  const verifiedEmail = verified ? claims.email : undefined;
  if (
    settings.allowedDomains.length > 0 &&
    !(verifiedEmail && emailInDomains(verifiedEmail, settings.allowedDomains))
  )
    return refuseInTenant('no verified email in an allowed domain');

  const identity = {
    kind: row.provider,
    externalId: row.provider === 'entra' && claims.oid ? claims.oid : claims.sub,
  };
  let found: { personId: string } | { refused: string; unmapped: boolean };
  try {
    found = await withTenant(deps.pool, tenantId, async (tx) => {
      let person = await resolvePerson(tx, identity);
      if (!person && verifiedEmail) {
        const byEmail = await resolvePerson(tx, { email: verifiedEmail });
        if (!byEmail) return { refused: 'no person with this identity or verified email', unmapped: true };
        if (byEmail.kind !== 'agent') return { refused: 'the email is a contact’s', unmapped: true };
        if (byEmail.status === 'suspended') return { refused: 'the person is suspended', unmapped: true };
        await addIdentity(tx, byEmail.id, identity, 'system:sso', 'auto_merge');
        person = byEmail;
      }
      if (!person) return { refused: 'no person with this identity or verified email', unmapped: true };
      if (person.kind !== 'agent') return { refused: 'the identity is a contact’s', unmapped: false };
      if (person.status === 'suspended') return { refused: 'the person is suspended', unmapped: false };
      if (person.status === 'invited')
        await updatePerson(tx, person.id, { status: 'active', actor: 'system:sso' });
      return { personId: person.id };
    });
  } catch (err) {
    if (isDatabaseUnavailable(err)) throw err;
    return refuseInTenant(`the person could not be resolved: ${describe(err)}`);
  }
  if ('refused' in found) {
    if (found.unmapped)
      await recordUnmapped(
        deps.pool,
        tenantId,
        {
          ...identity,
          eventType: 'sso_sign_in',
          context: `single sign-on through ${row.provider} refused`,
          ...(claims.name ? { displayName: claims.name } : {}),
          ...(claims.email ? { email: claims.email } : {}),
        },
        deps.logger,
      );
    return refuseInTenant(found.refused);
  }
  return { ok: true, tenantId, personId: found.personId, provider: row.provider, returnTo: row.returnTo };
}
