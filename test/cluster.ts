// The multi-process layout as an operator runs it: several `relaydesk start --role api|worker|
// scheduler` processes on one database. Start, kill and restart them by role; each knows its PID, its
// port (api) and its output. The database URLs are parameters (per cluster, and per process when
// given), so the same launcher runs the processes directly on PostgreSQL or behind a pooler with
// LISTEN and session locks on a direct connection (DATABASE_DIRECT_URL).
//
// Used by the chaos run (scripts/chaos/) and by tests that need more than one process per role.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './relaydesk-process.ts';

export const RELAYDESK_BIN = path.resolve('bin/relaydesk.mjs');

export type ClusterRole = 'api' | 'worker' | 'scheduler' | 'all';

export interface ClusterOptions {
  /** DATABASE_URL of every process (the application role), unless a process is given its own. */
  databaseUrl: string;
  /** DATABASE_DIRECT_URL of every process (LISTEN, session locks past a pooler), unless given per process. */
  directDatabaseUrl?: string | undefined;
  /** RELAYDESK_SECRET_KEY (base64, 32 bytes), the same for every process: they open each other's credentials. */
  secretKey: string;
  /** More environment for every process (RELAYDESK_PUBLIC_URL, provider origins, timings, ...). */
  env?: NodeJS.ProcessEnv;
  /** Where the processes' data directories and logs go (a new temporary directory by default). */
  root?: string;
  /** How long a start may take to be ready (ms). */
  readyTimeoutMs?: number;
}

export interface ProcessOptions {
  databaseUrl?: string;
  directDatabaseUrl?: string;
  env?: NodeJS.ProcessEnv;
}

/** How much of each process's output is kept in memory (all of it goes to its log file). */
const OUTPUT_TAIL = 64 * 1024;

const exitOf = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()),
  );

/** One slot of the layout (`api-1`, `worker-2`, ...): the same port and data directory across restarts. */
export class ClusterProcess {
  readonly name: string;
  readonly role: ClusterRole;
  /** The HTTP port of a serving role (api, all), kept across restarts. */
  readonly port: number | undefined;
  readonly dataDir: string;
  readonly logFile: string;
  child: ChildProcess | undefined;
  /** Starts so far (1 after the first). */
  generation = 0;
  /** The tail of the current run's output. */
  output = '';
  /** True from ready until the process exits or is killed. */
  ready = false;
  private readonly options: ProcessOptions;
  private readonly cluster: Cluster;
  private log: WriteStream | undefined;

