// The event dispatcher (worker role): hands recorded events to fan-out jobs. It claims undispatched
// events across tenants (SKIP LOCKED, so several workers share the work without overlap) and
// enqueues one `notify.fanout` job per event in the claiming transaction: an event is either still
// undispatched or has its job, never neither. It runs when an event is announced (LISTEN on a
// dedicated connection: NOTIFY is delivered at commit) and once a second regardless, so a lost
// connection only delays, never loses.
import pg from 'pg';
import type { Pool } from '../../platform/db/pool.ts';
import { withSystemTx } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import { claimUndispatched, EVENTS_CHANNEL } from '../events/events.ts';
import { notifyFanoutJob } from './job-refs.ts';

const CLAIM = 500;
const POLL_MS = 1000;

/** One pass: claims and enqueues until nothing is left. Answers how many events it dispatched. */
export async function dispatchEvents(deps: {
  pool: Pool;
  queue: Pick<JobQueue, 'sendMany'>;
}): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await withSystemTx(deps.pool, async (sys) => {
      const claimed = await claimUndispatched(sys, CLAIM);
      if (claimed.length > 0)
        await deps.queue.sendMany(
          notifyFanoutJob,
          claimed.map((c) => ({ tenantId: c.tenantId, eventId: c.id })),
          { tx: sys },
        );
      return claimed.length;
    });
    total += n;
    if (n < CLAIM) return total;
  }
}

/** Starts the dispatcher; answers a function that stops it. */
export function startEventDispatcher(deps: {
  pool: Pool;
  queue: Pick<JobQueue, 'sendMany'>;
  logger: Logger;
  connectionString: string;
}): () => Promise<void> {
  const logger = deps.logger.child({ component: 'event-dispatcher' });
  let stopped = false;
  let running: Promise<void> | undefined;
  let again = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;

  const pass = (): void => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await dispatchEvents(deps);
        } catch (err) {
          logger.warn({ err }, 'dispatching events failed; trying again');
        }
      } while (again && !stopped);
    })().finally(() => {
      running = undefined;
    });
  };

  const listen = async (): Promise<void> => {
    if (stopped) return;
    const c = new pg.Client({
      connectionString: deps.connectionString,
      application_name: 'relaydesk-events',
    });
    const lost = (err?: Error) => {
      if (client !== c) return;
      client = undefined;
      c.end().catch(() => undefined);
      if (err) logger.warn({ err }, 'event listener lost; polling until it is back');
      if (!stopped) {
        retry = setTimeout(() => void listen(), 2000);
        retry.unref();
      }
    };
    client = c;
    c.on('error', lost);
    c.on('end', () => lost());
    c.on('notification', pass);
    try {
      await c.connect();
      await c.query(`LISTEN ${EVENTS_CHANNEL}`);
      pass();
    } catch (err) {
      lost(err as Error);
    }
  };

  const timer = setInterval(pass, POLL_MS);
  timer.unref();
  void listen();
  pass();

  return async () => {
    stopped = true;
    clearInterval(timer);
    if (retry) clearTimeout(retry);
    const c = client;
    client = undefined;
    await c?.end().catch(() => undefined);
    await running;
  };
}
