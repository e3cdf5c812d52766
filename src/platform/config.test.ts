import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('has working defaults for the embedded setup', () => {
    const c = loadConfig({}, {}, '/srv/app');
    expect(c).toMatchObject({
      databaseUrl: undefined,
      dataDir: '/srv/app/.relaydesk',
      host: '127.0.0.1',
      port: 8080,
      logLevel: 'info',
      role: 'all',
      bodyLimit: 10 * 1024 * 1024,
    });
    expect(c.secretKey).toBeUndefined();
  });

  it('reads the environment, and flags override it', () => {
    const key = Buffer.alloc(32, 7).toString('base64');
    const env = {
      DATABASE_URL: 'postgres://u:p@db/relaydesk',
      RELAYDESK_SECRET_KEY: key,
      PORT: '9000',
      HOST: '0.0.0.0',
      LOG_LEVEL: 'debug',
      RELAYDESK_DATA_DIR: '/data',
    };
    const c = loadConfig(env, { port: '9100', role: 'worker' }, '/x');
    expect(c).toMatchObject({
      databaseUrl: 'postgres://u:p@db/relaydesk',
      port: 9100,
      host: '0.0.0.0',
      logLevel: 'debug',
      role: 'worker',
      dataDir: '/data',
    });
    expect(c.secretKey).toEqual(Buffer.alloc(32, 7));
  });

  it('reports every problem at once', () => {
    let error: unknown;
    try {
      loadConfig(
        { DATABASE_URL: 'mysql://x', PORT: 'eighty', LOG_LEVEL: 'loud', RELAYDESK_BODY_LIMIT: '5' },
        { role: 'boss' },
      );
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of ['DATABASE_URL', 'PORT', 'LOG_LEVEL', '--role', 'RELAYDESK_BODY_LIMIT']) {
      expect(problems).toContain(name);
    }
  });

  it('names the flag the user typed, or the variable they set', () => {
    const problemsOf = (env: Record<string, string>, overrides: Record<string, string>) => {
      try {
        loadConfig(env, overrides);
      } catch (err) {
        return (err as ConfigError).problems;
      }
      return [];
    };
    expect(problemsOf({}, { port: '70000' })).toEqual(['--port must be between 0 and 65535, got 70000']);
    expect(problemsOf({ PORT: '70000' }, {})).toEqual(['PORT must be between 0 and 65535, got 70000']);
    // The flag wins over the environment, so it is the flag that is wrong.
    expect(problemsOf({ PORT: '8080' }, { port: 'http' })[0]).toMatch(/^--port must be an integer/);
    expect(problemsOf({}, { logLevel: 'chatty' })[0]).toMatch(/^--log-level must be one of/);
    expect(problemsOf({}, { host: ' ' })).toEqual(['--host must not be empty']);
    expect(problemsOf({}, { dbWaitSeconds: 'soon' })[0]).toMatch(/^--db-wait must be an integer/);
    expect(problemsOf({ RELAYDESK_DB_WAIT_SECONDS: '-1' }, {})[0]).toMatch(/^RELAYDESK_DB_WAIT_SECONDS/);
  });

  it('does not ask for the secret key with an external database (only what seals credentials does)', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://u:p@db/relaydesk' });
    expect(c.databaseUrl).toBe('postgres://u:p@db/relaydesk');
    expect(c.secretKey).toBeUndefined();
  });

  it('serves the API docs by default only on a loopback host, unless RELAYDESK_DOCS says otherwise', () => {
    for (const host of ['127.0.0.1', 'localhost', '::1', '127.0.0.2']) {
      expect(loadConfig({ HOST: host }).docs, host).toBe(true);
    }
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'desk.example.com']) {
      expect(loadConfig({ HOST: host }).docs, host).toBe(false);
    }
    expect(loadConfig({ HOST: '0.0.0.0', RELAYDESK_DOCS: 'on' }).docs).toBe(true);
    expect(loadConfig({ RELAYDESK_DOCS: 'OFF' }).docs).toBe(false);
    expect(() => loadConfig({ RELAYDESK_DOCS: 'maybe' })).toThrow(/RELAYDESK_DOCS must be on or off/);
  });

  it('refuses private webhook addresses unless RELAYDESK_ALLOW_PRIVATE_WEBHOOKS allows them', () => {
    expect(loadConfig({}).allowPrivateWebhooks).toBe(false);
    expect(loadConfig({ RELAYDESK_ALLOW_PRIVATE_WEBHOOKS: '1' }).allowPrivateWebhooks).toBe(true);
    expect(loadConfig({ RELAYDESK_ALLOW_PRIVATE_WEBHOOKS: '0' }).allowPrivateWebhooks).toBe(false);
    expect(() => loadConfig({ RELAYDESK_ALLOW_PRIVATE_WEBHOOKS: 'yes please' })).toThrow(
      /RELAYDESK_ALLOW_PRIVATE_WEBHOOKS must be 1 or 0/,
    );
  });

  it('reads the metrics token, the log format and the database wait', () => {
    expect(loadConfig({}).metricsToken).toBeUndefined();
    expect(loadConfig({ RELAYDESK_METRICS_TOKEN: ' scrape-me ' }).metricsToken).toBe('scrape-me');
    expect(loadConfig({}).logFormat).toBe('json');
    expect(loadConfig({ LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(() => loadConfig({ LOG_FORMAT: 'xml' })).toThrow(/LOG_FORMAT must be one of json, pretty/);
    expect(loadConfig({}).dbWaitSeconds).toBeUndefined();
    expect(loadConfig({ RELAYDESK_DB_WAIT_SECONDS: '90' }).dbWaitSeconds).toBe(90);
    expect(loadConfig({ RELAYDESK_DB_WAIT_SECONDS: '90' }, { dbWaitSeconds: '0' }).dbWaitSeconds).toBe(0);
  });

  it('takes a direct URL beside a pooled DATABASE_URL, and only with one', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgres://u:p@pgbouncer:6432/relaydesk',
      DATABASE_DIRECT_URL: 'postgres://u:p@db:5432/relaydesk',
    });
    expect(c.databaseDirectUrl).toBe('postgres://u:p@db:5432/relaydesk');
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@db/relaydesk' }).databaseDirectUrl).toBeUndefined();
    expect(() => loadConfig({ DATABASE_DIRECT_URL: 'postgres://u:p@db/relaydesk' })).toThrow(
      /DATABASE_DIRECT_URL is only for an external PostgreSQL behind a pooler/,
    );
    expect(() =>
      loadConfig({ DATABASE_URL: 'postgres://u:p@db/relaydesk', DATABASE_DIRECT_URL: 'mysql://db' }),
    ).toThrow(/DATABASE_DIRECT_URL must start with postgres:\/\//);
  });

  it('requires a 32-byte base64 secret key when one is given', () => {
    expect(() =>
      loadConfig({
        DATABASE_URL: 'postgres://x/y',
        RELAYDESK_SECRET_KEY: Buffer.alloc(16).toString('base64'),
      }),
    ).toThrow(/32 bytes/);
    expect(() => loadConfig({ DATABASE_URL: 'postgres://x/y', RELAYDESK_SECRET_KEY: 'not base64!' })).toThrow(
      /base64/,
    );
  });
});
