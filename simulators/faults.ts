// Fault injection shared by the provider simulators: answer the next matching requests with a
// status (and Retry-After), or slowly.
export interface Fault {
  /** Applies to requests whose path starts with this (e.g. "/v1.0/users/"). */
  pathPrefix: string;
  method?: string;
  /** Answer with this status (with the provider's error body); omit to only delay. */
  status?: number;
  retryAfter?: number;
  delayMs?: number;
  /** How many requests it applies to (default 1). */
  times?: number;
}

export class Faults {
  private readonly list: (Fault & { left: number })[] = [];

  add(fault: Fault): void {
    this.list.push({ ...fault, left: fault.times ?? 1 });
  }

  /** Consumes the first fault matching the request (after its delay); returns it when it sets a status. */
  async take(method: string | undefined, path: string): Promise<(Fault & { status: number }) | undefined> {
    const fault = this.list.find(
      (f) => f.left > 0 && path.startsWith(f.pathPrefix) && (!f.method || f.method === method),
    );
    if (!fault) return undefined;
    fault.left--;
    if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    return fault.status ? (fault as Fault & { status: number }) : undefined;
  }
}
