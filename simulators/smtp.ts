// A local SMTP server for outbound-mail tests and benchmarks: Relaydesk's SMTP transport sends to
// it over real SMTP (RFC 5321), and a test reads back what arrived. Built on smtp-server, which
// does the protocol (EHLO, pipelining, dot-stuffing, STARTTLS, AUTH PLAIN/LOGIN, SIZE); this file
// decides what a mail server would decide: who may send, what is too big, and which commands fail.
//   tls 'none'      cleartext only; STARTTLS is neither advertised nor accepted
//   tls 'starttls'  cleartext first, STARTTLS advertised (port 587 style); AUTH only after it
//   tls 'implicit'  TLS from the first byte (port 465 style)
// With `auth`, every MAIL/RCPT/DATA before a successful AUTH gets 530 and wrong credentials 535.
// A message over `size` bytes gets 552 after its data (or at MAIL when the client declared SIZE=).
// Faults answer MAIL, RCPT or DATA with a chosen code, optionally only for one address, a number of
// times or at random with a seed (the semantics of ./faults.ts, shaped for SMTP); 421 also closes
// the connection, as RFC 5321 section 3.8 requires of a server that says it.
// Every new connection waits 100 ms for its greeting (smtp-server's early-talker check, not
// configurable): benchmarks should reuse connections (a pooled transport) to measure throughput.
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import { seededRandom } from './faults.ts';
import { selfSignedCertificate } from './tls.ts';

export type SmtpCommand = 'MAIL' | 'RCPT' | 'DATA';

export interface SmtpFault {
  command: SmtpCommand;
  /**
   * Only when this address is involved (case-insensitive): the sender for MAIL, the recipient for
   * RCPT, any of the transaction's recipients for DATA. Omit for every one.
   */
  address?: string;
  /** The reply code (421, 450, 451, 452, 550, 552, 554, ...); omit to only delay. */
  code?: number;
  /** The reply text; a usual one for the code when omitted. */
  message?: string;
  /** Wait this long before answering (for DATA: after the whole message has arrived). */
  delayMs?: number;
  /** How many commands it applies to (default 1; Infinity: until cleared). */
  times?: number;
  /** The chance (0..1) that a matching command is hit; one that is spared does not use up `times`. Default 1. */
  probability?: number;
}

export interface CapturedMessage {
  /** The envelope sender (MAIL FROM); '' for the null sender. */
  from: string;
  /** The envelope recipients (RCPT TO) that were accepted, in order. */
  to: string[];
  /** The message as received, after dot-unstuffing, without the final "." line. */
  raw: Buffer;
  /**
   * The header fields as sent: lower-cased names, each with its values in order, unfolded but not
   * decoded (an RFC 2047 Subject stays encoded). Tests compare what a client put on the wire, so
   * a parser that normalises (mailparser rewrites addresses and Message-IDs) would hide mistakes.
   */
  headers: Record<string, string[]>;
  /** The Message-ID header as sent, with its angle brackets; undefined when there is none. */
  messageId: string | undefined;
  receivedAt: Date;
  /** Whether the connection was TLS (implicit or after STARTTLS) when the message arrived. */
  secure: boolean;
  /** The user that authenticated on the connection, if any. */
  authUser: string | undefined;
}

export interface SmtpSimulator {
  host: string;
  port: number;
  /** True when TLS starts with the first byte (tls 'implicit'): nodemailer's `secure` option. */
  secure: boolean;
  /** The credentials the simulator accepts, when it requires AUTH. */
  auth: { username: string; password: string } | undefined;
  /** The certificate (PEM) the TLS modes present; pass it as `tls: { ca }` to trust it. */
  ca: string | undefined;
  /** The SIZE limit advertised and enforced, in bytes. */
  maxSize: number;
  /** The messages accepted since start or the last clear(), oldest first. */
  messages(): CapturedMessage[];
  /** Resolves once at least n messages are held; rejects after timeoutMs (default 5,000). */
  waitFor(n: number, timeoutMs?: number): Promise<CapturedMessage[]>;
  /** Forgets the messages held (counts() keeps counting). */
  clear(): void;
  fault(fault: SmtpFault): void;
  clearFaults(): void;
  /**
   * connections: accepted; messages: accepted since start; rejected: MAIL, RCPT or DATA commands the
   * simulator refused (a fault, or a message over the size limit).
   */
  counts(): { connections: number; messages: number; rejected: number };
  close(): Promise<void>;
}

