// The idle half of the upkeep benchmark (bench/upkeep.ts), in a process of its own so that nothing
// else runs in it: a pool, a queue client (no workers, no supervision, no cron) and the scheduler's
// pass loop (startUpkeepScheduler) with nothing due. First the process without the loop, then with
// it; CPU by process.cpuUsage(). Run as `node bench/upkeep-idle.ts '<IdleSpec JSON>'` (runJsonChild);
// prints one JSON line.
import { randomBytes } from 'node:crypto';
import { runUpkeepPass, startUpkeepScheduler, type UpkeepDeps } from '../src/modules/inbound/upkeep.ts';
import { DEFAULT_UPKEEP } from '../src/platform/config.ts';
import { createPool } from '../src/platform/db/pool.ts';
import { createLogger } from '../src/platform/logging.ts';
import { JobQueue } from '../src/platform/queue/queue.ts';
import { JobRegistry } from '../src/platform/queue/registry.ts';
import { printJson, sleep } from './lib.ts';

export interface IdleSpec {
  url: string;
  publicUrl: string;
  seconds: number;
  baselineSeconds: number;
  intervalSeconds: number;
}

export interface IdleResult {
  warm: { renewals: number; reconciles: number };
  passes: number;
  loopPercent: number;
  baselinePercent: number;
}

async function measureIdle(spec: IdleSpec): Promise<IdleResult> {
  const logger = createLogger('error');
  const pool = createPool({ connectionString: spec.url, max: 2, applicationName: 'relaydesk-upkeep-idle' });
  const queue = new JobQueue({
    connectionString: spec.url,
    logger,
    registry: new JobRegistry(),
    supervise: false,
    schedule: false,
    poolSize: 2,
  });
  await queue.start();
  try {
    // Each pass reads the clock once per claim statement (renewals, reconciliations): counted.
    let clockReads = 0;
    const deps: UpkeepDeps = {
      pool,
      secretKey: randomBytes(32),
      clock: {
        now: () => {
          clockReads++;
          return new Date();
        },
      },
      logger,
      publicUrl: spec.publicUrl,
      upkeep: { ...DEFAULT_UPKEEP, intervalSeconds: spec.intervalSeconds },
    };
    // One pass first: connections made, and nothing due (it must claim nothing).
    const warm = await runUpkeepPass(deps, queue);
    await sleep(2_000);
    const share = async (seconds: number) => {
      const cpu = process.cpuUsage();
      const wall = performance.now();
      await sleep(seconds * 1000);
      const used = process.cpuUsage(cpu);
      return (100 * (used.user + used.system)) / 1e6 / ((performance.now() - wall) / 1000);
    };
    const baselinePercent = await share(spec.baselineSeconds);
    clockReads = 0;
    const cpu = process.cpuUsage();
    const wall = performance.now();
    const stop = startUpkeepScheduler(deps, queue);
    await sleep(spec.seconds * 1000);
    await stop();
    const used = process.cpuUsage(cpu);
    const loopPercent = (100 * (used.user + used.system)) / 1e6 / ((performance.now() - wall) / 1000);
    return {
      warm,
      passes: clockReads / 2,
      loopPercent: Number(loopPercent.toFixed(2)),
      baselinePercent: Number(baselinePercent.toFixed(2)),
    };
  } finally {
    await queue.stop({ graceful: false }).catch(() => undefined);
    await pool.end().catch(() => undefined);
  }
}

if (process.argv[2] !== undefined) {
  measureIdle(JSON.parse(process.argv[2]) as IdleSpec).then(
    (result) => {
      printJson({ ...result });
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? err}\n`);
      process.exit(1);
    },
  );
}
