import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { checkCanListen } from '../platform/http/port-check.ts';
import { listenProblem } from './listen-errors.ts';

const failure = (host: string, port: number) =>
  checkCanListen(host, port).then(
    () => undefined,
    (err: unknown) => err,
  );

describe('listenProblem', () => {
  it('says which address is taken, and which flag chooses another', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const err = await failure('127.0.0.1', port);
      expect(listenProblem(err, '127.0.0.1', port)).toBe(
        `127.0.0.1:${port} is already in use (another Relaydesk?); choose another port with --port N or PORT=N`,
      );
    } finally {
      blocker.close();
    }
  });

  it('names a host that is not this machine', async () => {
    const err = await failure('192.0.2.1', 8080); // TEST-NET-1: never a local address
    expect(listenProblem(err, '192.0.2.1', 8080)).toContain('192.0.2.1 is not an address of this machine');
  });

  it('leaves other errors with the same codes alone', () => {
    const denied = Object.assign(new Error('EACCES: permission denied, mkdir'), {
      code: 'EACCES',
      syscall: 'mkdir',
    });
    expect(listenProblem(denied, '127.0.0.1', 8080)).toBeUndefined();
    expect(listenProblem(new Error('boom'), '127.0.0.1', 8080)).toBeUndefined();
  });
});