export interface SmtpSimulatorOptions {
  /** Default 0: a free port. The listener is on 127.0.0.1 only. */
  port?: number;
  /** Require AUTH PLAIN or LOGIN with these credentials before MAIL. */
  auth?: { username: string; password: string };
  /** Default 'none'. */
  tls?: 'starttls' | 'implicit' | 'none';
  /** The SIZE limit in bytes; default 25 MiB. */
  maxSize?: number;
  /** Makes probabilistic faults reproducible; without one they use a random seed. */
  seed?: number;
}

const DEFAULT_MAX_SIZE = 25 * 1024 * 1024;

/** Reply texts for the codes a test usually injects (RFC 5321 section 4.2.3 wording). */
const DEFAULT_TEXT: Record<number, string> = {
  421: 'Service not available, closing transmission channel',
  450: 'Requested mail action not taken: mailbox unavailable',
  451: 'Requested action aborted: try again later',
  452: 'Requested action not taken: insufficient system storage',
  550: 'Requested action not taken: No such user',
  552: 'Requested mail action aborted: exceeded storage allocation',
  553: 'Requested action not taken: mailbox name not allowed',
  554: 'Transaction failed',
};

/** Minimal RFC 5322 header parse: the block before the first empty line, folded lines joined. */
export function parseHeaders(raw: Buffer): Record<string, string[]> {
  const text = raw.toString('latin1');
  const end = /\r?\n\r?\n/.exec(text);
  const block = end ? text.slice(0, end.index) : text;
  const headers: Record<string, string[]> = {};
  for (const field of block.split(/\r?\n(?![ \t])/)) {
    const colon = field.indexOf(':');
    if (colon <= 0) continue;
    const name = field.slice(0, colon).trim().toLowerCase();
    const value = field
      .slice(colon + 1)
      .replace(/\r?\n(?=[ \t])/g, '')
      .trim();
    // latin1 kept every byte; turn them back into UTF-8 text (RFC 6532 headers).
    (headers[name] ??= []).push(Buffer.from(value, 'latin1').toString('utf8'));
  }
  return headers;
}

const smtpError = (code: number, message: string) =>
  Object.assign(new Error(message), { responseCode: code });

/** Connections still open at close() get this long to finish a transaction, then a 421. */
const CLOSE_GRACE_MS = 500;

