// The relying party, through openid-client's documented API: discovery (cached per issuer, with the
// issuer's signing keys), the authorization URL, and redeeming the code with the checks of the
// callback (state, nonce, PKCE verifier; issuer, audience, expiry and signature of the id_token).
//
// Signatures are checked against the issuer's JWKS (enableNonRepudiationChecks) even though the
// id_token comes straight from the token endpoint, where OIDC Core §3.1.3.7 lets TLS stand in for
// them: a provider reached over plain http on loopback has no TLS to rely on, and the keys are
// cached anyway. Plain http is allowed for loopback issuers only (checkIssuer), and only then is
// allowInsecureRequests turned on.
import * as oidc from 'openid-client';
import type { Clock } from '../../platform/clock.ts';
import { isLoopbackHost } from '../../platform/config.ts';
import type { SsoProviderSettings } from './providers.ts';

/** How long discovered metadata is used before it is fetched again. */
const DISCOVERY_TTL_MS = 60 * 60_000;
/** Seconds each request to the provider may take. */
const REQUEST_TIMEOUT_S = 10;

interface Discovered {
  metadata: oidc.ServerMetadata;
  fetchedAt: number;
  jwks: oidc.ExportedJWKSCache | undefined;
}

const discovered = new Map<string, Discovered>();

/** Forgets every issuer's metadata and keys (tests). */
export function forgetDiscovery(): void {
  discovered.clear();
}

const insecure = (issuer: string): boolean => {
  const url = new URL(issuer);
  return url.protocol === 'http:' && isLoopbackHost(url.hostname);
};

/**
 * How the client proves itself at the token endpoint: client_secret_basic unless the provider
 * lists only client_secret_post (RFC 8414: basic is the default when it lists none).
 */
function clientAuth(metadata: oidc.ServerMetadata, secret: string): oidc.ClientAuth {
  const methods = metadata.token_endpoint_auth_methods_supported;
  if (methods && !methods.includes('client_secret_basic') && methods.includes('client_secret_post'))
    return oidc.ClientSecretPost(secret);
  return oidc.ClientSecretBasic(secret);
}

/** A client configuration for the provider: discovery from the cache when fresh enough. */
export async function configurationFor(
  settings: SsoProviderSettings,
  clock: Clock,
): Promise<oidc.Configuration> {
  const now = clock.now().getTime();
  let entry = discovered.get(settings.issuer);
  if (!entry || now - entry.fetchedAt > DISCOVERY_TTL_MS || now < entry.fetchedAt) {
    const found = await oidc.discovery(new URL(settings.issuer), settings.clientId, undefined, oidc.None(), {
      timeout: REQUEST_TIMEOUT_S,
      ...(insecure(settings.issuer) ? { execute: [oidc.allowInsecureRequests] } : {}),
    });
    // The metadata as plain JSON (serverMetadata() adds helper functions a Configuration cannot take).
    entry = {
      metadata: JSON.parse(JSON.stringify(found.serverMetadata())) as oidc.ServerMetadata,
      fetchedAt: now,
      jwks: undefined,
    };
    discovered.set(settings.issuer, entry);
  }
  const config = new oidc.Configuration(
    entry.metadata,
    settings.clientId,
    undefined,
    clientAuth(entry.metadata, settings.clientSecret),
  );
  config.timeout = REQUEST_TIMEOUT_S;
  if (insecure(settings.issuer)) oidc.allowInsecureRequests(config);
  oidc.enableNonRepudiationChecks(config);
  if (entry.jwks) oidc.setJwksCache(config, entry.jwks);
  return config;
}

/** Keeps the keys the configuration fetched for the next sign-in with the same issuer. */
function keepKeys(issuer: string, config: oidc.Configuration): void {
  const entry = discovered.get(issuer);
  const jwks = oidc.getJwksCache(config);
  if (entry && jwks) entry.jwks = jwks;
}

export interface AuthorizationRequest {
  redirectUri: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  /** Ask the provider to let the person pick an account (Entra, Google). */
  selectAccount: boolean;
}

export async function authorizationUrl(
  config: oidc.Configuration,
  request: AuthorizationRequest,
): Promise<URL> {
  return oidc.buildAuthorizationUrl(config, {
    redirect_uri: request.redirectUri,
    scope: 'openid email profile',
    state: request.state,
    nonce: request.nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(request.codeVerifier),
    code_challenge_method: 'S256',
    ...(request.selectAccount ? { prompt: 'select_account' } : {}),
  });
}

/** The id_token's claims a sign-in uses. */
export interface SignedInClaims {
  sub: string;
  email: string | undefined;
  emailVerified: boolean;
  name: string | undefined;
  /** Entra: the user's object id and directory. */
  oid: string | undefined;
  tid: string | undefined;
  /**
   * Entra's optional claim `xms_edov`: the email's domain is verified as the directory's. Entra
   * sends no email_verified; this is how it vouches for an address.
   */
  emailDomainVerified: boolean;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * Redeems the code of the callback URL (the registered redirect URI with the query the provider
 * sent) and checks the answer; throws what openid-client throws when anything does not hold.
 */
export async function redeemCode(
  config: oidc.Configuration,
  issuer: string,
  callbackUrl: URL,
  checks: { state: string; nonce: string; codeVerifier: string },
): Promise<SignedInClaims> {
  try {
    const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
      expectedState: checks.state,
      expectedNonce: checks.nonce,
      pkceCodeVerifier: checks.codeVerifier,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    if (!claims) throw new Error('the provider sent no id_token');
    return {
      sub: claims.sub,
      email: text(claims['email']),
      // Only true (some providers send the string): those that do not vouch for the address leave
      // it out (Entra) or send false.
      emailVerified: claims['email_verified'] === true || claims['email_verified'] === 'true',
      name: text(claims['name']),
      oid: text(claims['oid']),
      tid: text(claims['tid']),
      emailDomainVerified: [true, 'true', 1, '1'].includes(claims['xms_edov'] as never),
    };
  } finally {
    keepKeys(issuer, config);
  }
}
