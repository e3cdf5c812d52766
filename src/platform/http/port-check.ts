// Whether the HTTP server will be able to listen, asked before a start does anything that costs
// time or leaves something behind (the embedded PostgreSQL, the first tenant and its token).
import net from 'node:net';

/**
 * Listens on host:port for a moment and lets go. Rejects with the error the server's own listen
 * would meet (EADDRINUSE, EADDRNOTAVAIL, EACCES, ENOTFOUND for a host name that does not resolve).
 * Port 0 (any free port) always passes.
 */
export async function checkCanListen(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}
