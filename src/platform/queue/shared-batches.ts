// A fetched batch of jobs run together first (one function sharing its statements between them,
// across the tenants the jobs name), then those it left aside one by one. Outbound mail and
// notifications send their batches this way.
import type { BatchItem, BatchResult } from './registry.ts';

export interface SharedBatch<P extends object> {
  items: BatchItem<P>[];
  /** What became of each job; `together` fills in those it settled. */
  results: (BatchResult | undefined)[];
  /** The positions in `items` that `together` leaves to the one-by-one path. */
  alone: number[];
}

export async function runSharedBatch<P extends object>(
  items: BatchItem<P>[],
  together: (batch: SharedBatch<P>) => Promise<void>,
  one: (item: BatchItem<P>) => Promise<unknown>,
  options: { aloneSideBySide: boolean },
): Promise<BatchResult[]> {
  const results: (BatchResult | undefined)[] = items.map(() => undefined);
  const alone: number[] = [];
  try {
    await together({ items, results, alone });
  } catch (err) {
    // What the shared path had not settled when it failed fails with it (and is retried).
    items.forEach((_, i) => {
      if (!results[i] && !alone.includes(i)) results[i] = { ok: false, error: err };
    });
  }
  const runAlone = async (i: number): Promise<void> => {
    if (results[i]) return;
    try {
      results[i] = { ok: true, output: await one(items[i]!) };
    } catch (error) {
      results[i] = { ok: false, error };
    }
  };
  if (options.aloneSideBySide) await Promise.all(alone.map(runAlone));
  else for (const i of alone) await runAlone(i);
  return results.map((r) => r ?? { ok: false, error: new Error('not run') });
}
