// What goes wrong during the run: a random Relaydesk process SIGKILLed every few seconds and started
// again in its slot; PostgreSQL stopped once under load; the providers answering 429, 5xx or slowly
// in bursts; Graph subscriptions expiring (and one removed, one reporting missed notifications).
import type { Cluster, ClusterProcess } from '../../test/cluster.ts';
import type { ChaosDatabase } from './database.ts';
import type { ChaosTenant, Simulators } from './setup.ts';
import type { Traffic } from './traffic.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!;

/** A span of time (ms since the epoch) during which something was not there. */
export interface Outage {
  from: number;
  to: number;
}

export interface FaultLog {
  kills: { name: string; at: number; back: number | undefined }[];
  /** A process that did not come back after a kill (a failure of the run). */
  restartFailures: string[];
  databaseStops: Outage[];
  /** When no scheduler process was ready (the SLA clock's excuse for a late threshold). */
  schedulerDown: Outage[];
  providerFaultBursts: number;
  subscriptionExpiries: number;
  lifecycleEvents: string[];
}

export function newFaultLog(): FaultLog {
  return {
    kills: [],
    restartFailures: [],
    databaseStops: [],
    schedulerDown: [],
    providerFaultBursts: 0,
    subscriptionExpiries: 0,
    lifecycleEvents: [],
  };
}

/** Restarts `proc` until it is ready (a restart during the database stop waits for the database). */
async function bringBack(proc: ClusterProcess, log: FaultLog): Promise<number | undefined> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      if (!proc.running) proc.spawn();
      await proc.waitReady(180_000);
      return Date.now();
    } catch {
      await proc.kill();
      await sleep(1000);
    }
  }
  log.restartFailures.push(`${proc.name}:\n${proc.output.slice(-2000)}`);
  return undefined;
}

/** SIGKILLs a random ready process every `everyMs` and restarts it; keeps one api process up. */
export async function killLoop(options: {
  cluster: Cluster;
  traffic: Traffic;
  log: FaultLog;
  everyMs: number;
  until: () => boolean;
}): Promise<void> {
  const { cluster, traffic, log } = options;
  const restarts: Promise<void>[] = [];
  while (!options.until()) {
    await sleep(options.everyMs * (0.5 + Math.random()));
    if (options.until()) break;
    const candidates = cluster
      .processes()
      .filter((p) => p.ready && (p.role !== 'api' || cluster.readyApis().length > 1));
    if (candidates.length === 0) continue;
    const proc = pick(candidates);
    const at = Date.now();
    traffic.noteKill(proc);
    await proc.kill('SIGKILL');
    const kill = { name: proc.name, at, back: undefined as number | undefined };
    log.kills.push(kill);
    restarts.push(
      bringBack(proc, log).then((back) => {
        kill.back = back;
        if (proc.role === 'scheduler') log.schedulerDown.push({ from: at, to: back ?? Date.now() });
      }),
    );
  }
  await Promise.all(restarts);
}

/** Stops PostgreSQL at `afterMs` for `seconds`, under load. */
export async function stopDatabaseOnce(options: {
  db: ChaosDatabase;
  traffic: Traffic;
  log: FaultLog;
  afterMs: number;
  seconds: number;
}): Promise<void> {
  await sleep(options.afterMs);
  const from = Date.now();
  options.traffic.setDatabaseDown(true);
  await options.db.stop();
  await sleep(options.seconds * 1000);
  await options.db.start();
  options.traffic.setDatabaseDown(false);
  options.log.databaseStops.push({ from, to: Date.now() });
}

/** Every `everyMs`, a few seconds in which the providers misbehave. */
export async function providerFaultLoop(options: {
  sims: Simulators;
  log: FaultLog;
  everyMs: number;
  until: () => boolean;
}): Promise<void> {
  const { sims } = options;
  const always = Infinity;
  while (!options.until()) {
    await sleep(options.everyMs * (0.5 + Math.random()));
    if (options.until()) break;
    options.log.providerFaultBursts++;
    const status = pick([429, 500, 503]);
    // Graph: message fetches, sendMail and renewals fail or hang now and then.
    sims.graph.fault({ pathPrefix: '/v1.0/users/', status, retryAfter: 1, probability: 0.2, times: always });
    sims.graph.fault({ pathPrefix: '/v1.0/users/', delayMs: 12_000, times: 1 });
    sims.graph.fault({ pathPrefix: '/v1.0/subscriptions', method: 'PATCH', status: 503, times: 1 });
    // Slack: rate limited; Teams: throttled and unavailable; the webhook receiver: 5xx and slow.
    sims.slack.fault({
      pathPrefix: '/api/chat.postMessage',
      status: 429,
      retryAfter: 1,
      probability: 0.3,
      times: always,
    });
    sims.bot.fault({ status: 429, retryAfter: 1, times: 2 });
    sims.bot.fault({ status: 503, times: 1 });
    sims.receiver.fail({ status: pick([500, 503]), probability: 0.1, times: always });
    sims.receiver.fail({ delayMs: 5_000, times: 1 });
    // The SMTP sink: temporary refusals.
    sims.smtp.fault({ command: 'DATA', code: 451, probability: 0.2, times: always });
    await sleep(4000);
    clearProviderFaults(sims);
  }
}

export function clearProviderFaults(sims: Simulators): void {
  sims.graph.clearFaults();
  sims.slack.clearFaults();
  sims.bot.clearFaults();
  sims.receiver.faults.clear();
  sims.smtp.clearFaults();
}

/**
 * Every `everyMs`, every Graph subscription expires at Graph's side (the simulator's clock jumps past
 * their expiry and back): the next renewal finds it gone and makes a new one, and reconciliation
 * finds the mail nobody was told of meanwhile. The first round sends lifecycle notifications
 * instead: `subscriptionRemoved` for one mailbox's subscription, `missed` for another's.
 */
export async function subscriptionLoop(options: {
  sims: Simulators;
  tenants: ChaosTenant[];
  log: FaultLog;
  everyMs: number;
  until: () => boolean;
}): Promise<void> {
  const { graph } = options.sims;
  let round = 0;
  while (!options.until()) {
    await sleep(options.everyMs * (0.5 + Math.random()));
    if (options.until()) break;
    round++;
    if (round === 1) {
      // Graph removed one subscription (and says so) and missed notifications of another.
      const [removed, missed] = graph.subscriptions();
      for (const [sub, event] of [
        [removed, 'subscriptionRemoved'],
        [missed, 'missed'],
      ] as const)
        if (sub) options.log.lifecycleEvents.push(`${event}:${await graph.lifecycle(sub.id, event)}`);
      continue;
    }
    const jump = (graph.maxExpirationMinutes + 1) * 60;
    graph.advance(jump);
    graph.subscriptions(); // an expired subscription is gone for good once looked at
    graph.advance(-jump);
    options.log.subscriptionExpiries++;
  }
}
