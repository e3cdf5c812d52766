// Load generator for the identity benchmark, in its own process:
//   node bench/identity-load.ts '<json {url, token, people, connections, duration}>'
// Each request resolves the primary address of a random one of the loaded people.
import autocannon from 'autocannon';

const spec = JSON.parse(process.argv[2] ?? '{}') as {
  url: string;
  token: string;
  people: number;
  connections: number;
  duration: number;
};
const cpuBefore = process.cpuUsage();
const result = await autocannon({
  url: spec.url,
  headers: { authorization: `Bearer ${spec.token}` },
  connections: spec.connections,
  duration: spec.duration,
  requests: [
    {
      setupRequest: (request: { path?: string }) => {
        const n = Math.floor(Math.random() * spec.people);
        request.path = `/api/v1/people/resolve?email=${encodeURIComponent(`person-${n}@bench.example`)}`;
        return request;
      },
    },
  ],
});
const cpu = process.cpuUsage(cpuBefore);
process.stdout.write(
  `${JSON.stringify({
    requestsPerSecond: result.requests.average,
    total: result.requests.total,
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
    non2xx: result.non2xx,
    errors: result.errors,
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
  })}\n`,
);
