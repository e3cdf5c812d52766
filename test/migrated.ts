// A test server's database made ready as production makes it: the migrations as the owner (the URL's
// user), then the application role given its password, and the queue's schema installed as that role.
import { migrate } from '../src/platform/db/migrate.ts';
import { createPool } from '../src/platform/db/pool.ts';
import { APP_ROLE } from '../src/platform/db/tx.ts';
import { installQueueSchema } from '../src/platform/queue/queue.ts';
import { appDatabaseUrl } from './urls.ts';

/** Migrates the database of `ownerUrl` and answers its URL as the application role. */
export async function migrateAsProduction(ownerUrl: string, appRolePassword: string): Promise<string> {
  const owner = createPool({ connectionString: ownerUrl, max: 2 });
  try {
    await migrate(owner);
    await owner.query(`ALTER ROLE ${APP_ROLE} LOGIN PASSWORD '${appRolePassword}'`);
  } finally {
    await owner.end();
  }
  const appUrl = appDatabaseUrl(ownerUrl, appRolePassword);
  await installQueueSchema(appUrl);
  return appUrl;
}
