// `npm run bench -- startup`: time from spawning the real CLI (`relaydesk start`) until GET /readyz
// answers 200: once on an empty data directory (first start: initdb, migrations, bootstrap), then
// three restarts on the same directory. Always uses the embedded PostgreSQL (DATABASE_URL is removed
// from the child's environment).
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  defer,
  fmt,
  freePort,
  heading,
  line,
  median,
  NODE,
  ROOT,
  sleep,
  table,
  tempDir,
  verdict,
  waitForQuietMachine,
} from './lib.ts';

const RESTARTS = 3;
const TARGET_SECONDS = 3;
const POLL_MS = 20;

interface StartRun {
  label: string;
  readySeconds: number;
  /** What the server itself logged as its start time (startRelaydesk), when found. */
  internalSeconds: number | null;
  stopSeconds: number;
  exitCode: number | null;
}

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of [
    'DATABASE_URL',
    'RELAYDESK_DATA_DIR',
    'RELAYDESK_ROLE',
    'RELAYDESK_SECRET_KEY',
    'PORT',
    'HOST',
  ])
    delete env[key];
  env['LOG_LEVEL'] = 'info'; // the "relaydesk is ready" line carries the server's own start time
  return env;
}

async function readyz(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function startOnce(label: string, dataDir: string, timeoutMs: number): Promise<StartRun> {
  await waitForQuietMachine();
  const port = await freePort();
  const started = performance.now();
  const child: ChildProcess = spawn(
    NODE,
    [path.join(ROOT, 'bin', 'relaydesk.mjs'), 'start', '--port', String(port), '--data', dataDir],
    {
      cwd: ROOT,
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  defer(`kill relaydesk ${child.pid}`, async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });
  let output = '';
  child.stdout!.on('data', (d) => {
    output += d;
  });
  child.stderr!.on('data', (d) => {
    output += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const deadline = started + timeoutMs;
  let readyAt = 0;
  while (readyAt === 0) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `relaydesk start exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output}`,
      );
    }
    if (performance.now() > deadline)
      throw new Error(`relaydesk start was not ready after ${timeoutMs / 1000} s:\n${output}`);
    if (await readyz(port)) readyAt = performance.now();
    else await sleep(POLL_MS);
  }
  const readySeconds = (readyAt - started) / 1000;

  let internalSeconds: number | null = null;
  for (const text of output.split('\n')) {
    if (!text.includes('relaydesk is ready')) continue;
    try {
      const ms = (JSON.parse(text) as { ms?: number }).ms;
      if (typeof ms === 'number') internalSeconds = ms / 1000;
    } catch {
      // not a JSON log line
    }
  }

  const stopping = performance.now();
  child.kill('SIGTERM');
  const exitCode = await Promise.race([exited, sleep(30_000).then(() => 'timeout' as const)]);
  if (exitCode === 'timeout') throw new Error(`relaydesk did not exit within 30 s of SIGTERM:\n${output}`);
  const stopSeconds = (performance.now() - stopping) / 1000;
  if (exitCode !== 0) line(`    warning: ${label} exited with ${exitCode} after SIGTERM:\n${output}`);
  return { label, readySeconds, internalSeconds, stopSeconds, exitCode };
}

export async function benchStartup(): Promise<Record<string, unknown>> {
  heading('startup: `relaydesk start` until GET /readyz is 200');
  const dataDir = await tempDir('startup');
  line(`data directory ${dataDir} (embedded PostgreSQL; DATABASE_URL removed from the child's environment)`);
  const runs: StartRun[] = [];
  line('first start (empty data directory) ...');
  runs.push(await startOnce('first start (initdb)', dataDir, 180_000));
  for (let i = 1; i <= RESTARTS; i++) {
    line(`restart ${i} ...`);
    runs.push(await startOnce(`restart ${i}`, dataDir, 60_000));
  }
  const restarts = runs.slice(1);
  const med = median(restarts.map((r) => r.readySeconds));
  const met = med < TARGET_SECONDS;
  line();
  table([
    ['run', 'spawn -> /readyz 200', 'startRelaydesk (logged)', 'SIGTERM -> exit', 'exit code'],
    ...runs.map((r) => [
      r.label,
      `${fmt(r.readySeconds, 3)} s`,
      r.internalSeconds === null ? 'n/a' : `${fmt(r.internalSeconds, 3)} s`,
      `${fmt(r.stopSeconds, 3)} s`,
      String(r.exitCode),
    ]),
  ]);
  line();
  line(`median restart ${fmt(med, 3)} s -> ${verdict(met)} (target < ${TARGET_SECONDS} s)`);
  const r3 = (n: number) => Math.round(n * 1000) / 1000;
  return {
    benchmark: 'startup',
    firstStartSeconds: r3(runs[0]!.readySeconds),
    restartSeconds: restarts.map((r) => r3(r.readySeconds)),
    medianRestartSeconds: r3(med),
    internalSeconds: runs.map((r) => (r.internalSeconds === null ? null : r3(r.internalSeconds))),
    stopSeconds: runs.map((r) => r3(r.stopSeconds)),
    exitCodes: runs.map((r) => r.exitCode),
    target: { seconds: TARGET_SECONDS, met },
  };
}
