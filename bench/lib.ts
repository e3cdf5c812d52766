// Shared helpers for the benchmarks: temporary data directories, free ports, a stack of clean-up
// steps that runs on success, failure and Ctrl-C, process CPU accounting and result printing.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Config, loadConfig } from '../src/platform/config.ts';
import type { Database } from '../src/platform/db/database.ts';
import { createPool, type Pool } from '../src/platform/db/pool.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The project's Node 24 (the system node may be older). */
export const NODE = path.join(ROOT, 'node_modules', '.bin', 'node');

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Clean-up stack: every benchmark registers what it started; it is undone in reverse order.

type Cleanup = { label: string; fn: () => Promise<void> | void };
const cleanups: Cleanup[] = [];

export function defer(label: string, fn: () => Promise<void> | void): void {
  cleanups.push({ label, fn });
}

let cleaning: Promise<void> | undefined;

/** Runs (once at a time) every registered clean-up step, newest first. */
export function runCleanups(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const step = cleanups.pop()!;
      try {
        await step.fn();
      } catch (err) {
        process.stderr.write(`clean-up "${step.label}" failed: ${(err as Error).message}\n`);
      }
    }
  })().finally(() => {
    cleaning = undefined;
  });
  return cleaning;
}

let interrupted = false;
export const wasInterrupted = (): boolean => interrupted;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\n${signal}: cleaning up (send it again to exit at once)\n`);
    runCleanups().finally(() => process.exit(130));
  });
}
// An error nobody handles (e.g. a pooled connection cut while stopping) must not skip the clean-up.
process.on('uncaughtException', (err) => {
  process.stderr.write(`uncaught: ${(err as Error).stack ?? err}\n`);
  runCleanups().finally(() => process.exit(1));
});

// ---------------------------------------------------------------------------------------------

/** A fresh temporary directory, removed on clean-up. World-readable: the embedded PostgreSQL runs as `postgres` when we are root. */
export async function tempDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `relaydesk-bench-${label}-`));
  await chmod(dir, 0o755);
  defer(`remove ${dir}`, async () => {
    await stopLeftoverPostgres(dir);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/**
 * If a PostgreSQL of ours is still running in `<dataDir>/pg` (its owner was killed), shut it down:
 * a fast shutdown by signal to the postmaster recorded in postmaster.pid.
 */
export async function stopLeftoverPostgres(dataDir: string): Promise<void> {
  let pid: number;
  try {
    pid = Number((await readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8')).split('\n')[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.includes('postgres') || !cmdline.includes(dataDir)) return;
  process.stderr.write(`stopping the leftover PostgreSQL ${pid} of ${dataDir}\n`);
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 200 && isAlive(pid); i++) await sleep(50);
  if (isAlive(pid)) process.kill(pid, 'SIGQUIT');
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * The Config a benchmark runs with: DATABASE_URL when set (then a secret key is generated if none is
 * configured), otherwise an embedded PostgreSQL in `dataDir`.
 */
export function benchConfig(
  dataDir: string,
  overrides: { port?: number; logLevel?: string; role?: Config['role'] } = {},
): Config {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (env['DATABASE_URL'] && !env['RELAYDESK_SECRET_KEY'])
    env['RELAYDESK_SECRET_KEY'] = randomBytes(32).toString('base64');
  return loadConfig(env, {
    dataDir,
    host: '127.0.0.1',
    port: overrides.port ?? 0,
    logLevel: overrides.logLevel ?? process.env['BENCH_LOG_LEVEL'] ?? 'warn',
    role: overrides.role ?? 'all',
  });
}

export const usingExternalDatabase = (): boolean => Boolean(process.env['DATABASE_URL']?.trim());

/**
 * A small pool as the schema's owner, for a benchmark's own loading and counting across tenants
 * (Relaydesk's pool runs as the application role, which row-level security binds). Ended on clean-up.
 */
export function ownerPool(db: Database): Pool {
  if (!db.ownerUrl)
    throw new Error(
      'benchmarks on DATABASE_URL need DATABASE_MIGRATION_URL too (the owner loads and counts)',
    );
  const pool = createPool({ connectionString: db.ownerUrl, max: 2, applicationName: 'relaydesk-bench' });
  defer('close the owner pool', () => pool.end());
  return pool;
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc (Linux).

const CLOCK_TICKS = 100;

/** CPU seconds the whole machine has spent busy (all cores; /proc/stat minus idle and iowait). */
export async function machineBusySeconds(): Promise<number> {
  const first = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const ticks = first.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return (total - idle) / CLOCK_TICKS;
}

/** CPU seconds used so far by each process of the tree under `rootPid` (Linux /proc). */
export async function treeCpu(rootPid: number): Promise<Map<number, number>> {
  const entries = await readdir('/proc').catch(() => [] as string[]);
  const stats = new Map<number, { cpu: number; ppid: number }>();
  await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e))
      .map(async (e) => {
        try {
          const stat = await readFile(`/proc/${e}/stat`, 'utf8');
          // After "(comm) ": state, ppid, ... utime and stime are fields 14 and 15 of the whole line,
          // cutime and cstime (children that ended and were waited for) 16 and 17. The latter count:
          // Chromium's renderers and PostgreSQL's backends end during a measurement, and without
          // them their CPU would be lost from the tree (and counted as another program's).
          const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
          stats.set(Number(e), { ppid: Number(f[1]), cpu: ticks / CLOCK_TICKS });
        } catch {
          // gone meanwhile
        }
      }),
  );
  const tree = new Map<number, number>();
  if (stats.has(rootPid)) tree.set(rootPid, stats.get(rootPid)!.cpu);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, s] of stats) {
      if (!tree.has(pid) && tree.has(s.ppid)) {
        tree.set(pid, s.cpu);
        grew = true;
      }
    }
  }
  return tree;
}

/** CPU seconds a process tree used between two treeCpu() snapshots (processes that exited meanwhile are not counted). */
export function treeCpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, cpu] of after) total += Math.max(0, cpu - (before.get(pid) ?? 0));
  return total;
}

/** The postmaster pid of the embedded PostgreSQL in `dataDir`, if any. */
export async function postmasterPid(dataDir: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8')).split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Waits until the rest of the machine is quiet: other work on a 2-core machine (a test run, a
 * compiler) would depress every figure. Our own process and our PostgreSQL (`pgPid`) do not count.
 * Gives up after BENCH_QUIET_WAIT seconds (default 30; at most `limitSeconds`) and measures anyway, with a warning.
 */
export async function waitForQuietMachine(
  pgPid?: number,
  limitSeconds = Number.POSITIVE_INFINITY,
): Promise<number> {
  const threshold = 0.3;
  const maxSeconds = Math.max(0, Math.min(Number(process.env['BENCH_QUIET_WAIT'] ?? 30), limitSeconds));
  const deadline = Date.now() + maxSeconds * 1000;
  let warned = false;
  for (;;) {
    const before = await machineBusySeconds();
    const own = process.cpuUsage();
    const pgBefore = pgPid ? await treeCpu(pgPid) : undefined;
    await sleep(1000);
    const ownUsage = process.cpuUsage(own);
    const pg = pgPid && pgBefore ? treeCpuDelta(pgBefore, await treeCpu(pgPid)) : 0;
    const busy = (await machineBusySeconds()) - before - (ownUsage.user + ownUsage.system) / 1e6 - pg;
    if (busy < threshold) return busy;
    if (Date.now() > deadline) {
      line(
        `  warning: other processes kept ${fmt(busy, 2)} cores busy; measuring anyway (figures will be low)`,
      );
      return busy;
    }
    if (!warned) {
      line(
        `  other processes are using ${fmt(busy, 2)} cores; waiting up to ${fmt(maxSeconds)} s for a quiet machine ...`,
      );
      warned = true;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Output.

export const fmt = (n: number, digits = 0): string =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function heading(text: string): void {
  process.stdout.write(`\n=== ${text} ===\n`);
}

export function line(text = ''): void {
  process.stdout.write(`${text}\n`);
}

export function table(rows: (string | number)[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length)));
  for (const [index, row] of rows.entries()) {
    line(
      row
        .map((cell, i) =>
          typeof cell === 'number' || i > 0
            ? String(cell).padStart(widths[i]!)
            : String(cell).padEnd(widths[i]!),
        )
        .join('  '),
    );
    if (index === 0) line(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}

/** The one machine-readable line of a benchmark. */
export function printJson(result: Record<string, unknown>): void {
  line(JSON.stringify(result));
}

export const verdict = (met: boolean): string => (met ? 'MET' : 'MISSED');

/** Runs `bench/<script>` with one JSON argument in its own process; resolves with the JSON of its last line. */
export function runJsonChild(script: string, spec: object): Promise<any> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [path.join(ROOT, 'bench', script), JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').at(-1)!))
        : reject(new Error(`${script} exited with ${code}`)),
    );
  });
}

/**
 * Drives `count` requests made by `one(i, agent, dueAt)`: at `rate` per second on a fixed schedule
 * (open loop: no cap on sockets, so a slow answer does not hold back the next request; `dueAt` is
 * the scheduled instant, epoch ms), or else as fast as `concurrency` workers go (closed loop).
 * Answers the rate achieved and, open loop, the most a request left after its due time.
 */
export async function driveRequests(
  command: { count: number; rate?: number | undefined; concurrency?: number | undefined },
  one: (i: number, agent: http.Agent, dueAt: number) => Promise<void>,
): Promise<{ perSecond: number; maxSendLagMs: number }> {
  if (command.rate) {
    const agent = new http.Agent({ keepAlive: true });
    const inFlight: Promise<void>[] = [];
    const start = performance.now() + 50;
    const epoch = Date.now() - performance.now();
    let maxSendLag = 0;
    let lastSent = start;
    for (let i = 0; i < command.count; i++) {
      const due = start + (i * 1000) / command.rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      lastSent = performance.now();
      maxSendLag = Math.max(maxSendLag, lastSent - due);
      inFlight.push(one(i, agent, Math.round(epoch + due)));
    }
    await Promise.all(inFlight);
    agent.destroy();
    const seconds = (lastSent - start) / 1000;
    return {
      perSecond: seconds > 0 ? (command.count - 1) / seconds : 0,
      maxSendLagMs: Math.round(maxSendLag),
    };
  }
  const concurrency = command.concurrency ?? 16;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < command.count; i = next++) await one(i, agent, Date.now());
    }),
  );
  agent.destroy();
  return { perSecond: command.count / ((performance.now() - started) / 1000), maxSendLagMs: 0 };
}

/** CPU seconds this process has used (user and system). */
export const cpuSeconds = (): number => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};
