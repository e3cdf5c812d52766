// The event dispatcher (worker role): hands recorded events to fan-out jobs. It claims undispatched
// events across tenants (SKIP LOCKED, so several workers share the work without overlap) and
// enqueues one `notify.fanout` job per event in the claiming transaction: an event is either still
// undispatched or has its job, never neither. An event nobody is to hear of (no enabled rule about
// its type in its tenant, no subscriber such as a webhook endpoint) is marked fanned out in that
// transaction instead: most status changes and creations in a tenant without rules for them, whose
// job, with its transaction, would cost about as much again as the change that recorded the event.
// It runs when an event is announced (LISTEN on a dedicated connection: NOTIFY is delivered at
// commit) and once a second regardless, so a lost connection only delays, never loses.
import pg from 'pg';
import type { Pool } from '../../platform/db/pool.ts';
import { type SystemTx, withSystemTx } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import {
  type AnyEventType,
  claimUndispatched,
  EVENTS_CHANNEL,
  markFannedOutClaimed,
} from '../events/events.ts';
import type { AdapterChannel, ChannelAdapter } from './channel.ts';
import { notifyFanoutJob } from './job-refs.ts';
import { tenantsWithRules } from './rules.ts';

const CLAIM = 500;
const POLL_MS = 1000;

export interface DispatchDeps {
  pool: Pool;
  queue: Pick<JobQueue, 'sendMany'>;
  /** The channel adapters the fan-out uses: their subscribers count as listeners. */
  adapters: Map<AdapterChannel, ChannelAdapter>;
}

/**
 * Fanned out whatever the rules say: an escalation names whom to tell in its own data, a rule's
 * test its rule.
 */
const ALWAYS_FANNED_OUT: ReadonlySet<AnyEventType> = new Set(['sla.escalated', 'notification.test']);

/** Of the claimed events, the pairs `tenant|type` someone listens to (a rule or a subscriber). */
async function listenedTo(
  sys: SystemTx,
  adapters: DispatchDeps['adapters'],
  claimed: { tenantId: string; type: AnyEventType }[],
): Promise<Set<string>> {
  const tenantIds = [...new Set(claimed.map((c) => c.tenantId))];
  const types = [...new Set(claimed.map((c) => c.type))];
  const heard = await tenantsWithRules(sys, tenantIds, types);
  for (const adapter of adapters.values())
    for (const key of (await adapter.subscribedAmong?.(sys, tenantIds, types)) ?? []) heard.add(key);
  return heard;
}

/** One pass: claims and enqueues until nothing is left. Answers how many events it dispatched. */
export async function dispatchEvents(deps: DispatchDeps): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await withSystemTx(deps.pool, async (sys) => {
      const claimed = await claimUndispatched(sys, CLAIM);
      if (claimed.length === 0) return 0;
      const heard = await listenedTo(sys, deps.adapters, claimed);
      const isHeard = (c: (typeof claimed)[number]) =>
        ALWAYS_FANNED_OUT.has(c.type) || heard.has(`${c.tenantId}|${c.type}`);
      const fanned = claimed.filter(isHeard);
      await markFannedOutClaimed(
        sys,
        claimed.filter((c) => !isHeard(c)),
      );
      if (fanned.length > 0)
        await deps.queue.sendMany(
          notifyFanoutJob,
          fanned.map((c) => ({ tenantId: c.tenantId, eventId: c.id })),
          { tx: sys },
        );
      return claimed.length;
    });
    total += n;
    if (n < CLAIM) return total;
  }
}

/** Starts the dispatcher; answers a function that stops it. */
export function startEventDispatcher(
  deps: DispatchDeps & {
    logger: Logger;
    connectionString: string;
  },
): () => Promise<void> {
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
