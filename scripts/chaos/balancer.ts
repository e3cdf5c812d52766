// The load balancer in front of the api processes, as an installation has one: the address the
// providers are given (RELAYDESK_PUBLIC_URL: Graph's validation handshake and lifecycle
// notifications, the Bot Framework's activities). Each request goes to a ready api process; one that
// refuses the connection (killed a moment ago) is passed to the next, as a real balancer's health
// checks and retries would. Nothing else: the feeders talk to the api processes directly, so that
// every answer they count comes from Relaydesk and not from here.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Cluster } from '../../test/cluster.ts';

export interface Balancer {
  url: string;
  /** Requests no api process could take (answered 503 here). */
  unavailable(): number;
  close(): Promise<void>;
}

export async function startBalancer(cluster: Cluster): Promise<Balancer> {
  let next = 0;
  let unavailable = 0;
  const forward = (target: number, req: http.IncomingMessage, body: Buffer) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const upstream = http.request(
        { host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      upstream.on('error', reject);
      upstream.end(body);
    });
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    for (let attempt = 0; attempt < 50; attempt++) {
      const ready = cluster.readyApis();
      if (ready.length === 0) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      const target = ready[next++ % ready.length]!;
      try {
        const answer = await forward(target.port!, req, body);
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    unavailable++;
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('no api process is up');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    unavailable: () => unavailable,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
