// A Relaydesk for console tests: the test app (its two tenants, its database, its TestClock) listening
// on a loopback port for a real browser, with the real job workers (outbound mail leaves, inbound mail
// arrives) and, on request, the SLA scheduler.
import { defaultRegistry } from '../../src/app.ts';
import { startSlaScheduler } from '../../src/modules/sla/scheduler.ts';
import { createLogger } from '../../src/platform/logging.ts';
import { JobQueue } from '../../src/platform/queue/queue.ts';
import { type TestApp, type TestAppOptions, useTestApp } from '../app.ts';
import { atFileEnd } from '../file-end.ts';

export interface ConsoleServer extends TestApp {
  /** http://127.0.0.1:<port> */
  url: string;
  /** The console's address for a path inside it: consoleUrl('tickets/1') */
  consoleUrl(path?: string): string;
}

export async function useConsoleServer(
  options: TestAppOptions & {
    workers?: boolean;
    slaScheduler?: boolean;
    /** RELAYDESK_PUBLIC_URL is the listening address (OAuth callbacks, subscriptions' notification URLs). */
    publicUrlIsSelf?: boolean;
  } = {},
): Promise<ConsoleServer> {
  const t = await useTestApp(options);
  const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
  // Links mailed by the server (invitations, password resets) and OAuth redirects lead to this console.
  if (options.publicUrlIsSelf) t.config.publicUrl = url;
  else t.config.publicUrl ??= url;
  const logger = createLogger('silent');
  let workers: JobQueue | undefined;
  let stopSla: (() => Promise<void>) | undefined;
  if (options.workers ?? true) {
    workers = new JobQueue({
      connectionString: t.db.url,
      logger,
      registry: defaultRegistry({
        pool: t.db.pool,
        secretKey: t.secretKey,
        logger,
        clock: t.clock,
        publicUrl: t.config.publicUrl,
        oauth: t.config.oauth,
      }),
      supervise: false,
      schedule: false,
      poolSize: 3,
    });
    await workers.start();
    await workers.ensureQueues();
    await workers.startWorkers();
  }
  if (options.slaScheduler) {
    stopSla = startSlaScheduler({ pool: t.db.pool, queue: workers ?? t.queue, logger, clock: t.clock });
  }
  atFileEnd(async () => {
    await stopSla?.();
    await workers?.stop({ graceful: false });
  });
  return Object.assign(t, {
    url,
    consoleUrl: (path = '') => `${url}/console/${path.replace(/^\//, '')}`,
  });
}
