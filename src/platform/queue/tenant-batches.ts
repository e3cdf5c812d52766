// A fetched batch of jobs that each name a tenant, run tenant by tenant, side by side: each tenant's
// jobs first together (one function sharing transactions between them), then those it left aside
// one by one. Outbound mail and notifications send their batches this way.
import type { BatchItem, BatchResult } from './registry.ts';

export interface TenantBatch<P extends object> {
  tenantId: string;
  /** The positions in `items` of this tenant's jobs. */
  indexes: number[];
  items: BatchItem<P>[];
  /** What became of each job; `together` fills in those it settled. */
  results: (BatchResult | undefined)[];
  /** The positions `together` leaves to the one-by-one path. */
  alone: number[];
}

export async function runByTenant<P extends { tenantId: string }>(
  items: BatchItem<P>[],
  together: (batch: TenantBatch<P>) => Promise<void>,
  one: (item: BatchItem<P>) => Promise<unknown>,
  options: { aloneSideBySide: boolean },
): Promise<BatchResult[]> {
  const results: (BatchResult | undefined)[] = items.map(() => undefined);
  const byTenant = new Map<string, number[]>();
  items.forEach((it, i) =>
    byTenant.set(it.payload.tenantId, [...(byTenant.get(it.payload.tenantId) ?? []), i]),
  );
  const runAlone = async (i: number): Promise<void> => {
    if (results[i]) return;
    try {
      results[i] = { ok: true, output: await one(items[i]!) };
    } catch (error) {
      results[i] = { ok: false, error };
    }
  };
  await Promise.all(
    [...byTenant].map(async ([tenantId, indexes]) => {
      const alone: number[] = [];
      try {
        await together({ tenantId, indexes, items, results, alone });
      } catch (err) {
        // What the shared path had not settled when it failed fails with it (and is retried).
        for (const i of indexes)
          if (!results[i] && !alone.includes(i)) results[i] = { ok: false, error: err };
      }
      if (options.aloneSideBySide) await Promise.all(alone.map(runAlone));
      else for (const i of alone) await runAlone(i);
    }),
  );
  return results.map((r) => r ?? { ok: false, error: new Error('not run') });
}
