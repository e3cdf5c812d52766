// Programs the tests run from Debian's packages (Dovecot, PgBouncer, PostgreSQL 15): installed with
// apt-get when missing and the tests run as root, as on a fresh CI machine; otherwise a message says
// what to install.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

/**
 * Makes sure `file` exists, installing the Debian package `pkg` that provides it when it does not
 * (with its recommended packages unless `recommends` is false).
 */
export function ensureDebianPackage(pkg: string, file: string, options: { recommends?: boolean } = {}): void {
  if (existsSync(file)) return;
  const [command, args, env] = installCommand(pkg, file, options);
  execFileSync(command, args, { env, stdio: 'ignore' });
  if (!existsSync(file)) throw new Error(`apt-get installed ${pkg}, but ${file} is still missing`);
}

/** ensureDebianPackage without blocking the event loop meanwhile (the suite's main process). */
export async function ensureDebianPackageInBackground(
  pkg: string,
  file: string,
  options: { recommends?: boolean } = {},
): Promise<void> {
  if (existsSync(file)) return;
  const [command, args, env] = installCommand(pkg, file, options);
  await promisify(execFile)(command, args, { env });
  if (!existsSync(file)) throw new Error(`apt-get installed ${pkg}, but ${file} is still missing`);
}

function installCommand(
  pkg: string,
  file: string,
  options: { recommends?: boolean },
): [string, string[], NodeJS.ProcessEnv] {
  if (process.getuid?.() !== 0)
    throw new Error(`${pkg} is not installed and we are not root to install it: apt-get install ${pkg}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Test files run side by side and may want the same package at once: one installs under a lock
  // (flock, util-linux) while the others wait for it, and then find the package there.
  return [
    'flock',
    [
      '/tmp/relaydesk-apt.lock',
      'sh',
      '-c',
      'test -e "$1" || { apt-get update -qq && apt-get install -y -qq $3 "$2"; }',
      'sh',
      file,
      pkg,
      options.recommends === false ? '--no-install-recommends' : '',
    ],
    env,
  ];
}
