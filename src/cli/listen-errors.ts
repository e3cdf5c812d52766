// What to tell the user when the HTTP server cannot listen: which address, why, and which flag or
// variable changes it. Undefined for errors that are not about listening.

export function listenProblem(err: unknown, host: string, port: number): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  const where = `${host}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return `${where} is already in use (another Relaydesk?); choose another port with --port N or PORT=N`;
    case 'EACCES':
      return `not allowed to listen on ${where} (ports below 1024 need privileges); choose another port with --port N or PORT=N`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${where}: ${host} is not an address of this machine; choose another with --host H or HOST=H`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot listen on ${where}: the host name ${host} does not resolve; choose another with --host H or HOST=H`;
    default:
      return undefined;
  }
}
