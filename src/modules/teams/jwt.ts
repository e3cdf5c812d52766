// Verifying what the Bot Framework connector sends (its "connector authentication" rules): a bearer
// JWT, RS256, signed by a key of the JWKS that the OpenID metadata names, the key endorsed for the
// activity's channel, issuer https://api.botframework.com, audience the bot's app id, valid with
// five minutes of skew, and its serviceUrl claim equal to the activity's. jose verifies the token;
// the key set is kept here, on top of jose.importJWK, because the endorsements of each key are part
// of the check and jose's remote key set does not expose them.
import { type CryptoKey, decodeJwt, decodeProtectedHeader, importJWK, type JWK, jwtVerify } from 'jose';
import type { Clock } from '../../platform/clock.ts';

export const BOT_FRAMEWORK_ISSUER = 'https://api.botframework.com';
export const DEFAULT_OPENID_METADATA_URL =
  'https://login.botframework.com/v1/.well-known/openidconfiguration';
/** Allowed clock skew (the rules say five minutes). */
const CLOCK_TOLERANCE_SECONDS = 300;

/** No token at all (answered 401). */
export class TokenMissing extends Error {
  constructor() {
    super('the request carries no Bot Framework token');
    this.name = 'TokenMissing';
  }
}

/** A token that is there but does not verify (answered 403). */
export class TokenRejected extends Error {
  constructor(reason: string) {
    super(`the Bot Framework token was rejected: ${reason}`);
    this.name = 'TokenRejected';
  }
}

/** The bearer token of an Authorization header. */
export function bearerToken(authorization: string | undefined): string {
  if (!authorization) throw new TokenMissing();
  const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];
  if (!token) throw new TokenRejected('the Authorization header is not "Bearer <token>"');
  return token;
}

/**
 * The audience of a token, read WITHOUT verifying it: only to find which integration (which bot,
 * which tenant) the token must then be verified for. Nothing else of it is trusted.
 */
export function unverifiedAudience(token: string): string {
  let aud: unknown;
  try {
    aud = decodeJwt(token).aud;
  } catch {
    throw new TokenRejected('not a JWT');
  }
  const value = Array.isArray(aud) ? aud[0] : aud;
  if (typeof value !== 'string' || value === '') throw new TokenRejected('no audience');
  return value;
}

interface BotKey {
  key: CryptoKey | Uint8Array;
  endorsements: string[];
}

interface KeySet {
  keys: Map<string, BotKey>;
  fetchedAt: number;
  /** The last fetch attempt, successful or not (a failing endpoint is not asked at every request). */
  triedAt: number;
  /**
   * The last fetch made because a token named a key id the set lacks: made-up key ids cost at most
   * one fetch per cooldown, while a key rotated in just after a routine fetch is still found.
   */
  unknownKidAt: number;
}

export interface BotKeysOptions {
  clock: Clock;
  fetch?: typeof fetch;
  /** A key set older than this is fetched again before use (the rules: at least daily). */
  maxAgeMs?: number;
  /** An unknown kid fetches the set again, at most this often (a flood of made-up kids costs one fetch). */
  unknownKidCooldownMs?: number;
}

/** The connector's signing keys by OpenID metadata URL, with their endorsements, cached. */
export class BotKeys {
  private readonly sets = new Map<string, KeySet>();
  private readonly inFlight = new Map<string, Promise<KeySet>>();
  private readonly clock: Clock;
  private readonly fetch: typeof fetch;
  private readonly maxAgeMs: number;
  private readonly cooldownMs: number;

  constructor(options: BotKeysOptions) {
    this.clock = options.clock;
    this.fetch = options.fetch ?? globalThis.fetch;
    this.maxAgeMs = options.maxAgeMs ?? 24 * 3600_000;
    this.cooldownMs = options.unknownKidCooldownMs ?? 60_000;
  }

  /** The key `kid` of the set the metadata names, fetching the set when it is old or lacks the kid. */
  async key(metadataUrl: string, kid: string): Promise<BotKey | undefined> {
    const now = this.clock.now().getTime();
    let set = this.sets.get(metadataUrl);
    if (!set || (now - set.fetchedAt >= this.maxAgeMs && now - set.triedAt >= this.cooldownMs))
      set = await this.refresh(metadataUrl);
    const found = set.keys.get(kid);
    if (found) return found;
    // A key rotated in since the last fetch: look again (not more often than the cooldown).
    if (now - set.unknownKidAt < this.cooldownMs) return undefined;
    set.unknownKidAt = now;
    const fresh = await this.refresh(metadataUrl);
    fresh.unknownKidAt = Math.max(fresh.unknownKidAt, now);
    return fresh.keys.get(kid);
  }

