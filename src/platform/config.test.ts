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
    for (const name of [
      'DATABASE_URL',
      'PORT',
      'LOG_LEVEL',
      'role',
      'RELAYDESK_SECRET_KEY',
      'RELAYDESK_BODY_LIMIT',
    ]) {
      expect(problems).toContain(name);
    }
  });

  it('requires a 32-byte base64 secret key with an external database', () => {
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
