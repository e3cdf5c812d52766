// Benchmarks: `npm run bench` runs all of them; `npm run bench -- api|queue|startup|identity|inbound|sla|upkeep|outbound|notify|console|scale` runs one.
// Each starts its own embedded PostgreSQL in a fresh temporary directory (or uses DATABASE_URL when
// set) and cleans up after itself, also on failure. Each prints readable results and then one JSON line.
import os from 'node:os';
import { benchApi } from './api.ts';
import { benchConsole } from './console.ts';
import { benchIdentity } from './identity.ts';
import { benchInbound } from './inbound.ts';
import { benchNotify } from './notify.ts';
import { line, printJson, runCleanups, wasInterrupted } from './lib.ts';
import { benchOutbound } from './outbound.ts';
import { benchQueue } from './queue.ts';
import { benchScale } from './scale.ts';
import { benchSla } from './sla.ts';
import { benchStartup } from './startup.ts';
import { benchUpkeep } from './upkeep.ts';

const BENCHMARKS: Record<string, () => Promise<Record<string, unknown>>> = {
  api: benchApi,
  queue: benchQueue,
  startup: benchStartup,
  identity: benchIdentity,
  inbound: benchInbound,
  sla: benchSla,
  upkeep: benchUpkeep,
  outbound: benchOutbound,
  notify: benchNotify,
  console: benchConsole,
  scale: benchScale,
};

async function main(): Promise<number> {
  const arg = process.argv[2];
  const names = arg === undefined || arg === 'all' ? Object.keys(BENCHMARKS) : [arg];
  for (const name of names) {
    if (!BENCHMARKS[name]) {
      process.stderr.write(
        `unknown benchmark "${name}"; use one of: ${Object.keys(BENCHMARKS).join(', ')} (or none for all)\n`,
      );
      return 2;
    }
  }
  const cpus = os.cpus();
  line(
    `machine: ${os.availableParallelism()} cores (${cpus[0]?.model ?? 'unknown CPU'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ` +
      `node ${process.version}, ${os.type()} ${os.release()}`,
  );
  let failed = false;
  for (const name of names) {
    if (wasInterrupted()) break;
    const started = Date.now();
    try {
      const result = await BENCHMARKS[name]!();
      await runCleanups();
      line(`(${name} took ${Math.round((Date.now() - started) / 1000)} s including clean-up)`);
      printJson({
        ...result,
        date: new Date().toISOString(),
        node: process.version,
        cores: os.availableParallelism(),
      });
    } catch (err) {
      failed = true;
      if (wasInterrupted()) process.stderr.write(`${name} benchmark interrupted\n`);
      else process.stderr.write(`\n${name} benchmark failed: ${(err as Error).stack ?? err}\n`);
      await runCleanups();
      printJson({
        benchmark: name,
        error: (err as Error).message ?? String(err),
        date: new Date().toISOString(),
      });
    }
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    await runCleanups();
    process.exit(1);
  },
);