export async function startSmtpSimulator(options: SmtpSimulatorOptions = {}): Promise<SmtpSimulator> {
  const mode = options.tls ?? 'none';
  const maxSize = options.maxSize ?? DEFAULT_MAX_SIZE;
  const auth = options.auth ? { ...options.auth } : undefined;
  const certificate = mode === 'none' ? undefined : await selfSignedCertificate();

  const captured: CapturedMessage[] = [];
  const waiters = new Set<{ n: number; resolve: () => void }>();
  const counters = { connections: 0, messages: 0, rejected: 0 };
  const faults: (SmtpFault & { left: number })[] = [];
  const random = seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32));

  /** Consumes the first fault matching the command (after its delay); returns the error to answer with. */
  const takeFault = async (command: SmtpCommand, addresses: string[]) => {
    const lower = addresses.map((a) => a.toLowerCase());
    const fault = faults.find(
      (f) => f.left > 0 && f.command === command && (!f.address || lower.includes(f.address.toLowerCase())),
    );
    if (!fault) return undefined;
    if (fault.probability !== undefined && fault.probability < 1 && random() >= fault.probability)
      return undefined;
    fault.left--;
    if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (!fault.code) return undefined;
    counters.rejected++;
    return smtpError(fault.code, fault.message ?? DEFAULT_TEXT[fault.code] ?? 'Error');
  };

  const capture = (session: SMTPServerSession, raw: Buffer) => {
    const headers = parseHeaders(raw);
    const envelope = session.envelope;
    captured.push({
      from: envelope.mailFrom ? envelope.mailFrom.address : '',
      to: envelope.rcptTo.map((r) => r.address),
      raw,
      headers,
      messageId: headers['message-id']?.[0],
      receivedAt: new Date(),
      secure: session.secure,
      authUser: typeof session.user === 'string' ? session.user : undefined,
    });
    counters.messages++;
    for (const w of waiters) if (captured.length >= w.n) w.resolve();
  };

  const server = new SMTPServer({
    name: 'localhost',
    banner: 'Relaydesk SMTP simulator',
    logger: false,
    // No reverse DNS for 127.0.0.1: a test makes no unplanned network call.
    disableReverseLookup: true,
    secure: mode === 'implicit',
    ...(certificate ? { key: certificate.key, cert: certificate.cert } : {}),
    hideSTARTTLS: mode !== 'starttls',
    size: maxSize,
    // smtp-server only flags an oversized message by default; a real server refuses it (552).
    rejectOversized: true,
    authMethods: ['PLAIN', 'LOGIN'],
    // Without credentials to check AUTH is not offered, like a relay that trusts its network.
    authOptional: !auth,
    disabledCommands: [...(auth ? [] : ['AUTH']), ...(mode === 'starttls' ? [] : ['STARTTLS'])],
    // Without TLS there is no other way to authenticate; with STARTTLS, RFC 4954 section 4 wants it first.
    allowInsecureAuth: mode === 'none',
    closeTimeout: CLOSE_GRACE_MS,
    onConnect(_session, callback) {
      counters.connections++;
      callback();
    },
    onAuth(login, _session, callback) {
      if (
        auth &&
        (login.method === 'PLAIN' || login.method === 'LOGIN') &&
        login.username === auth.username &&
        login.password === auth.password
      )
        return callback(null, { user: login.username });
      // Leaving `user` empty makes smtp-server answer 535 5.7.8.
      return callback(null, { user: undefined, message: 'Authentication credentials invalid' });
    },
    onMailFrom(address, _session, callback) {
      takeFault('MAIL', [address.address]).then((err) => callback(err ?? null), callback);
    },
    onRcptTo(address, _session, callback) {
      takeFault('RCPT', [address.address]).then((err) => callback(err ?? null), callback);
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      const chunks: Buffer[] = [];
      let kept = 0;
      stream.on('data', (chunk: Buffer) => {
        // Past the limit the message is refused anyway; do not hold an unbounded body in memory.
        if (kept <= maxSize) {
          chunks.push(chunk);
          kept += chunk.length;
        }
      });
      stream.on('end', () => {
        if (stream.sizeExceeded) {
          // rejectOversized turns any answer into 552; it only needs counting here.
          counters.rejected++;
          return callback(smtpError(552, 'Message exceeds fixed maximum message size'));
        }
        const recipients = session.envelope.rcptTo.map((r) => r.address);
        takeFault('DATA', recipients).then((err) => {
          if (err) return callback(err);
          capture(session, Buffer.concat(chunks));
          callback(null, 'OK: message queued');
        }, callback);
      });
    },
  });
  // An SMTP client that drops its connection mid-transaction is normal; do not crash the test run.
  server.on('error', () => {});

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;

  return {
    host: '127.0.0.1',
    port,
    secure: mode === 'implicit',
    auth,
    ca: certificate?.cert,
    maxSize,
    messages: () => [...captured],
    waitFor(n, timeoutMs = 5_000) {
      if (captured.length >= n) return Promise.resolve([...captured]);
      return new Promise((resolve, reject) => {
        const waiter = {
          n,
          resolve: () => {
            clearTimeout(timer);
            waiters.delete(waiter);
            resolve([...captured]);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`waited ${timeoutMs} ms for ${n} messages, ${captured.length} arrived`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    clear() {
      captured.length = 0;
    },
    fault(f) {
      const p = f.probability;
      if (p !== undefined && !(p >= 0 && p <= 1)) throw new Error('probability must be between 0 and 1');
      faults.push({ ...f, left: f.times ?? 1 });
    },
    clearFaults() {
      faults.length = 0;
    },
    counts: () => ({ ...counters }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
