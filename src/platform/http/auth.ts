// Who is calling: the HTTP server authenticates every /api request with the functions it is given
// (the tokens module's and the sessions module's, wired in by the composition root), so the platform
// knows nothing of tokens or sessions.

/** The authenticated caller of a request. */
export interface Principal {
  tenantId: string;
  /** The API token's id, or the console session's. */
  tokenId: string;
  personId: string;
  role: string;
  /** The token's last four characters (a session's id's), for logs. */
  preview: string;
  /** What the caller may do, e.g. 'tickets:write'; a route names the one it requires. */
  permissions: readonly string[];
  /** An API token (`Authorization: Bearer`) or a console session (the `rd_session` cookie). */
  via: 'token' | 'session';
}

/** A console session's principal, with what the server checks beyond a token's. */
export interface SessionPrincipal extends Principal {
  via: 'session';
  /** What every write of the session must send in X-CSRF-Token. */
  csrfToken: string;
  /**
   * The tenant requires a second factor the person has not enrolled: only the routes that say so
   * (`config.beforeSecondFactor`) are open until they do.
   */
  secondFactorEnrollmentRequired: boolean;
}

/** Turns a bearer token into its principal, or throws AppError('unauthorized'). */
export type Authenticate = (token: string) => Promise<Principal>;

/** Turns the secret of a session cookie into its principal, or throws AppError('unauthorized' | 'session_expired'). */
export type AuthenticateSession = (secret: string) => Promise<SessionPrincipal>;

/** The cookie that carries a console session's secret. */
export const SESSION_COOKIE = 'rd_session';
