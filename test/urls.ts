// Test database URLs: another database on the same server, or the same one as another role.
import { APP_ROLE } from '../src/platform/db/tx.ts';

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** The same database as the application role. */
export function appDatabaseUrl(url: string, password: string): string {
  const u = new URL(url);
  u.username = APP_ROLE;
  u.password = password;
  return u.toString();
}
