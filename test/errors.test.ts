// Errors as a client sees them: problem+json whose code is always one of the catalogue's, field
// paths as JSON pointers, unknown fields named, allowed values listed, 405 with Allow, and no
// server internals (paths, driver messages) in any answer.
import net from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { HOOK_ROUTES, ROUTES } from '../src/app.ts';
import { tokenAuthenticator } from '../src/modules/tokens/service.ts';
import { createPool } from '../src/platform/db/pool.ts';
import { ERROR_CODES } from '../src/platform/errors.ts';
import { buildServer } from '../src/platform/http/server.ts';
import { createLogger } from '../src/platform/logging.ts';
import { type TestApp, useTestApp } from './app.ts';

let t: TestApp;
let token: string;

beforeAll(async () => {
  t = await useTestApp();
  token = t.a.adminToken.token;
});

describe('validation errors', () => {
  it('name unknown fields, list allowed values and point at each field', async () => {
    const res = await t.call(token, 'POST', '/api/v1/tickets', {
      subject: 'x',
      requester: { email: 'ann@example.com', extra: 1 },
      zzz: true,
    });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    // Of the requester's two forms, the errors of the one it came closest to (by email).
    expect(res.body.errors).toEqual([
      { path: '/zzz', message: 'unknown field "zzz"', in: 'body' },
      { path: '/requester/extra', message: 'unknown field "extra"', in: 'body' },
    ]);
    const priority = await t.call(token, 'POST', '/api/v1/tickets', {
      subject: 'x',
      requester: { email: 'ann@example.com' },
      priority: 'bogus',
    });
    expect(priority.body.errors).toEqual([
      { path: '/priority', message: 'must be one of: low, normal, high, urgent', in: 'body' },
    ]);
  });

  it('say which fields would do when an object matches none of its forms', async () => {
    const res = await t.call(token, 'POST', '/api/v1/tickets', { subject: 'x', requester: {} });
    expect(res.status).toBe(400);
    expect(res.body.errors).toContainEqual({
      path: '/requester',
      message: 'must have one of: personId, email',
      in: 'body',
    });
  });

  it('say where a query parameter is wrong', async () => {
    const res = await t.call(token, 'GET', '/api/v1/tickets?status=bogus&nope=1');
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual(
      expect.arrayContaining([
        {
          path: '/status',
          message: 'must be one of: new, open, pending, on_hold, solved, closed',
          in: 'query',
        },
        { path: '/nope', message: 'unknown field "nope"', in: 'query' },
      ]),
    );
  });

  it('report a missing field at its own path', async () => {
    const res = await t.call(token, 'POST', '/api/v1/tickets', { requester: { email: 'ann@example.com' } });
    expect(res.body.errors).toContainEqual({ path: '/subject', message: 'is required', in: 'body' });
  });
});

describe('a wrong method on a known path', () => {
  it('is 405 with the methods the path has', async () => {
    const res = await t.call(token, 'PUT', '/api/v1/tickets');
    expect(res.status).toBe(405);
    expect(res.body.code).toBe('method_not_allowed');
    expect(String(res.headers['allow']).split(', ')).toEqual(expect.arrayContaining(['GET', 'POST']));
    const one = await t.call(token, 'POST', '/api/v1/tickets/0190a7b2-0000-7000-8000-000000000000');
    expect(one.status).toBe(405);
    expect(String(one.headers['allow'])).toContain('PATCH');
  });

  it('while an unknown path is still 404', async () => {
    const res = await t.call(token, 'GET', '/api/v1/no-such-thing');
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('not_found');
  });
});

