// A tenant's sign-in rules: whether a second factor is required, how long sessions last when idle
// and at most, and whether passwords may be used at all (or single sign-on only).
import type { TenantTx } from '../../platform/db/tx.ts';

export interface AuthSettings {
  /** Every agent must enrol TOTP; until they do, a session reaches only the session and TOTP routes. */
  requireTotp: boolean;
  /** A session unused this long ends (sliding). */
  idleTimeoutMinutes: number;
  /** A session ends this long after sign-in, however busy. */
  absoluteTimeoutHours: number;
  /** Agents may sign in with a password (off: single sign-on only). */
  passwordSignIn: boolean;
}

export const DEFAULT_AUTH_SETTINGS: AuthSettings = {
  requireTotp: false,
  idleTimeoutMinutes: 8 * 60,
  absoluteTimeoutHours: 7 * 24,
  passwordSignIn: true,
};

/** Bounds of the timeouts (the migration's checks say the same). */
export const IDLE_MINUTES = { minimum: 5, maximum: 7 * 24 * 60 };
export const ABSOLUTE_HOURS = { minimum: 1, maximum: 90 * 24 };

/** The columns, with the defaults where the tenant has no row, for a query LEFT JOINing auth_settings as `a`. */
export const SETTINGS_COLUMNS = `coalesce(a.require_totp, false) AS require_totp,
  coalesce(a.idle_timeout_minutes, ${DEFAULT_AUTH_SETTINGS.idleTimeoutMinutes}) AS idle_timeout_minutes,
  coalesce(a.absolute_timeout_hours, ${DEFAULT_AUTH_SETTINGS.absoluteTimeoutHours}) AS absolute_timeout_hours,
  coalesce(a.password_sign_in, true) AS password_sign_in`;

export interface SettingsRow {
  require_totp: boolean;
  idle_timeout_minutes: number;
  absolute_timeout_hours: number;
  password_sign_in: boolean;
}

export const toSettings = (r: SettingsRow): AuthSettings => ({
  requireTotp: r.require_totp,
  idleTimeoutMinutes: r.idle_timeout_minutes,
  absoluteTimeoutHours: r.absolute_timeout_hours,
  passwordSignIn: r.password_sign_in,
});

export async function getAuthSettings(tx: TenantTx): Promise<AuthSettings> {
  const { rows } = await tx.query<SettingsRow>(
    `SELECT ${SETTINGS_COLUMNS} FROM (SELECT $1::uuid AS tenant_id) t
       LEFT JOIN auth_settings a ON a.tenant_id = t.tenant_id`,
    [tx.tenantId],
  );
  return toSettings(rows[0]!);
}

export async function putAuthSettings(
  tx: TenantTx,
  settings: AuthSettings,
  now: Date,
): Promise<AuthSettings> {
  await tx.query(
    `INSERT INTO auth_settings (tenant_id, require_totp, idle_timeout_minutes, absolute_timeout_hours,
                                password_sign_in, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (tenant_id) DO UPDATE SET require_totp = $2, idle_timeout_minutes = $3,
            absolute_timeout_hours = $4, password_sign_in = $5, updated_at = $6`,
    [
      tx.tenantId,
      settings.requireTotp,
      settings.idleTimeoutMinutes,
      settings.absoluteTimeoutHours,
      settings.passwordSignIn,
      now,
    ],
  );
  return getAuthSettings(tx);
}
