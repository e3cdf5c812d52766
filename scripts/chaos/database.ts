// The chaos run's PostgreSQL: the embedded one on a temporary data directory, migrated as its owner,
// with the application role's password set, as `relaydesk migrate` leaves an operator's server.
// It can be stopped and started again on the same port, so the processes' DATABASE_URL stays right
// while it is down.
import path from 'node:path';
import pg from 'pg';
import { type EmbeddedDatabase, openEmbedded } from '../../src/platform/db/embedded.ts';
import { migrate } from '../../src/platform/db/migrate.ts';
import { createPool } from '../../src/platform/db/pool.ts';
import { APP_ROLE } from '../../src/platform/db/tx.ts';
import { createLogger } from '../../src/platform/logging.ts';
import { installQueueSchema } from '../../src/platform/queue/queue.ts';

export interface ChaosDatabase {
  /** As the schema's owner (the cluster's superuser): migrations and the run's checks. */
  ownerUrl: string;
  /** As the application role: what every Relaydesk process is given. */
  appUrl: string;
  port: number;
  /** Stops PostgreSQL (fast shutdown: sessions are cut, in-flight transactions roll back). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  running(): boolean;
}

const portOf = (url: string): number => {
  const u = new URL(url);
  return Number(u.searchParams.get('port') ?? u.port);
};

export async function openChaosDatabase(dataDir: string): Promise<ChaosDatabase> {
  const logger = createLogger('warn');
  const open = (port?: number) =>
    openEmbedded({ dataDir: path.join(dataDir, 'db'), logger, purpose: 'test', ...(port ? { port } : {}) });
  let embedded: EmbeddedDatabase | undefined = await open();
  const port = portOf(embedded.url);
  const owner = createPool({ connectionString: embedded.url, max: 1, applicationName: 'relaydesk-chaos' });
  try {
    await migrate(owner);
    // The password is made of base64url characters only: nothing to quote.
    await owner.query(`ALTER ROLE ${APP_ROLE} LOGIN PASSWORD '${embedded.appPassword}'`);
  } finally {
    await owner.end();
  }
  await installQueueSchema(embedded.appUrl);
  const { url: ownerUrl, appUrl } = embedded;
  return {
    ownerUrl,
    appUrl,
    port,
    running: () => embedded !== undefined,
    async stop() {
      const e = embedded;
      embedded = undefined;
      await e?.stop();
    },
    async start() {
      if (embedded) return;
      embedded = await open(port);
    },
  };
}

/** A client as the owner, for the run's own reads (invariants, timings); the caller ends it. */
export async function ownerClient(db: ChaosDatabase): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.ownerUrl });
  await client.connect();
  return client;
}
