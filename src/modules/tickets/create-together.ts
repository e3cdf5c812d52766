// Ticket creations through the API, written together. A tenant's ticket numbers come from one
// counter row that stays locked until the creating transaction commits, so concurrent creations of
// one tenant queue on that row; under load that queue (PostgreSQL waking each waiter in turn) cost
// more than the creations themselves. Here, in this process, creations of one tenant that arrive
// while another of that tenant is being written wait for it, and are then written together by one
// statement in one transaction (createTicketsForKnownRequesters): the row is locked once for all
// of them. A creation that finds nothing in flight is written at once, so a quiet tenant waits for
// nobody. Each creation still stands alone: one refused (an unknown requester id, an assignee who
// is not an agent) does not refuse the others, and should the statement itself fail, each is tried
// again on its own (unless the database is out of reach: then the whole group fails at once).
import type { Pool } from '../../platform/db/pool.ts';
import { withTenantAutocommit } from '../../platform/db/tx.ts';
import { isDatabaseUnavailable } from '../../platform/errors.ts';
import {
  type CreateTicketInput,
  createTicketsForKnownRequesters,
  type PreparedTicket,
  prepareTicket,
} from './create.ts';
import type { Ticket } from './model.ts';

/** At most this many creations go into one statement. */
const MAX_TOGETHER = 100;

interface Waiting {
  prepared: PreparedTicket;
  resolve: (ticket: Ticket | undefined) => void;
  reject: (err: unknown) => void;
}

interface TenantQueue {
  writing: boolean;
  waiting: Waiting[];
}

const queues = new WeakMap<Pool, Map<string, TenantQueue>>();

/**
 * Creates the ticket when its requester is a known person or address (undefined for an unknown
 * address: the caller then creates the contact and the ticket in a transaction, createTicket).
 * Resolves once the ticket is committed.
 */
export function createTicketTogether(
  pool: Pool,
  tenantId: string,
  input: CreateTicketInput,
): Promise<Ticket | undefined> {
  let prepared: PreparedTicket;
  try {
    prepared = prepareTicket(input);
  } catch (err) {
    return Promise.reject(err);
  }
  let byTenant = queues.get(pool);
  if (!byTenant) queues.set(pool, (byTenant = new Map()));
  let queue = byTenant.get(tenantId);
  if (!queue) byTenant.set(tenantId, (queue = { writing: false, waiting: [] }));
  const q = queue;
  const tenants = byTenant;
  return new Promise((resolve, reject) => {
    q.waiting.push({ prepared, resolve, reject });
    if (!q.writing) void write(pool, tenantId, q, tenants);
  });
}

async function write(pool: Pool, tenantId: string, queue: TenantQueue, tenants: Map<string, TenantQueue>) {
  queue.writing = true;
  try {
    while (queue.waiting.length > 0) {
      const batch = queue.waiting.splice(0, MAX_TOGETHER);
      try {
        await settle(pool, tenantId, batch);
      } catch (err) {
        // The database out of reach fails every creation of the group at once (each would only
        // wait for it again); a statement that failed is tried again for each creation on its own.
        if (batch.length === 1 || isDatabaseUnavailable(err)) {
          for (const one of batch) one.reject(err);
          continue;
        }
        for (const one of batch) await settle(pool, tenantId, [one]).catch((e: unknown) => one.reject(e));
      }
    }
  } finally {
    queue.writing = false;
    if (queue.waiting.length === 0) tenants.delete(tenantId);
  }
}

async function settle(pool: Pool, tenantId: string, batch: Waiting[]): Promise<void> {
  const results = await withTenantAutocommit(pool, tenantId, (tx) =>
    createTicketsForKnownRequesters(
      tx,
      batch.map((w) => w.prepared),
    ),
  );
  batch.forEach((w, i) => {
    const r = results[i]!;
    if ('error' in r) w.reject(r.error);
    else w.resolve(r.ticket);
  });
}
