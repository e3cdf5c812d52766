// What to tell the user when the HTTP server cannot listen: which address, why, and which flag or
// variable changes it. Undefined for any other error, including the same codes from elsewhere (an
// EACCES on the data directory is not about the port).

export function listenProblem(err: unknown, host: string, port: number): string | undefined {
  const { code, syscall, hostname } = (err ?? {}) as {
    code?: unknown;
    syscall?: unknown;
    hostname?: unknown;
  };
  const where = `${host}:${port}`;
  if (syscall === 'listen') {
    switch (code) {
      case 'EADDRINUSE':
        return `${where} is already in use (another Relaydesk?); choose another port with --port N or PORT=N`;
      case 'EACCES':
        return `not allowed to listen on ${where} (ports below 1024 need privileges); choose another port with --port N or PORT=N`;
      case 'EADDRNOTAVAIL':
        return `cannot listen on ${where}: ${host} is not an address of this machine; choose another with --host H or HOST=H`;
    }
  }
  if (syscall === 'getaddrinfo' && hostname === host && (code === 'ENOTFOUND' || code === 'EAI_AGAIN')) {
    return `cannot listen on ${where}: the host name ${host} does not resolve; choose another with --host H or HOST=H`;
  }
  return undefined;
}
