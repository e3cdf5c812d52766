// /metrics and the API docs for installs bound beyond loopback: a bearer token in front of the
// metrics, and docs that can be switched off. The server is built in-process; none of these routes
// touches the database.
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../clock.ts';
import { createPool } from '../db/pool.ts';
import { unauthorized } from '../errors.ts';
import { createLogger } from '../logging.ts';
import { buildServer } from './server.ts';

const pool = createPool({ connectionString: 'postgres://nobody@127.0.0.1:1/none', max: 1 });
afterAll(() => pool.end());

const server = (config: { metricsToken?: string; docs?: boolean }) =>
  buildServer(
    {
      config: { bodyLimit: 1024 * 1024, ...config },
      pool,
      logger: createLogger('silent'),
      clock: systemClock,
      authenticate: async () => {
        throw unauthorized();
      },
    },
    [],
  );

describe('/metrics with RELAYDESK_METRICS_TOKEN', () => {
  it('answers 401 problem+json without the token or with another, and the metrics with it', async () => {
    const app = await server({ metricsToken: 'scrape-secret' });
    try {
      const none = await app.inject({ method: 'GET', url: '/metrics' });
      expect(none.statusCode).toBe(401);
      expect(none.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(none.json()).toMatchObject({ status: 401, code: 'unauthorized' });
      const wrong = await app.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: 'Bearer scrape-secret-not' },
      });
      expect(wrong.statusCode).toBe(401);
      const right = await app.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: 'Bearer scrape-secret' },
      });
      expect(right.statusCode).toBe(200);
      expect(right.body).toContain('relaydesk_http_request_duration_seconds');
    } finally {
      await app.close();
    }
  });

  it('stays open without a token configured', async () => {
    const app = await server({});
    try {
      expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});

describe('the API docs', () => {
  it('are served when on', async () => {
    const app = await server({ docs: true });
    try {
      expect((await app.inject({ method: 'GET', url: '/docs/json' })).statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/docs' })).statusCode).toBeLessThan(400);
    } finally {
      await app.close();
    }
  });

  it('are not there when off: /docs and /docs/json are 404', async () => {
    const app = await server({ docs: false });
    try {
      for (const url of ['/docs', '/docs/json']) {
        const res = await app.inject({ method: 'GET', url });
        expect(res.statusCode, url).toBe(404);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      }
      // Everything else is unchanged.
      expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});
