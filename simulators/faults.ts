// Fault injection shared by the provider simulators: answer the next matching requests with a
// status (and Retry-After), or slowly; optionally only some of them, at random but reproducibly
// (a seeded generator). It also keeps the Retry-After promises the simulators made, so a test can
// count the requests that came back too early.
export interface Fault {
  /** Applies to requests whose path starts with this (e.g. "/v1.0/users/"). */
  pathPrefix: string;
  method?: string;
  /** Answer with this status (with the provider's error body); omit to only delay. */
  status?: number;
  retryAfter?: number;
  delayMs?: number;
  /** How many requests it applies to (default 1; Infinity: until cleared). */
  times?: number;
  /** The chance (0..1) that a matching request is hit; a request that is spared does not use up `times`. Default 1. */
  probability?: number;
}

/** A small seeded generator (mulberry32): the same seed gives the same sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Reads a fault sent as JSON to a control route, where Infinity can only be spelled null or "Infinity". */
export function faultFromJson(body: unknown): Fault {
  const f = { ...(body as Record<string, unknown>) };
  if (f['times'] === null || f['times'] === 'Infinity') f['times'] = Infinity;
  if (typeof f['pathPrefix'] !== 'string') throw new Error('a fault needs a pathPrefix');
  return f as unknown as Fault;
}

export class Faults {
  private readonly list: (Fault & { left: number })[] = [];
  private readonly random: () => number;
  /** "METHOD path" -> until when (ms) the simulator asked the client to wait. */
  private readonly backoffUntil = new Map<string, number>();
  private violationCount = 0;

  /** `seed` makes probabilistic faults reproducible; without one they use a random seed. */
  constructor(seed?: number) {
    this.random = seededRandom(seed ?? Math.floor(Math.random() * 2 ** 32));
  }

  add(fault: Fault): void {
    const p = fault.probability;
    if (p !== undefined && !(p >= 0 && p <= 1)) throw new Error('probability must be between 0 and 1');
    this.list.push({ ...fault, left: fault.times ?? 1 });
  }

  /** Forgets every fault. Retry-After already given still holds: a client coming back early is still counted. */
  clear(): void {
    this.list.length = 0;
  }

  /** Consumes the first fault matching the request (after its delay); returns it when it sets a status. */
  async take(method: string | undefined, path: string): Promise<(Fault & { status: number }) | undefined> {
    const fault = this.list.find(
      (f) => f.left > 0 && path.startsWith(f.pathPrefix) && (!f.method || f.method === method),
    );
    if (!fault) return undefined;
    if (fault.probability !== undefined && fault.probability < 1 && this.random() >= fault.probability)
      return undefined;
    fault.left--;
    if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    return fault.status ? (fault as Fault & { status: number }) : undefined;
  }

  /** Notes that `method path` was answered with Retry-After: the client should not come back before `untilMs`. */
  noteRetryAfter(method: string | undefined, path: string, untilMs: number): void {
    const key = `${method ?? 'GET'} ${path}`;
    this.backoffUntil.set(key, Math.max(untilMs, this.backoffUntil.get(key) ?? 0));
  }

  /** Called for every request: counts it when it came earlier than a Retry-After allowed. */
  observe(method: string | undefined, path: string, nowMs: number): void {
    const until = this.backoffUntil.get(`${method ?? 'GET'} ${path}`);
    if (until !== undefined && nowMs < until) this.violationCount++;
  }

  /** Requests that arrived before the Retry-After given for the same method and path had passed. */
  retryAfterViolations(): number {
    return this.violationCount;
  }
}
