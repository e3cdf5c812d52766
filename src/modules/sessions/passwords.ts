// Password hashing with scrypt (RFC 7914) from node:crypto: memory-hard, part of the runtime (no
// native add-on to build, nothing to keep up to date beside Node itself). A hash names its own
// parameters, `scrypt$N=32768,r=8,p=1$<salt>$<hash>`, so that stronger parameters can come later:
// a hash made with weaker ones is replaced at the next successful sign-in (needsRehash).
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** 2^15 blocks of 8 × 128 bytes: 32 MiB and about a tenth of a second a hash on a current core. */
export const SCRYPT_PARAMS: ScryptParams = { N: 32_768, r: 8, p: 1 };
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;

/** Shortest and longest password taken (the schema says the same to clients). */
export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 256;

/**
 * What an unknown address is checked against, so that it costs the same scrypt run as a known one
 * and the answer comes after about the same time (its password is random and was thrown away).
 */
export const DUMMY_HASH =
  'scrypt$N=32768,r=8,p=1$StAeXa2vievryoBV9Jvhuw==$w0pw5jHVFog/wwUa6HV5g3ZBlIDWaVk9nic5CFahWm0=';

function derive(password: string, salt: Buffer, params: ScryptParams, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    // The default maxmem (32 MiB) is exactly 128·N·r for N=2^15, r=8, which scrypt refuses.
    scrypt(
      password.normalize('NFC'),
      salt,
      length,
      { ...params, maxmem: 256 * params.N * params.r + 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(key)),
    ),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_LENGTH);
  const key = await derive(password, salt, SCRYPT_PARAMS, KEY_LENGTH);
  const { N, r, p } = SCRYPT_PARAMS;
  return `scrypt$N=${N},r=${r},p=${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

const FORMAT =
  /^scrypt\$N=(\d{1,8}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/=]{1,200})\$([A-Za-z0-9+/=]{1,200})$/;

function parse(hash: string): { params: ScryptParams; salt: Buffer; key: Buffer } | undefined {
  const m = FORMAT.exec(hash);
  if (!m) return undefined;
  const params = { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  // A power of two in scrypt's range, and no more memory than 1 GiB: a stored hash is ours, but a
  // corrupted one must not take the process down.
  if (params.N < 2 || (params.N & (params.N - 1)) !== 0 || 128 * params.N * params.r > 2 ** 30)
    return undefined;
  if (params.r < 1 || params.p < 1) return undefined;
  return { params, salt: Buffer.from(m[4]!, 'base64'), key: Buffer.from(m[5]!, 'base64') };
}

/** Whether `password` is the one `hash` was made of (constant time in the comparison). */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const parsed = parse(hash);
  if (!parsed || parsed.key.length === 0) {
    // Still the same work as a real check.
    await derive(password, randomBytes(SALT_LENGTH), SCRYPT_PARAMS, KEY_LENGTH);
    return false;
  }
  const key = await derive(password, parsed.salt, parsed.params, parsed.key.length);
  return timingSafeEqual(key, parsed.key);
}

/** Whether the hash was made with other parameters than today's (it is replaced after a sign-in). */
export function needsRehash(hash: string): boolean {
  const parsed = parse(hash);
  if (!parsed) return true;
  const { N, r, p } = parsed.params;
  return (
    N !== SCRYPT_PARAMS.N ||
    r !== SCRYPT_PARAMS.r ||
    p !== SCRYPT_PARAMS.p ||
    parsed.key.length !== KEY_LENGTH
  );
}
