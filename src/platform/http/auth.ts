// Who is calling: the HTTP server authenticates every /api request with the function it is given
// (the tokens module's, wired in by the composition root), so the platform knows nothing of tokens.

/** The authenticated caller of a request. */
export interface Principal {
  tenantId: string;
  tokenId: string;
  personId: string;
  role: string;
  /** The token's last four characters, for logs. */
  preview: string;
  /** What the caller may do, e.g. 'tickets:write'; a route names the one it requires. */
  permissions: readonly string[];
}

/** Turns a bearer token into its principal, or throws AppError('unauthorized'). */
export type Authenticate = (token: string) => Promise<Principal>;
