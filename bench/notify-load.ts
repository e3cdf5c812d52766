// The notification benchmark's load generator for POST /hooks/teams (bench/notify.ts), in its own
// process so that it does not share the server's event loop:
//   node bench/notify-load.ts < <json NotifyLoadSpec>
// Sends the given requests (signed activities) round robin with `connections` in flight for
// `duration` seconds; prints one JSON line (LoadResult of bench/load.ts) when done.
import autocannon from 'autocannon';
import type { LoadResult } from './load.ts';

export interface NotifyLoadSpec {
  url: string;
  connections: number;
  duration: number;
  requests: { headers: Record<string, string>; body: string }[];
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const spec = JSON.parse(Buffer.concat(chunks).toString('utf8')) as NotifyLoadSpec;
  let n = 0;
  const cpuBefore = process.cpuUsage();
  const result = await autocannon({
    url: spec.url,
    method: 'POST',
    connections: spec.connections,
    duration: spec.duration,
    requests: [
      {
        setupRequest: (request: { body?: string; headers?: Record<string, string> }) => {
          const next = spec.requests[n++ % spec.requests.length]!;
          request.headers = { ...request.headers, ...next.headers };
          request.body = next.body;
          return request;
        },
      },
    ],
    timeout: 30,
  });
  const cpu = process.cpuUsage(cpuBefore);
  const out: LoadResult = {
    requestsPerSecond: result.requests.average,
    total: result.requests.total,
    durationSeconds: result.duration,
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      average: result.latency.average,
      max: result.latency.max,
    },
    ok2xx: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err) => {
  process.stderr.write(`notify load generator failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
