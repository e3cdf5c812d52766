// What the feeders send and what they get back. Every request goes to one ready api process (as a
// load balancer would pick one) and its outcome is counted per feeder and phase: an HTTP status, or
// `killed` (the connection failed because the chaos run had just killed that process: a provider
// retries such a request), or a failure the run reports: a connection reset or refused that no kill
// explains, or no answer within the timeout. The phase is `db-down` for a request that was in flight
// at any moment while PostgreSQL was stopped.
import type { Cluster, ClusterProcess } from '../../test/cluster.ts';

export type Outcome =
  | { kind: 'answer'; status: number; text: string; body: any }
  | { kind: 'killed' }
  | { kind: 'reset'; error: string }
  | { kind: 'timeout' };

export interface CallOptions {
  token?: string;
  body?: unknown;
  /** A raw body with its content type (instead of JSON). */
  raw?: { contentType: string; bytes: Buffer };
  timeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Traffic {
  private readonly cluster: Cluster;
  /** feeder -> phase -> outcome label -> count */
  readonly counts = new Map<string, Map<string, Map<string, number>>>();
  readonly failures: string[] = [];
  private failureCount = 0;
  /** When the run last killed each process (ms), to tell its resets from unexplained ones. */
  private readonly killedAt = new Map<string, number>();
  private dbDown = false;
  /** Bumped when PostgreSQL stops and when it is back: a request that saw it change was in flight meanwhile. */
  private dbEpoch = 0;

  constructor(cluster: Cluster) {
    this.cluster = cluster;
  }

  noteKill(proc: ClusterProcess): void {
    this.killedAt.set(proc.name, Date.now());
  }

  setDatabaseDown(down: boolean): void {
    this.dbDown = down;
    this.dbEpoch++;
  }

  get databaseDown(): boolean {
    return this.dbDown;
  }

  private count(feeder: string, phase: string, label: string): void {
    const byPhase = this.counts.get(feeder) ?? new Map<string, Map<string, number>>();
    this.counts.set(feeder, byPhase);
    const byLabel = byPhase.get(phase) ?? new Map<string, number>();
    byPhase.set(phase, byLabel);
    byLabel.set(label, (byLabel.get(label) ?? 0) + 1);
  }

  fail(what: string): void {
    this.failureCount++;
    if (this.failures.length < 30) this.failures.push(what);
  }

  get failed(): number {
    return this.failureCount;
  }

  /** A ready api process, waiting for one when none is (every one killed at once, or starting). */
  async pickApi(): Promise<ClusterProcess> {
    for (;;) {
      const ready = this.cluster.readyApis();
      if (ready.length > 0) return ready[Math.floor(Math.random() * ready.length)]!;
      await sleep(100);
    }
  }

  async call(feeder: string, method: string, path: string, options: CallOptions = {}): Promise<Outcome> {
    const proc = await this.pickApi();
    const generation = proc.generation;
    const epoch = this.dbEpoch;
    const downAtStart = this.dbDown;
    const started = Date.now();
    const headers: Record<string, string> = {};
    if (options.token) headers['authorization'] = `Bearer ${options.token}`;
    let body: string | Uint8Array | undefined;
    if (options.raw) {
      headers['content-type'] = options.raw.contentType;
      body = new Uint8Array(options.raw.bytes);
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let outcome: Outcome;
    try {
      const res = await fetch(`${proc.url}${path}`, {
        method,
        headers,
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
      });
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined;
      }
      outcome = { kind: 'answer', status: res.status, text, body: parsed };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      if (e.name === 'TimeoutError') outcome = { kind: 'timeout' };
      else {
        // Give the kill a moment to be noted: the connection may fail a hair before we mark it.
        await sleep(300);
        const killed = proc.generation !== generation || (this.killedAt.get(proc.name) ?? 0) >= started - 100;
        outcome = killed
          ? { kind: 'killed' }
          : { kind: 'reset', error: `${e.cause?.code ?? ''} ${e.cause?.message ?? e.message}`.trim() };
      }
    }
    const phase = downAtStart || this.dbDown || epoch !== this.dbEpoch ? 'db-down' : 'normal';
    const label = outcome.kind === 'answer' ? String(outcome.status) : outcome.kind;
    this.count(feeder, phase, label);
    if (outcome.kind === 'reset' || outcome.kind === 'timeout')
      this.fail(
        `${feeder} ${method} ${path} on ${proc.name}: ${label}${outcome.kind === 'reset' ? ` (${outcome.error})` : ''}`,
      );
    else if (outcome.kind === 'answer' && outcome.status >= 500 && outcome.status !== 503)
      this.fail(
        `${feeder} ${method} ${path} on ${proc.name}: ${outcome.status} ${outcome.text.slice(0, 200)}`,
      );
    else if (
      outcome.kind === 'answer' &&
      phase === 'db-down' &&
      outcome.status >= 400 &&
      outcome.status !== 503
    )
      this.fail(
        `${feeder} ${method} ${path} on ${proc.name} while the database was down: ${outcome.status} ${outcome.text.slice(0, 200)}`,
      );
    return outcome;
  }

  /** Answers by status during the database stop, all feeders together: {"503": n, ...}. */
  phaseTotals(phase: string): Map<string, number> {
    const totals = new Map<string, number>();
    for (const byPhase of this.counts.values())
      for (const [label, n] of byPhase.get(phase) ?? []) totals.set(label, (totals.get(label) ?? 0) + n);
    return totals;
  }
}
