// Prometheus metrics at /metrics: HTTP latency, and on each scrape the queue depth, the age of the
// oldest waiting job and the dead-letter count per queue.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { unauthorized } from '../errors.ts';
import type { JobQueue } from '../queue/queue.ts';

export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly httpErrors: Counter<'code'>;

  constructor(queue?: JobQueue) {
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
    if (queue) {
      let cached: Promise<Awaited<ReturnType<JobQueue['stats']>>> | undefined;
      const stats = () => {
        cached ??= queue.stats().finally(() => setTimeout(() => (cached = undefined), 500));
        return cached;
      };
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