  private refresh(metadataUrl: string): Promise<KeySet> {
    let pending = this.inFlight.get(metadataUrl);
    if (!pending) {
      pending = this.load(metadataUrl).finally(() => this.inFlight.delete(metadataUrl));
      this.inFlight.set(metadataUrl, pending);
    }
    return pending;
  }

  private async load(metadataUrl: string): Promise<KeySet> {
    const getJson = async (url: string): Promise<Record<string, unknown>> => {
      const res = await this.fetch(url, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
      return (await res.json()) as Record<string, unknown>;
    };
    try {
      const metadata = await getJson(metadataUrl);
      const jwksUri = metadata['jwks_uri'];
      if (typeof jwksUri !== 'string') throw new Error('the OpenID metadata has no jwks_uri');
      const jwks = await getJson(jwksUri);
      const keys = new Map<string, BotKey>();
      for (const jwk of Array.isArray(jwks['keys'])
        ? (jwks['keys'] as (JWK & Record<string, unknown>)[])
        : []) {
        if (typeof jwk.kid !== 'string' || jwk.kty !== 'RSA') continue;
        const endorsements = Array.isArray(jwk['endorsements'])
          ? (jwk['endorsements'] as unknown[]).filter((e): e is string => typeof e === 'string')
          : [];
        try {
          keys.set(jwk.kid, {
            key: await importJWK({ kty: jwk.kty, n: jwk.n, e: jwk.e }, 'RS256'),
            endorsements,
          });
        } catch {
          // A key we cannot use is as good as absent.
        }
      }
      const now = this.clock.now().getTime();
      const unknownKidAt = this.sets.get(metadataUrl)?.unknownKidAt ?? Number.NEGATIVE_INFINITY;
      const set = { keys, fetchedAt: now, triedAt: now, unknownKidAt };
      this.sets.set(metadataUrl, set);
      return set;
    } catch (err) {
      // The keys we had stay better than none while the endpoint is down; without any, nothing verifies.
      const old = this.sets.get(metadataUrl);
      if (old) {
        old.triedAt = this.clock.now().getTime();
        return old;
      }
      throw new TokenRejected(`the signing keys could not be fetched (${(err as Error).message})`);
    }
  }
}

export interface ActivityProof {
  /** The bearer token. */
  token: string;
  /** The bot's app id (the expected audience). */
  appId: string;
  metadataUrl: string;
  /** The activity's channelId and serviceUrl, which the key and the token must match. */
  channelId: unknown;
  serviceUrl: unknown;
}

/** Verifies an activity's token by the connector rules; throws TokenRejected saying why. */
export async function verifyActivityToken(keys: BotKeys, clock: Clock, proof: ActivityProof): Promise<void> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(proof.token);
  } catch {
    throw new TokenRejected('not a JWT');
  }
  if (header.alg !== 'RS256') throw new TokenRejected(`algorithm ${String(header.alg)} is not RS256`);
  if (typeof header.kid !== 'string') throw new TokenRejected('no key id');
  const key = await keys.key(proof.metadataUrl, header.kid);
  if (!key) throw new TokenRejected('signed by an unknown key');
  if (typeof proof.channelId !== 'string' || !key.endorsements.includes(proof.channelId))
    throw new TokenRejected(
      `the key is not endorsed for the channel ${String(proof.channelId).slice(0, 40)}`,
    );
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(proof.token, key.key, {
      algorithms: ['RS256'],
      issuer: BOT_FRAMEWORK_ISSUER,
      audience: proof.appId,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: clock.now(),
      requiredClaims: ['exp'],
    }));
  } catch (err) {
    throw new TokenRejected((err as { code?: string }).code ?? (err as Error).message);
  }
  // Real tokens spell the claim `serviceurl`; the documentation `serviceUrl`.
  const claimed = payload['serviceurl'] ?? payload['serviceUrl'];
  if (typeof claimed !== 'string' || typeof proof.serviceUrl !== 'string' || claimed !== proof.serviceUrl)
    throw new TokenRejected("the token's serviceUrl is not the activity's");
}
