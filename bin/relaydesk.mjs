#!/usr/bin/env node
// Entry point of the `relaydesk` command. The sources are TypeScript that Node runs directly
// (type stripping, on by default since Node 22.18 and 23.6). On an older Node 22 the flag is
// still needed, so re-run once with it rather than asking every user to know about it.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(
    `relaydesk: Node.js >= 22 is required (this is ${process.version}). Run it through npm ` +
      '(npm start, npm run relaydesk -- <command>, npx relaydesk), which uses the Node 24 that npm install brought.\n',
  );
  process.exit(2);
}
if (!process.features.typescript && !process.execArgv.includes('--experimental-strip-types')) {
  const result = spawnSync(
    process.execPath,
    ['--experimental-strip-types', '--no-warnings', fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  process.exit(result.status ?? 1);
} else {
  // Cache compiled modules between runs (about a third of the start-up time is loading modules).
  (await import('node:module')).enableCompileCache?.();
  await import('../src/cli/main.ts');
}
