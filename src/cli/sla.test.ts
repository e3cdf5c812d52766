import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const dir = mkdtempSync(path.join(os.tmpdir(), 'relaydesk-sla-cli-'));
const file = (name: string, content: unknown) => {
  const p = path.join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
};
const weekdays = Object.fromEntries(
  ['mon', 'tue', 'wed', 'thu', 'fri'].map((d) => [d, [['09:00', '17:00']]]),
);
const ny = file('ny.json', { timeZone: 'America/New_York', weekly: weekdays });
const cli = (...args: string[]) =>
  spawnSync(process.execPath, [path.resolve('bin/relaydesk.mjs'), 'sla', ...args], { encoding: 'utf8' });

describe('relaydesk sla', () => {
  it('prints deadlines as ISO-8601 UTC with whole seconds', () => {
    const res = cli('deadline', '--calendar', ny, '--start', '2026-03-06T21:30:00Z', '--minutes', '60');
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toBe('2026-03-09T13:30:00Z\n');
    expect(
      cli('deadline', '--calendar', ny, '--start', '2026-03-04T21:59:30Z', '--seconds', '60').stdout,
    ).toBe('2026-03-05T14:00:30Z\n');
  });

  it('prints elapsed business seconds as an integer', () => {
    // Mon 09:00 EST to the next Monday 09:00 EDT (13:00Z, after the change to summer time): five full days.
    const res = cli(
      'elapsed',
      '--calendar',
      ny,
      '--from',
      '2026-03-02T14:00:00Z',
      '--to',
      '2026-03-09T13:00:00Z',
    );
    expect(res.stdout).toBe(`${5 * 8 * 3600}\n`);
    // One more hour of Monday: 14:00Z is 10:00 EDT.
    expect(
      cli('elapsed', '--calendar', ny, '--from', '2026-03-02T14:00:00Z', '--to', '2026-03-09T14:00:00Z')
        .stdout,
    ).toBe(`${41 * 3600}\n`);
  });

  it.each([
    [
      'a bad time zone',
      [
        'deadline',
        '--calendar',
        file('bad-zone.json', { timeZone: 'Nowhere/Land', alwaysOpen: true }),
        '--start',
        '2026-03-02T14:00:00Z',
        '--minutes',
        '1',
      ],
    ],
    [
      'a bad time',
      [
        'deadline',
        '--calendar',
        file('bad-time.json', { timeZone: 'UTC', weekly: { mon: [['9am', '17:00']] } }),
        '--start',
        '2026-03-02T14:00:00Z',
        '--minutes',
        '1',
      ],
    ],
    [
      'an unreadable file',
      [
        'elapsed',
        '--calendar',
        path.join(dir, 'missing.json'),
        '--from',
        '2026-03-02T14:00:00Z',
        '--to',
        '2026-03-03T14:00:00Z',
      ],
    ],
    [
      'a file that is not JSON',
      [
        'elapsed',
        '--calendar',
        file('junk.json', 'not json'),
        '--from',
        '2026-03-02T14:00:00Z',
        '--to',
        '2026-03-03T14:00:00Z',
      ],
    ],
    ['a bad instant', ['elapsed', '--calendar', ny, '--from', 'yesterday', '--to', '2026-03-03T14:00:00Z']],
    [
      '--from after --to',
      ['elapsed', '--calendar', ny, '--from', '2026-03-03T14:00:00Z', '--to', '2026-03-02T14:00:00Z'],
    ],
    [
      'both --minutes and --seconds',
      ['deadline', '--calendar', ny, '--start', '2026-03-02T14:00:00Z', '--minutes', '1', '--seconds', '1'],
    ],
    [
      'a calendar without business time',
      [
        'deadline',
        '--calendar',
        file('empty.json', { timeZone: 'UTC', weekly: {} }),
        '--start',
        '2026-03-02T14:00:00Z',
        '--minutes',
        '1',
      ],
    ],
  ])('refuses %s with a message on stderr and exit 2', (_name, args) => {
    const res = cli(...args);
    expect(res.status).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/^relaydesk/);
  });

  it('says which way round --from and --to go', () => {
    const res = cli(
      'elapsed',
      '--calendar',
      ny,
      '--from',
      '2026-03-03T14:00:00Z',
      '--to',
      '2026-03-02T14:00:00Z',
    );
    expect(res.stderr).toContain('--from (2026-03-03T14:00:00Z) is after --to (2026-03-02T14:00:00Z)');
    // The same instant twice is an empty interval, not an error.
    const empty = cli(
      'elapsed',
      '--calendar',
      ny,
      '--from',
      '2026-03-03T14:00:00Z',
      '--to',
      '2026-03-03T14:00:00Z',
    );
    expect(empty.status, empty.stderr).toBe(0);
    expect(empty.stdout).toBe('0\n');
  });
});
