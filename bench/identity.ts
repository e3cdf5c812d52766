// Identity benchmark: `npm run bench -- identity`.
// 100,000 people with 300,000 identities (a primary address, a Slack id and a GitHub login each) in
// one tenant, then (1) GET /api/v1/people/resolve?email= under 50 connections from a separate
// process, and (2) recordUnmapped sightings per second with 50 in flight.
import { startRelaydesk } from '../src/app.ts';
import { createLogger } from '../src/platform/logging.ts';
import { recordUnmapped } from '../src/modules/people/unmapped.ts';
import {
  benchConfig,
  defer,
  fmt,
  freePort,
  heading,
  line,
  table,
  tempDir,
  verdict,
  runJsonChild,
  ownerPool,
} from './lib.ts';

const PEOPLE = 100_000;

const runLoad = (spec: object) => runJsonChild('identity-load.ts', spec);

export async function benchIdentity(): Promise<Record<string, unknown>> {
  heading('identity: resolve by email with 100,000 people / 300,000 identities; recordUnmapped');
  const dataDir = await tempDir('identity');
  const port = await freePort();
  const config = benchConfig(dataDir, { port });
  const running = await startRelaydesk({ config, logger: createLogger(config.logLevel) });
  defer('stop relaydesk', () => running.stop());
  const tenantId = running.bootstrap!.tenant.id;
  const token = running.bootstrap!.adminToken.token;
  const pool = running.db.pool;
  const owner = ownerPool(running.db);

  const loadStarted = Date.now();
  await owner.query(
    `INSERT INTO people (tenant_id, id, display_name, kind)
     SELECT $1, gen_random_uuid(), 'Person ' || n, 'contact' FROM generate_series(0, $2 - 1) AS n`,
    [tenantId, PEOPLE],
  );
  await owner.query(
    `WITH numbered AS (
       SELECT id, (row_number() OVER (ORDER BY display_name) - 1) AS n FROM people WHERE tenant_id = $1 AND display_name LIKE 'Person %')
     , e AS (INSERT INTO person_emails (tenant_id, address_normalized, address, person_id, is_primary)
             SELECT $1, 'person-' || substr(p.display_name, 8) || '@bench.example', 'person-' || substr(p.display_name, 8) || '@bench.example', p.id, true
               FROM people p WHERE p.tenant_id = $1 AND p.display_name LIKE 'Person %')
     INSERT INTO person_identities (tenant_id, kind, external_id, person_id)
     SELECT $1, k.kind, k.kind || '-' || substr(p.display_name, 8), p.id
       FROM people p CROSS JOIN (VALUES ('slack'), ('github')) AS k(kind)
      WHERE p.tenant_id = $1 AND p.display_name LIKE 'Person %'`,
    [tenantId],
  );
  await owner.query('ANALYZE people; ANALYZE person_emails; ANALYZE person_identities');
  const counts = (
    await owner.query(
      `SELECT (SELECT count(*) FROM people WHERE tenant_id = $1)::int AS people,
              (SELECT count(*) FROM person_emails WHERE tenant_id = $1)::int AS emails,
              (SELECT count(*) FROM person_identities WHERE tenant_id = $1)::int AS identities`,
      [tenantId],
    )
  ).rows[0];
  line(
    `loaded ${counts.people} people, ${counts.emails} addresses and ${counts.identities} external identities in ${fmt((Date.now() - loadStarted) / 1000, 1)} s`,
  );

  const url = `http://127.0.0.1:${port}`;
  await runLoad({ url, token, people: PEOPLE, connections: 50, duration: 3 }); // warm-up
  const resolve = await runLoad({ url, token, people: PEOPLE, connections: 50, duration: 10 });

  // recordUnmapped: 50,000 sightings of 5,000 identities, 50 in flight, each its own transaction.
  const total = 50_000;
  let next = 0;
  let failures = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        const ok = await recordUnmapped(pool, tenantId, {
          kind: 'teams',
          externalId: `29:unknown-${i % 5000}`,
          eventType: 'message',
          context: `sighting ${i}`,
        });
        if (!ok) failures++;
      }
    }),
  );
  const unmappedSeconds = (Date.now() - started) / 1000;
  const sightingsPerSecond = total / unmappedSeconds;
  const rows = (
    await owner.query(
      'SELECT count(*)::int AS n, sum(sightings)::int AS s FROM unmapped_identities WHERE tenant_id = $1',
      [tenantId],
    )
  ).rows[0];

  const resolveMet = resolve.requestsPerSecond >= 3000 && resolve.latencyMs.p99 <= 30 && resolve.non2xx === 0;
  table([
    ['measure', 'result', 'target', ''],
    [
      'resolve?email= req/s (50 conns)',
      fmt(resolve.requestsPerSecond),
      '≥ 3,000',
      verdict(resolve.requestsPerSecond >= 3000),
    ],
    [
      'resolve p50 / p99 ms',
      `${resolve.latencyMs.p50} / ${resolve.latencyMs.p99}`,
      'p99 ≤ 30',
      verdict(resolve.latencyMs.p99 <= 30),
    ],
    ['resolve non-200 answers', resolve.non2xx, '0', verdict(resolve.non2xx === 0)],
    [
      'recordUnmapped sightings/s (50 in flight)',
      fmt(sightingsPerSecond),
      '≥ 5,000',
      verdict(sightingsPerSecond >= 5000),
    ],
    [
      'unmapped rows / sightings counted',
      `${rows.n} / ${rows.s}`,
      `5000 / ${total}`,
      verdict(rows.n === 5000 && rows.s === total && failures === 0),
    ],
  ]);
  return {
    benchmark: 'identity',
    people: counts.people,
    identities: counts.emails + counts.identities,
    resolve: {
      requestsPerSecond: Math.round(resolve.requestsPerSecond),
      p50Ms: resolve.latencyMs.p50,
      p99Ms: resolve.latencyMs.p99,
      non2xx: resolve.non2xx,
      met: resolveMet,
    },
    recordUnmapped: {
      sightingsPerSecond: Math.round(sightingsPerSecond),
      rows: rows.n,
      sightings: rows.s,
      failures,
      met: sightingsPerSecond >= 5000,
    },
  };
}