  constructor(
    cluster: Cluster,
    name: string,
    role: ClusterRole,
    port: number | undefined,
    options: ProcessOptions,
  ) {
    this.cluster = cluster;
    this.name = name;
    this.role = role;
    this.port = port;
    this.options = options;
    this.dataDir = path.join(cluster.root, name);
    this.logFile = path.join(cluster.root, `${name}.log`);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** http://127.0.0.1:<port> of a serving role. */
  get url(): string | undefined {
    return this.port === undefined ? undefined : `http://127.0.0.1:${this.port}`;
  }

  /** Spawns the process (not waiting for it to be ready). */
  spawn(): ChildProcess {
    if (this.running) throw new Error(`${this.name} is running already (pid ${this.pid})`);
    const o = this.cluster.options;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      LOG_LEVEL: 'warn',
      ...o.env,
      ...this.options.env,
      DATABASE_URL: this.options.databaseUrl ?? o.databaseUrl,
      RELAYDESK_SECRET_KEY: o.secretKey,
      RELAYDESK_DATA_DIR: this.dataDir,
    };
    delete env['DATABASE_MIGRATION_URL']; // the layout runs migrated; no process migrates on its own
    const direct = this.options.directDatabaseUrl ?? o.directDatabaseUrl;
    if (direct) env['DATABASE_DIRECT_URL'] = direct;
    else delete env['DATABASE_DIRECT_URL'];
    const args = [RELAYDESK_BIN, 'start', '--role', this.role];
    if (this.port !== undefined) args.push('--port', String(this.port), '--host', '127.0.0.1');
    this.output = '';
    this.ready = false;
    this.generation++;
    this.log ??= createWriteStream(this.logFile, { flags: 'a' });
    this.log.write(`\n=== ${new Date().toISOString()} start #${this.generation} ${this.role}\n`);
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const take = (d: Buffer) => {
      this.log?.write(d);
      this.output = (this.output + d.toString()).slice(-OUTPUT_TAIL);
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    child.once('exit', (code, signal) => {
      this.ready = false;
      this.log?.write(`=== ${new Date().toISOString()} exit ${code ?? signal}\n`);
    });
    this.child = child;
    return child;
  }

  /** Resolves once the process is ready (api: /readyz answers 200; others: its start line). */
  async waitReady(timeoutMs = this.cluster.options.readyTimeoutMs ?? 60_000): Promise<void> {
    const child = this.child;
    if (!child) throw new Error(`${this.name} was never started`);
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (child !== this.child || !this.running)
        throw new Error(
          `${this.name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${this.output}`,
        );
      if (this.port === undefined) {
        if (this.output.includes('Relaydesk is running')) {
          this.ready = true;
          return;
        }
      } else {
        const ok = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) {
          this.ready = true;
          return;
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.name} not ready after ${timeoutMs} ms:\n${this.output}`);
  }

  async start(): Promise<void> {
    this.spawn();
    await this.waitReady();
  }

  /** Sends `signal` to the process (by its PID) and waits for it to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.ready = false;
    child.kill(signal);
    await exitOf(child);
  }

  /** SIGKILL (or `signal`) and start again in the same slot; resolves when ready. */
  async restart(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.kill(signal);
    await this.start();
  }

  /** SIGTERM, and SIGKILL after `graceMs` if it is still there. */
  async stop(graceMs = 15_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.ready = false;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exitOf(child);
    clearTimeout(timer);
  }

  closeLog(): Promise<void> {
    const log = this.log;
    this.log = undefined;
    return new Promise((resolve) => (log ? log.end(() => resolve()) : resolve()));
  }
}

export class Cluster {
  readonly options: ClusterOptions;
  readonly root: string;
  private readonly slots: ClusterProcess[] = [];
  private readonly counts = new Map<ClusterRole, number>();
  private readonly ownsRoot: boolean;

  private constructor(options: ClusterOptions, root: string, ownsRoot: boolean) {
    this.options = options;
    this.root = root;
    this.ownsRoot = ownsRoot;
  }

  static async create(options: ClusterOptions): Promise<Cluster> {
    const root = options.root ?? (await mkdtemp(path.join(os.tmpdir(), 'relaydesk-cluster-')));
    await mkdir(root, { recursive: true });
    return new Cluster(options, root, options.root === undefined);
  }

  /** Adds a process of `role` (named `<role>-<n>`) and starts it; resolves when it is ready. */
  async add(role: ClusterRole, options: ProcessOptions = {}): Promise<ClusterProcess> {
    // The slot's number is taken before anything is awaited: processes added together get their own.
    const n = (this.counts.get(role) ?? 0) + 1;
    this.counts.set(role, n);
    const port = role === 'api' || role === 'all' ? await freePort() : undefined;
    const proc = new ClusterProcess(this, `${role}-${n}`, role, port, options);
    await mkdir(proc.dataDir, { recursive: true });
    this.slots.push(proc);
    await proc.start();
    return proc;
  }

  /** Starts a layout, e.g. {api: 2, worker: 2, scheduler: 1}; the processes of a role start together. */
  async startLayout(layout: Partial<Record<ClusterRole, number>>): Promise<ClusterProcess[]> {
    const started: ClusterProcess[] = [];
    for (const role of ['scheduler', 'worker', 'api', 'all'] as const) {
      const count = layout[role] ?? 0;
      // Added one after another (the slot numbers), readied together.
      const batch: Promise<ClusterProcess>[] = [];
      for (let i = 0; i < count; i++) batch.push(this.add(role));
      started.push(...(await Promise.all(batch)));
    }
    return started;
  }

  processes(role?: ClusterRole): ClusterProcess[] {
    return this.slots.filter((p) => role === undefined || p.role === role);
  }

  byName(name: string): ClusterProcess {
    const p = this.slots.find((s) => s.name === name);
    if (!p) throw new Error(`no process ${name}`);
    return p;
  }

  /** The serving processes that are ready now. */
  readyApis(): ClusterProcess[] {
    return this.slots.filter((p) => p.port !== undefined && p.ready);
  }

  /** The PIDs of every process that runs now. */
  pids(): number[] {
    return this.slots.filter((p) => p.running).map((p) => p.pid!);
  }

  /** Stops every process (SIGTERM, then SIGKILL after `graceMs`), closes the logs; removes the root if it made it and `remove`. */
  async stopAll(options: { graceMs?: number; remove?: boolean } = {}): Promise<void> {
    await Promise.all(this.slots.map((p) => p.stop(options.graceMs)));
    await Promise.all(this.slots.map((p) => p.closeLog()));
    if (options.remove && this.ownsRoot) await rm(this.root, { recursive: true, force: true });
  }

  /** Synchronous last resort (process exit handlers): SIGKILL whatever still runs, by PID. */
  killAllNow(): void {
    for (const p of this.slots) if (p.running) p.child!.kill('SIGKILL');
  }
}