describe('every problem', () => {
  it('carries a code from the catalogue', async () => {
    const answers = await Promise.all([
      t.call(undefined, 'GET', '/api/v1/tickets'),
      t.call('rd_nope', 'GET', '/api/v1/tickets'),
      t.call(token, 'GET', '/api/v1/tickets?cursor=%%%'),
      t.call(token, 'GET', '/api/v1/tickets/not-a-uuid'),
      t.call(token, 'POST', '/api/v1/tickets', '{"broken', { 'content-type': 'application/json' }),
      t.call(token, 'POST', '/api/v1/tickets', 'text', { 'content-type': 'text/plain' }),
      t.call(token, 'DELETE', '/api/v1/people'),
      t.call(token, 'GET', '/api/v1/queue/stats?queue=no.such.queue'),
      t.call(token, 'POST', '/api/v1/queue/dlq/redrive?queue=no.such.queue'),
    ]);
    for (const res of answers) {
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(ERROR_CODES).toContain(res.body.code);
      expect(res.body.status).toBe(res.status);
    }
    expect(answers.map((r) => r.status)).toEqual([401, 401, 400, 400, 400, 415, 405, 404, 404]);
  });

  it.each(['gzip', 'deflate', 'br', 'x-unknown'])(
    'is 415 for a body sent with Content-Encoding %s, nothing created',
    async (encoding) => {
      const before = await t.call(token, 'GET', '/api/v1/tickets?limit=100');
      const res = await t.call(
        token,
        'POST',
        '/api/v1/tickets',
        JSON.stringify({ subject: 'Compressed', requester: { email: 'zip@example.com' } }),
        { 'content-type': 'application/json', 'content-encoding': encoding },
      );
      expect(res.status).toBe(415);
      expect(res.body.code).toBe('unsupported_media_type');
      const after = await t.call(token, 'GET', '/api/v1/tickets?limit=100');
      expect(after.body.items).toHaveLength(before.body.items.length);
    },
  );

  it('is a problem too when the HTTP parser refuses the request, before any route', async () => {
    const base = new URL(await t.app.listen({ port: 0, host: '127.0.0.1' }));
    const send = (bytes: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(base.port), base.hostname);
        let answer = '';
        socket.on('data', (d) => (answer += d.toString()));
        // The server closes the socket after its answer, with bytes of ours unread: a reset here.
        socket.on('error', (err) => (answer ? resolve(answer) : reject(err)));
        socket.on('close', () => resolve(answer));
        socket.write(bytes);
      });
    const auth = `Authorization: Bearer ${token}\r\n`;
    const answers = await Promise.all([
      send(`GET /api/v1/me HTTP/1.1\r\nHost: x\r\n${auth}X-A: a\u0000b\r\n\r\n`),
      send(`GET /api/v1/me HTTP/1.1\r\nHost: x\r\n${auth}Bad Name: b\r\n\r\n`),
      send('HELLO\r\n\r\n'),
      send(
        `POST /api/v1/tickets HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\n` +
          'Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}',
      ),
      send(`GET /api/v1/me HTTP/1.1\r\nHost: x\r\n${auth}X-A: ${'a'.repeat(100_000)}\r\n\r\n`),
    ]);
    const parsed = answers.map((answer) => {
      const [head, body] = answer.split('\r\n\r\n');
      expect(head).toMatch(/\r\nContent-Type: application\/problem\+json/i);
      const p = JSON.parse(body!) as { code: string; status: number };
      expect(ERROR_CODES).toContain(p.code);
      expect(head!.startsWith(`HTTP/1.1 ${p.status} `)).toBe(true);
      return p.code;
    });
    expect(parsed).toEqual(['bad_request', 'bad_request', 'bad_request', 'bad_request', 'headers_too_large']);
  });

  it('keeps server internals out: no paths or driver messages when the database is unreachable', async () => {
    const dead = createPool({
      connectionString: 'postgres://x:y@127.0.0.1:1/none',
      connectionTimeoutMillis: 300,
    });
    const app = await buildServer(
      {
        config: { bodyLimit: 1024 },
        pool: dead,
        logger: createLogger('silent'),
        clock: t.clock,
        authenticate: tokenAuthenticator({ pool: dead, clock: t.clock }),
      },
      ROUTES,
      HOOK_ROUTES,
    );
    try {
      for (const url of ['/readyz', '/api/v1/tickets']) {
        const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
        expect(res.statusCode).toBe(503);
        expect(res.json().code).toBe('database_unavailable');
        expect(res.json().detail).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|\/|\.s\.PGSQL/);
      }
    } finally {
      await app.close();
      await dead.end();
    }
  });
});
