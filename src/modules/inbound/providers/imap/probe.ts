// "Test this mailbox": connect, log in, open the folder, each step's result in plain words, so an
// operator sees which setting is wrong (host or port, password, folder). Its own connection, never
// a pooled one (a pooled login would hide a password that stopped working), logged out at the end.
// Every wait is bounded: a host that swallows packets is reported within three step timeouts.
import type { Mailbox } from '../../mailboxes.ts';
import { imapClient, imapFailureText, type ImapSettings, imapSettingsOf, loginRefusal } from './client.ts';

export type ProbeStepName = 'connect' | 'login' | 'select';

export interface ProbeStep {
  step: ProbeStepName;
  ok: boolean;
  message: string;
}

export interface ProbeResult {
  ok: boolean;
  /** The steps tried, in order; the first that failed is the last. */
  steps: ProbeStep[];
}

const STEP_TIMEOUT_MS = 10_000;

interface ImapFailure {
  code?: string;
  responseStatus?: string;
  authenticationFailed?: boolean;
  mailboxMissing?: boolean;
  message?: string;
}

const TIMEOUT_CODES = new Set([
  'CONNECT_TIMEOUT',
  'GREETING_TIMEOUT',
  'UPGRADE_TIMEOUT',
  'ETIMEOUT',
  'ETIMEDOUT',
]);

/** Why a connection could not be made, in an operator's words. */
function connectFailure(settings: ImapSettings, err: unknown): string {
  const where = `${settings.host}:${settings.port}`;
  const e = err as ImapFailure;
  if (e?.code === 'ECONNREFUSED') return `nothing accepts connections at ${where} (connection refused)`;
  if (e?.code === 'ENOTFOUND' || e?.code === 'EAI_AGAIN')
    return `the host name ${settings.host} was not found`;
  if (e?.code && TIMEOUT_CODES.has(e.code))
    return `${where} did not answer as an IMAP server in time (${settings.secure ? 'TLS' : 'plain'}; check the port and "secure")`;
  if (/certificate|ssl|tls|wrong version number/i.test(e?.message ?? ''))
    return `TLS with ${where} failed: ${e.message} (check the port and "secure")`;
  return `could not connect to ${where}: ${imapFailureText(err)}`;
}

/** The server answered the connection (greeting or login reply): the failure is the login's. */
const reachedLogin = (err: unknown): boolean => {
  const e = err as ImapFailure;
  return Boolean(e?.authenticationFailed || e?.responseStatus);
};

async function runProbe(
  settings: ImapSettings,
  password: string,
  stepTimeoutMs: number,
  steps: ProbeStep[],
  track: (close: () => void) => void,
): Promise<void> {
  const client = imapClient(settings, password, { disableAutoIdle: true, timeoutMs: stepTimeoutMs });
  client.on('error', () => undefined);
  track(() => client.close());
  // imapflow connects and logs in in one call; the kind of failure says which step it was.
  try {
    await client.connect();
  } catch (err) {
    if (!reachedLogin(err)) {
      steps.push({ step: 'connect', ok: false, message: connectFailure(settings, err) });
      return;
    }
    steps.push({ step: 'connect', ok: true, message: `connected to ${settings.host}:${settings.port}` });
    const refusal = loginRefusal(err);
    steps.push({
      step: 'login',
      ok: false,
      message:
        refusal === undefined
          ? `the login as ${settings.user} failed: ${imapFailureText(err)}`
          : `the server refused the login as ${settings.user}: ${refusal}`,
    });
    return;
  }
  try {
    steps.push({
      step: 'connect',
      ok: true,
      message: `connected to ${settings.host}:${settings.port} (${settings.secure ? 'TLS' : 'plain'})`,
    });
    steps.push({ step: 'login', ok: true, message: `logged in as ${settings.user}` });
    try {
      const opened = await client.mailboxOpen(settings.folder, { readOnly: true });
      steps.push({
        step: 'select',
        ok: true,
        message: `opened the folder "${settings.folder}" (${opened.exists} messages)`,
      });
    } catch (err) {
      const missing = (err as ImapFailure).mailboxMissing;
      steps.push({
        step: 'select',
        ok: false,
        message: missing
          ? `the server has no folder "${settings.folder}": ${imapFailureText(err)}`
          : `could not open the folder "${settings.folder}": ${imapFailureText(err)}`,
      });
    }
  } finally {
    await client.logout().catch(() => client.close());
  }
}

/** Connects, logs in and opens the folder of an IMAP mailbox; says how far it got, and why not further. */
export async function probeImapMailbox(
  mailbox: Mailbox,
  password: string,
  options: {
    /** Bounds the connect and the wait for the greeting, each (10 s); the whole probe gets three times it. */
    stepTimeoutMs?: number;
  } = {},
): Promise<ProbeResult> {
  const settings = imapSettingsOf(mailbox);
  const stepTimeoutMs = options.stepTimeoutMs ?? STEP_TIMEOUT_MS;
  const probeTimeoutMs = 3 * stepTimeoutMs;
  const steps: ProbeStep[] = [];
  let close = (): void => undefined;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), probeTimeoutMs);
  });
  const finished = runProbe(settings, password, stepTimeoutMs, steps, (c) => (close = c)).catch(
    (err: unknown) => {
      steps.push({ step: nextStep(steps), ok: false, message: imapFailureText(err) });
    },
  );
  const outcome = await Promise.race([finished, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    close();
    steps.push({
      step: nextStep(steps),
      ok: false,
      message: `no answer within ${probeTimeoutMs / 1000} s`,
    });
  }
  // A copy: a probe that timed out may still add steps as its connection closes.
  const tried = [...steps];
  return { ok: tried.length === 3 && tried.every((s) => s.ok), steps: tried };
}

const nextStep = (steps: ProbeStep[]): ProbeStepName =>
  (['connect', 'login', 'select'] as const)[Math.min(steps.length, 2)]!;
