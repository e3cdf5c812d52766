// The load generator, run as its own process so that it does not share the servers' event loop:
//   node bench/load.ts '<json LoadSpec>'
// It prints one JSON line (LoadResult) on stdout when done.
import autocannon from 'autocannon';

export interface LoadSpec {
  url: string;
  method: 'GET' | 'POST';
  headers?: Record<string, string>;
  connections: number;
  /** Seconds; ignored when `amount` is set. */
  duration: number;
  /** Stop after this many requests instead. */
  amount?: number;
  /** POST a ticket whose requester email cycles over this many addresses. */
  ticketEmails?: number;
  /** Send each request with the next of these bearer tokens (round robin), e.g. one per tenant. */
  tokens?: string[];
}

export interface LoadResult {
  requestsPerSecond: number;
  total: number;
  durationSeconds: number;
  latencyMs: { p50: number; p90: number; p99: number; average: number; max: number };
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** CPU seconds this load-generator process used (user + system). */
  clientCpuSeconds: number;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  let n = 0;
  let t = 0;
  const emails = spec.ticketEmails;
  const tokens = spec.tokens;
  const requests =
    emails || tokens
      ? [
          {
            setupRequest: (request: { body?: string; headers?: Record<string, string> }) => {
              if (emails) {
                n = (n + 1) % emails;
                request.body = JSON.stringify({
                  subject: 'Bench',
                  requester: { email: `bench-${n}@example.com` },
                  message: { text: 'hello' },
                });
              }
              if (tokens) {
                t = (t + 1) % tokens.length;
                request.headers = { ...request.headers, authorization: `Bearer ${tokens[t]}` };
              }
              return request;
            },
          },
        ]
      : undefined;
  const cpuBefore = process.cpuUsage();
  const result = await autocannon({
    url: spec.url,
    method: spec.method,
    headers: { ...(spec.method === 'POST' ? { 'content-type': 'application/json' } : {}), ...spec.headers },
    connections: spec.connections,
    duration: spec.duration,
    ...(spec.amount ? { amount: spec.amount } : {}),
    ...(requests ? { requests } : {}),
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
  process.stderr.write(`load generator failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
