// Child worker for the lease-recovery benchmark: takes a job from the queue named in BENCH_QUEUE
// (on BENCH_DATABASE_URL), prints `ACTIVE <jobId>` and then hangs until it is killed.
import { createLogger } from '../src/platform/logging.ts';
import { JobQueue } from '../src/platform/queue/queue.ts';
import { defineJob, JobRegistry } from '../src/platform/queue/registry.ts';

const url = process.env['BENCH_DATABASE_URL'];
const name = process.env['BENCH_QUEUE'];
if (!url || !name) {
  process.stderr.write('BENCH_DATABASE_URL and BENCH_QUEUE are required\n');
  process.exit(2);
}

const hang = defineJob<object>({
  name,
  leaseSeconds: 5,
  retry: { limit: 3, delaySeconds: 0, backoff: false },
  batchSize: 1,
  concurrency: 1,
  handler: async (_payload, ctx) => {
    process.stdout.write(`ACTIVE ${ctx.jobId}\n`);
    await new Promise(() => undefined); // never settles: the job stays active until this process dies
  },
});

const queue = new JobQueue({
  connectionString: url,
  logger: createLogger('warn', process.stderr as never),
  registry: new JobRegistry().register(hang),
  supervise: false,
  schedule: false,
  poolSize: 2,
  instanceName: `bench-lease-child-${process.pid}`,
});
await queue.start();
await queue.startWorkers([name]);
process.stdout.write('READY\n');
