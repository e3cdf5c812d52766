// The notify module's jobs by name and payload (ids only). Whoever enqueues them imports these;
// jobs.ts defines what runs them.
import { jobRef } from '../../platform/queue/registry.ts';

/** Turns one recorded event into ledger rows by the tenant's rules (and subscriptions). */
export const notifyFanoutJob = jobRef<{ tenantId: string; eventId: string }>('notify.fanout');

/** Sends one queued attempt of the ledger on a notification channel (named with the ledger). */
export { notifyDeliverJob } from '../outbound/job-refs.ts';
