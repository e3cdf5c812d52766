import { describe, expect, it } from 'vitest';
import { ConfigError } from '../config.ts';
import { AppError } from '../errors.ts';
import { createLogger } from '../logging.ts';
import { describeDatabaseUrl, retryWhileUnavailable, waitForDatabase } from './wait.ts';

const URL = 'postgres://relaydesk:hunter2@db.internal:6543/desk';
const refused = () =>
  Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:6543'), { code: 'ECONNREFUSED' });

/** A database that fails `failures` times, then answers; time moves only when the waiter sleeps. */
function fakeDatabase(failures: number, error: () => Error = refused) {
  let now = 0;
  const sleeps: number[] = [];
  let attempts = 0;
  return {
    sleeps,
    attempts: () => attempts,
    options: {
      db: {
        query: async () => {
          attempts++;
          if (attempts <= failures) throw error();
          return { rows: [], rowCount: 1 } as never;
        },
      },
      url: URL,
      logger: createLogger('silent'),
      now: () => now,
      sleep: async (ms: number) => {
        sleeps.push(ms);
        now += ms;
      },
    },
  };
}

describe('describeDatabaseUrl', () => {
  it('says host, port and database, never the password', () => {
    expect(describeDatabaseUrl(URL)).toBe('db.internal:6543/desk');
    expect(describeDatabaseUrl('postgres://u@db/x')).toBe('db:5432/x');
    expect(describeDatabaseUrl('postgres://u:p@localhost/relaydesk?host=%2Fvar%2Frun%2Fpg&port=5433')).toBe(
      '/var/run/pg:5433/relaydesk',
    );
  });
});

describe('waitForDatabase', () => {
  it('retries an unreachable database with growing pauses until it answers', async () => {
    const db = fakeDatabase(4);
    await waitForDatabase({ ...db.options, waitSeconds: 30 });
    expect(db.attempts()).toBe(5);
    expect(db.sleeps).toEqual([250, 500, 1000, 2000]);
  });

  it('gives up after the configured time with a message that names the database and not the password', async () => {
    const db = fakeDatabase(Infinity);
    const err = await waitForDatabase({ ...db.options, waitSeconds: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('database_unavailable');
    const message = (err as AppError).message;
    expect(message).toContain('cannot reach the database at db.internal:6543/desk (DATABASE_URL)');
    expect(message).toContain('connection refused');
    expect(message).toContain('gave up after 10 s');
    expect(message).toContain('--db-wait');
    expect(message).not.toContain('hunter2');
    // Never past the deadline: the last pause is cut to what was left.
    expect(db.sleeps.reduce((a, b) => a + b, 0)).toBe(10_000);
  });

  it('tries once with no wait configured', async () => {
    const db = fakeDatabase(Infinity);
    await expect(waitForDatabase({ ...db.options, waitSeconds: 0 })).rejects.toThrow(/connection refused/);
    expect(db.attempts()).toBe(1);
  });

  it('does not wait for a database that refuses the login: that is configuration', async () => {
    const db = fakeDatabase(Infinity, () =>
      Object.assign(new Error('password authentication failed for user "relaydesk"'), { code: '28P01' }),
    );
    const err = await waitForDatabase({ ...db.options, waitSeconds: 30 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain(
      'the database at db.internal:6543/desk refused the connection: the password was not accepted',
    );
    expect(db.attempts()).toBe(1);
  });

  it('passes on errors that are not about reaching the database', async () => {
    const db = fakeDatabase(Infinity, () => Object.assign(new Error('syntax error'), { code: '42601' }));
    await expect(waitForDatabase({ ...db.options, waitSeconds: 30 })).rejects.toThrow('syntax error');
  });
});

describe('retryWhileUnavailable', () => {
  /** A write that fails `failures` times with `error`, then answers; time moves only in sleeps. */
  function flakyWrite(failures: number, error: () => Error = refused) {
    let now = 0;
    let attempts = 0;
    const sleeps: number[] = [];
    return {
      sleeps,
      attempts: () => attempts,
      write: async () => {
        attempts++;
        if (attempts <= failures) throw error();
        return 'recorded';
      },
      options: {
        logger: createLogger('silent'),
        what: 'a test write',
        now: () => now,
        sleep: async (ms: number) => {
          sleeps.push(ms);
          now += ms;
        },
      },
    };
  }

  it('writes once the database answers again, with growing pauses', async () => {
    const w = flakyWrite(5);
    await expect(retryWhileUnavailable(w.write, { ...w.options, forMs: 60_000 })).resolves.toBe('recorded');
    expect(w.attempts()).toBe(6);
    expect(w.sleeps).toEqual([100, 200, 400, 800, 1600]);
  });

  it('also waits out a pooler that cannot log in to PostgreSQL yet (SQLSTATE 08P01)', async () => {
    const w = flakyWrite(2, () =>
      Object.assign(new Error('server login has been failing, try again later (server_login_retry)'), {
        code: '08P01',
      }),
    );
    await expect(retryWhileUnavailable(w.write, { ...w.options, forMs: 60_000 })).resolves.toBe('recorded');
    expect(w.attempts()).toBe(3);
  });

  it('gives up when its time is over, with the last error, never sleeping past it', async () => {
    const w = flakyWrite(Infinity);
    await expect(retryWhileUnavailable(w.write, { ...w.options, forMs: 1_000 })).rejects.toThrow(
      /ECONNREFUSED/,
    );
    expect(w.sleeps.reduce((a, b) => a + b, 0)).toBe(1_000);
  });

  it('gives up when its signal aborts (the lease ran out, the worker stops)', async () => {
    const w = flakyWrite(Infinity);
    const stop = new AbortController();
    const sleep = async (ms: number) => {
      await w.options.sleep(ms);
      if (w.attempts() === 2) stop.abort();
    };
    await expect(
      retryWhileUnavailable(w.write, { ...w.options, sleep, signal: stop.signal, forMs: 60_000 }),
    ).rejects.toThrow(/ECONNREFUSED/);
    expect(w.attempts()).toBe(3);
  });

  it('throws any other error at once: a failed statement is not an outage', async () => {
    const w = flakyWrite(1, () => Object.assign(new Error('duplicate key'), { code: '23505' }));
    await expect(retryWhileUnavailable(w.write, { ...w.options, forMs: 60_000 })).rejects.toThrow(
      /duplicate key/,
    );
    expect(w.attempts()).toBe(1);
  });
});
