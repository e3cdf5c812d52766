// Provider errors, classified once where the response is read (STYLE §7). Callers decide retry,
// back-off or dead-letter from the class, never from a message string.
export class ProviderError extends Error {
  readonly provider: string;
  readonly status: number | undefined;
  readonly code: string | undefined;
  constructor(
    provider: string,
    message: string,
    options: { status?: number; code?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.provider = provider;
    this.status = options.status;
    this.code = options.code;
  }
}

/** 429 or 503 with Retry-After: try again after `retryAfterSeconds`. */
export class RateLimited extends ProviderError {
  readonly retryAfterSeconds: number;
  constructor(
    provider: string,
    message: string,
    retryAfterSeconds: number,
    options: { status?: number; code?: string } = {},
  ) {
    super(provider, message, options);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}
/** 401/403, invalid_grant, invalid_client: credentials must be renewed by a person; retrying will not help. */
export class AuthExpired extends ProviderError {}
/** 404: the thing is gone (a deterministic outcome, not a retry). */
export class NotFound extends ProviderError {}
/** Timeouts, connection failures, 5xx: retry with back-off. */
export class Transient extends ProviderError {}
/** Anything else the provider refused: do not retry. */
export class Permanent extends ProviderError {}

/**
 * Seconds from a Retry-After header (delta-seconds or HTTP date), bounded to [1, 3600]. `now` (epoch
 * ms) is the caller's injected clock: an HTTP date is counted from it, never from the wall clock.
 */
export function retryAfterSeconds(header: string | null, now: number): number {
  if (!header) return 30;
  const seconds = /^\d+$/.test(header.trim()) ? Number(header.trim()) : (Date.parse(header) - now) / 1000;
  return Number.isFinite(seconds) ? Math.min(3600, Math.max(1, Math.ceil(seconds))) : 30;
}

/** Maps an HTTP status (and body code) to its class. */
export function classifyResponse(
  provider: string,
  status: number,
  retryAfter: string | null,
  code: string | undefined,
  message: string,
  /** The injected clock's now (an HTTP-date Retry-After is counted from it). */
  now: Date,
): ProviderError {
  if (status === 429 || (status === 503 && retryAfter))
    return new RateLimited(provider, message, retryAfterSeconds(retryAfter, now.getTime()), {
      status,
      ...(code ? { code } : {}),
    });
  // OAuth token endpoints may refuse a client with 400 as well as 401 (RFC 6749 §5.2): the code says it.
  if (status === 401 || status === 403 || code === 'invalid_grant' || code === 'invalid_client')
    return new AuthExpired(provider, message, { status, ...(code ? { code } : {}) });
  if (status === 404 || status === 410)
    return new NotFound(provider, message, { status, ...(code ? { code } : {}) });
  if (status >= 500 || status === 408)
    return new Transient(provider, message, { status, ...(code ? { code } : {}) });
  return new Permanent(provider, message, { status, ...(code ? { code } : {}) });
}

/** fetch with a timeout; a failure to get any answer is Transient. */
export async function providerRequest(
  provider: string,
  url: string,
  init: RequestInit,
  timeoutMs: number,
): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new Transient(provider, `request to ${new URL(url).pathname} failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Throws the classified error of a failed response. Reads the error shapes of Microsoft Graph
 * ({error: {code, message}}), Google APIs ({error: {status, message}}) and OAuth token endpoints
 * ({error: "invalid_grant", error_description}).
 */
export async function throwForResponse(provider: string, res: Response, now: Date): Promise<never> {
  let code: string | undefined;
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as {
      error?: { code?: string | number; status?: string; message?: string } | string;
      error_description?: string;
    };
    if (typeof body.error === 'object') {
      code = typeof body.error.code === 'string' ? body.error.code : body.error.status;
      message = `${code}: ${body.error.message ?? message}`;
    } else if (typeof body.error === 'string') {
      code = body.error;
      message = `${code}: ${body.error_description ?? message}`;
    }
  } catch {
    // not JSON
  }
  throw classifyResponse(provider, res.status, res.headers.get('retry-after'), code, message, now);
}
