// Debian's PostgreSQL for the suite (RELAYDESK_TEST_POSTGRES=15): the oldest major Relaydesk supports,
// as the distribution ships it, beside the embedded one of the newest. Installed by apt-get when
// missing, like Dovecot and Chromium. Only its programs are used: the cluster is the suite's own
// (test/global-setup.ts), never one of Debian's (a `main` cluster the package made is left alone).
import path from 'node:path';
import { ensureDebianPackage, ensureDebianPackageInBackground } from './debian-packages.ts';
import type { Binaries } from '../src/platform/db/run-as-postgres.ts';

export function debianPostgres(major: string): Binaries {
  const bin = binDirectory(major);
  // postgresql-N brings the server and its contrib modules (pg_stat_statements among them).
  ensureDebianPackage(`postgresql-${major}`, path.join(bin, 'initdb'));
  return binaries(bin);
}

/** debianPostgres, installing without blocking the event loop. */
export async function debianPostgresInBackground(major: string): Promise<Binaries> {
  const bin = binDirectory(major);
  await ensureDebianPackageInBackground(`postgresql-${major}`, path.join(bin, 'initdb'));
  return binaries(bin);
}

function binDirectory(major: string): string {
  if (!/^\d+$/.test(major)) throw new Error(`RELAYDESK_TEST_POSTGRES="${major}" is not a PostgreSQL major`);
  return `/usr/lib/postgresql/${major}/bin`;
}

const binaries = (bin: string): Binaries => ({
  initdb: path.join(bin, 'initdb'),
  pg_ctl: path.join(bin, 'pg_ctl'),
  postgres: path.join(bin, 'postgres'),
});
