// Verifying a Gmail Pub/Sub push: the OIDC JWT Google attaches (RS256, signed by a key of Google's
// JWKS), for the audience configured on the push subscription, issued to the configured service
// account with a verified email. Nothing is stored for a push that fails any of these.
import { createRemoteJWKSet, errors, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { AppError } from '../../../../platform/errors.ts';

const keySets = new Map<string, JWTVerifyGetKey>();

function keySet(jwksUrl: string): JWTVerifyGetKey {
  let set = keySets.get(jwksUrl);
  if (!set) {
    set = createRemoteJWKSet(new URL(jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 3_600_000 });
    keySets.set(jwksUrl, set);
  }
  return set;
}

export interface PushVerification {
  jwksUrl: string;
  audience: string;
  serviceAccountEmail: string;
}

/**
 * Whether verification failed because the JWKS could not be read (the network, a timeout, an answer
 * that is no key set), which is no verdict on the push: jose raises its own errors for every fault of
 * a token, and others (fetch's) only for the request for the keys.
 */
const keysUnreachable = (err: unknown): boolean =>
  !(err instanceof errors.JOSEError) ||
  err instanceof errors.JWKSTimeout ||
  err instanceof errors.JWKSInvalid ||
  (err.code === 'ERR_JOSE_GENERIC' && /JSON Web Key Set/i.test(err.message));

const invalid = (why: string) => new AppError('webhook_signature_invalid', `push token rejected: ${why}`);

export async function verifyPushToken(
  authorization: string | undefined,
  expected: PushVerification,
): Promise<void> {
  const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
  if (!token) throw invalid('no bearer token');
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, keySet(expected.jwksUrl), {
      algorithms: ['RS256'],
      issuer: ['https://accounts.google.com', 'accounts.google.com'],
      audience: expected.audience,
      clockTolerance: 30,
    }));
  } catch (err) {
    if (keysUnreachable(err))
      throw new AppError(
        'provider_unavailable',
        `Google's signing keys could not be read (${(err as Error).message}); the push is not taken, Pub/Sub will deliver it again`,
      );
    throw invalid((err as { code?: string }).code ?? (err as Error).message);
  }
  if (payload['email'] !== expected.serviceAccountEmail) throw invalid('wrong service account');
  if (payload['email_verified'] !== true) throw invalid('email not verified');
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });
/** A Gmail history id: an unsigned 64-bit number, as decimal digits. */
const HISTORY_ID = /^[0-9]{1,20}$/;

/**
 * The push body's message.data: base64 of the JSON {emailAddress, historyId}. The history id is
 * refused unless it is a history id (decimal digits, or a whole number, as Gmail sends it): it is
 * compared numerically with the stored one later.
 */
export function decodePushData(body: unknown): { emailAddress: string; historyId: string } {
  const data = (body as { message?: { data?: unknown } | null } | null | undefined)?.message?.data;
  if (typeof data !== 'string')
    throw new AppError('validation_failed', 'expected a Pub/Sub push {"message": {"data": ...}}');
  let decoded: unknown;
  try {
    if (!BASE64.test(data)) throw new Error('not base64');
    decoded = JSON.parse(UTF8.decode(Buffer.from(data, 'base64')));
  } catch {
    throw new AppError('validation_failed', 'message.data is not base64 JSON');
  }
  const { emailAddress, historyId } = (decoded ?? {}) as { emailAddress?: unknown; historyId?: unknown };
  const id =
    typeof historyId === 'string' && HISTORY_ID.test(historyId)
      ? historyId
      : typeof historyId === 'number' && Number.isSafeInteger(historyId) && historyId >= 0
        ? String(historyId)
        : undefined;
  if (typeof emailAddress !== 'string' || id === undefined) {
    throw new AppError(
      'validation_failed',
      'message.data must hold emailAddress and historyId (a history id: decimal digits)',
    );
  }
  return { emailAddress, historyId: id };
}

/** Forgets cached key sets (tests). */
export const clearKeySets = (): void => keySets.clear();
