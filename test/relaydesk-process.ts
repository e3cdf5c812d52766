// The real `relaydesk start` process on a fresh temporary data directory with its embedded
// PostgreSQL, as a new user runs it: start, wait until ready, call the API, signal, start again,
// clean up (also the PostgreSQL a killed run left behind).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const BIN = path.resolve('bin/relaydesk.mjs');

/** The test's environment without anything that would point Relaydesk elsewhere than its data dir. */
export const processEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn', ...extra };
  delete e['DATABASE_URL'];
  delete e['DATABASE_MIGRATION_URL'];
  delete e['RELAYDESK_SECRET_KEY'];
  delete e['RELAYDESK_DATA_DIR'];
  return e;
};

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Running, and not a zombie (a sandbox's PID 1 may never reap the postmaster pg_ctl detached). */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

export function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

export class RelaydeskProcess {
  readonly dataDir: string;
  readonly port: number;
  /** Where the embedded PostgreSQL keeps its files (and postmaster.pid). */
  pgDir: string;
  /** The `relaydesk` entry point to run (another copy of the project, for some tests). */
  bin = BIN;
  server: ChildProcess | undefined;
  /** stdout and stderr of the current run. */
  output = '';

  private constructor(dataDir: string, port: number) {
    this.dataDir = dataDir;
    this.port = port;
    this.pgDir = path.join(dataDir, 'pg');
  }

  /** A fresh data directory (in `parent`, the temporary directory by default) and a free port; nothing started yet. */
  static async create(label: string, parent = os.tmpdir()): Promise<RelaydeskProcess> {
    return new RelaydeskProcess(await mkdtemp(path.join(parent, `relaydesk-${label}-`)), await freePort());
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts `relaydesk start` on the data directory (the previous run's output is dropped). */
  start(extraEnv: NodeJS.ProcessEnv = {}): ChildProcess {
    this.output = '';
    const child = spawn(
      process.execPath,
      [this.bin, 'start', '--port', String(this.port), '--data', this.dataDir],
      {
        env: processEnv(extraEnv),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout!.on('data', (d) => {
      this.output += d;
    });
    child.stderr!.on('data', (d) => {
      this.output += d;
    });
    this.server = child;
    return child;
  }

  /** Waits for /readyz to answer 200; returns the milliseconds it took. */
  async waitReady(timeoutMs = 30_000): Promise<number> {
    const started = Date.now();
    while (Date.now() - started < timeoutMs) {
      if (this.server && this.server.exitCode !== null)
        throw new Error(`server exited with ${this.server.exitCode}; output:\n${this.output}`);
      try {
        const res = await fetch(`${this.base}/readyz`);
        if (res.status === 200) return Date.now() - started;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`server not ready after ${timeoutMs} ms; output:\n${this.output}`);
  }

  /** Resolves once the current run's output matches `pattern`; rejects if the process exits first. */
  waitForOutput(pattern: string | RegExp, timeoutMs = 30_000): Promise<void> {
    const server = this.server!;
    const matches = () =>
      typeof pattern === 'string' ? this.output.includes(pattern) : pattern.test(this.output);
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        server.stdout!.off('data', check);
        server.stderr!.off('data', check);
        server.off('close', exited);
        if (err) reject(err);
        else resolve();
      };
      // Listeners run in the order they were added: start()'s have already appended the chunk.
      const check = () => {
        if (matches()) done();
      };
      const exited = () =>
        done(new Error(`exited (${server.exitCode}) before printing ${pattern}; output:\n${this.output}`));
      const timer = setTimeout(
        () => done(new Error(`no ${pattern} after ${timeoutMs} ms; output:\n${this.output}`)),
        timeoutMs,
      );
      server.stdout!.on('data', check);
      server.stderr!.on('data', check);
      server.once('close', exited);
      check();
    });
  }

  /** Sends `signal` to the server and waits for it to exit; returns its exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const server = this.server!;
    server.kill(signal);
    return exitOf(server);
  }

  /** Runs a CLI command on the data directory. */
  cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
    const res = spawnSync(process.execPath, [this.bin, ...args, '--data', this.dataDir], {
      env: processEnv(),
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { status: res.status, stdout: res.stdout, stderr: res.stderr };
  }

  /**
   * Calls the API on a connection of its own, closed after the answer. cli() blocks this process's
   * event loop (spawnSync) for as long as a command runs; a kept-alive connection that the server
   * closed meanwhile would be taken for the next request before its close was read ("other side
   * closed", seen on a loaded CI machine).
   */
  async api(
    token: string,
    method: string,
    url: string,
    body?: unknown,
  ): Promise<{ status: number; body: any }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    return new Promise((resolve, reject) => {
      const req = http.request(`${this.base}${url}`, { method, headers, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('error', reject);
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode!, body: text === '' ? undefined : JSON.parse(text) });
          } catch (err) {
            reject(err as Error);
          }
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  async postmasterPid(): Promise<number | undefined> {
    const text = await readFile(path.join(this.pgDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
    return text ? Number(text.split('\n')[0]) : undefined;
  }

  /** Stops whatever still runs (server, a PostgreSQL a killed run left) and removes the data directory. */
  async cleanup(): Promise<void> {
    if (this.server && this.server.exitCode === null && this.server.signalCode === null) await this.stop();
    const pid = await this.postmasterPid();
    if (pid && alive(pid)) process.kill(pid, 'SIGINT');
    await rm(this.dataDir, { recursive: true, force: true });
  }
}
