// Prometheus metrics at /metrics: HTTP latency, and on each scrape the queue depth, the age of the
// oldest waiting job and the dead-letter count per queue, and mailbox health across tenants.
//
// Mailbox figures are gauges read from the database on each scrape, not counters kept in memory:
// renewals run in whichever worker or request claimed the mailbox, so a process's own count would
// be a fraction that resets on restart. The rows hold the truth for every process at once.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { unauthorized } from '../errors.ts';
import type { JobQueue } from '../queue/queue.ts';

/**
 * Mailbox health summed across tenants, as the inbound module reads it (`mailboxHealthTotals`);
 * described here so that the platform needs no import from a module.
 */
export interface MailboxHealthReading {
  byStatus: Record<string, number>;
  earliestExpiry: Date | null;
  lastRenewal: { provider: string; result: string; mailboxes: number }[];
  failures: { provider: string; reason: string; failures: number }[];
  recoveredByLastReconcile: number;
}

export interface MetricsOptions {
  /** Reads mailbox health for the mailbox gauges (none without it). */
  mailboxHealth?: () => Promise<MailboxHealthReading>;
}

/** One read shared by every gauge of a scrape (each gauge's collect would otherwise read again). */
function sharedRead<T>(read: () => Promise<T>): () => Promise<T> {
  let cached: Promise<T> | undefined;
  return () => {
    cached ??= read().finally(() => setTimeout(() => (cached = undefined), 500));
    return cached;
  };
}

export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly httpErrors: Counter<'code'>;

  constructor(queue?: JobQueue, options: MetricsOptions = {}) {
    collectDefaultMetrics({ register: this.registry, prefix: 'relaydesk_' });
    this.httpDuration = new Histogram({
      name: 'relaydesk_http_request_duration_seconds',
      help: 'HTTP request latency by method, route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    this.httpErrors = new Counter({
      name: 'relaydesk_http_problems_total',
      help: 'Problem responses by code',
      labelNames: ['code'],
      registers: [this.registry],
    });
    if (options.mailboxHealth) this.mailboxGauges(sharedRead(options.mailboxHealth));
    if (queue) {
      const stats = sharedRead(() => queue.stats());
      const gauge = (
        name: string,
        help: string,
        pick: (s: Awaited<ReturnType<JobQueue['stats']>>[number]) => number,
      ) =>
        new Gauge({
          name,
          help,
          labelNames: ['queue'],
          registers: [this.registry],
          async collect() {
            try {
              for (const s of await stats()) this.set({ queue: s.queue }, pick(s));
            } catch {
              // database unavailable: leave the last values; /readyz reports the outage
            }
          },
        });
      gauge('relaydesk_queue_ready_jobs', 'Jobs waiting to run now', (s) => s.ready);
      gauge(
        'relaydesk_queue_deferred_jobs',
        'Jobs waiting for a later start (retry back-off)',
        (s) => s.deferred,
      );
      gauge('relaydesk_queue_active_jobs', 'Jobs being processed', (s) => s.active);
      gauge(
        'relaydesk_queue_oldest_job_age_seconds',
        'Age of the oldest job waiting to run',
        (s) => s.oldestAgeSeconds,
      );
      gauge('relaydesk_queue_dead_letter_jobs', 'Jobs in the dead-letter queue', (s) => s.deadLettered);
    }
  }

  private mailboxGauges(read: () => Promise<MailboxHealthReading>): void {
    const gauge = <L extends string>(
      name: string,
      help: string,
      labelNames: L[],
      fill: (g: Gauge<L>, h: MailboxHealthReading) => void,
    ) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers: [this.registry],
        async collect() {
          let h: MailboxHealthReading;
          try {
            h = await read();
          } catch {
            return; // database unavailable: leave the last values; /readyz reports the outage
          }
          // A label set that no mailbox has any more disappears rather than keeping its last value.
          this.reset();
          fill(this, h);
        },
      });
    gauge(
      'relaydesk_mailboxes',
      'Mailboxes by health status, across tenants (healthy, renewing, degraded, error, needs_reauth, disabled)',
      ['status'],
      (g, h) => {
        for (const [status, n] of Object.entries(h.byStatus)) g.set({ status }, n);
      },
    );
    gauge(
      'relaydesk_mailbox_subscription_expiry_seconds',
      'Seconds until the earliest Graph subscription or Gmail watch expires (negative: already expired; NaN when none exists)',
      [],
      (g, h) => {
        // A gauge without labels always has a sample: NaN, which no threshold alert fires on.
        g.set(h.earliestExpiry ? (h.earliestExpiry.getTime() - Date.now()) / 1000 : Number.NaN);
      },
    );
    gauge(
      'relaydesk_mailbox_last_renewal',
      'Graph and Gmail mailboxes by provider and the result of their last renewal (created, renewed, reauthorized, recreated, failed)',
      ['provider', 'result'],
      (g, h) => {
        for (const r of h.lastRenewal) g.set({ provider: r.provider, result: r.result }, r.mailboxes);
      },
    );
    gauge(
      'relaydesk_mailbox_failures',
      'Consecutive failures summed over the mailboxes of each provider that are failing now, by kind of failure (auth: credentials refused; rate_limited; transient; permanent); absent when none fails',
      ['provider', 'reason'],
      (g, h) => {
        for (const f of h.failures) g.set({ provider: f.provider, reason: f.reason }, f.failures);
      },
    );
    gauge(
      'relaydesk_mailbox_recovered_messages',
      'Messages the last reconciliation of each mailbox found that no notification had brought, summed over mailboxes',
      [],
      (g, h) => g.set(h.recoveredByLastReconcile),
    );
  }
}

/**
 * The check in front of /metrics when RELAYDESK_METRICS_TOKEN is set: `Authorization: Bearer
 * <token>`, compared in constant time (digests of equal length, whatever was sent).
 */
export function metricsTokenCheck(expected: string): (request: FastifyRequest) => Promise<void> {
  const want = createHash('sha256').update(expected).digest();
  return async (request) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    const got = createHash('sha256')
      .update(match?.[1] ?? '')
      .digest();
    if (!match || !timingSafeEqual(got, want)) {
      throw unauthorized('/metrics needs Authorization: Bearer <RELAYDESK_METRICS_TOKEN>');
    }
  };
}
