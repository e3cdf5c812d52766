// Statements of the application role that may break the tenant rule (test/tenant-statements.ts),
// because they span tenants by design. Each is named by its libpg_query fingerprint (the statement's
// shape: it changes when the statement does, which brings the allowance back for review), with the
// statement's beginning for the reader and the reason it may span tenants. Keep it short: where a
// statement can name its tenant, fix the statement instead.
export interface Allowance {
  fingerprint: string;
  statement: string;
  reason: string;
}

export const ALLOWED: Allowance[] = [];
