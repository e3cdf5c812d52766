// Debian's PostgreSQL for the suite (RELAYDESK_TEST_POSTGRES=15): the oldest major Relaydesk supports,
// as the distribution ships it, beside the embedded one of the newest. Installed by apt-get when
// missing, like Dovecot and Chromium. Only its programs are used: the cluster is the suite's own
// (test/global-setup.ts), never one of Debian's (a `main` cluster the package made is left alone).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Binaries } from '../src/platform/db/run-as-postgres.ts';

export function debianPostgres(major: string): Binaries {
  if (!/^\d+$/.test(major)) throw new Error(`RELAYDESK_TEST_POSTGRES="${major}" is not a PostgreSQL major`);
  const bin = `/usr/lib/postgresql/${major}/bin`;
  if (!existsSync(path.join(bin, 'initdb'))) {
    if (process.getuid?.() !== 0)
      throw new Error(
        `PostgreSQL ${major} is not installed and we are not root to install it: apt-get install postgresql-${major}`,
      );
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { env, stdio: 'ignore' });
    // postgresql-N brings the server and its contrib modules (pg_stat_statements among them).
    execFileSync('apt-get', ['install', '-y', '-qq', `postgresql-${major}`], { env, stdio: 'ignore' });
  }
  return {
    initdb: path.join(bin, 'initdb'),
    pg_ctl: path.join(bin, 'pg_ctl'),
    postgres: path.join(bin, 'postgres'),
  };
}
