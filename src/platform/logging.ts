// JSON logs (pino) that pass through a scrubber: API tokens, passwords, secrets and authorization
// headers never reach a log line, whether they sit in a known field or inside a message string.
// LOG_FORMAT=pretty turns the same lines into readable text for a terminal (pino-pretty, in the
// process, after the scrubber); JSON stays the default because log collectors read it.
import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';
import type { LogFormat, LogLevel } from './config.ts';

export type { Logger } from 'pino';

const SECRET_KEY_RE = /pass(word)?|secret|token|authorization|api[-_]?key|cookie|credential|private[-_]?key/i;
const SECRET_VALUE_RES: RegExp[] = [
  /rd_[A-Za-z0-9_-]{16,}/g, // our API tokens
  /(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, // authorization header values
  /(postgres(?:ql)?:\/\/[^:/@\s]+:)[^@\s]+@/gi, // passwords in connection strings
];
export const REDACTED = '[redacted]';

/** Replaces secret-looking substrings of a string. */
export function scrubString(text: string): string {
  let out = text;
  for (const re of SECRET_VALUE_RES) {
    out = out.replace(re, (match, ...groups) => {
      if (match.startsWith('rd_')) return `rd_${REDACTED}`;
      const prefix = groups[0];
      if (typeof prefix === 'string' && /^(Bearer|Basic)$/i.test(prefix)) return `${prefix} ${REDACTED}`;
      if (typeof prefix === 'string') return `${prefix}${REDACTED}@`;
      return REDACTED;
    });
  }
  return out;
}

/** Deep copy of `value` with secret fields replaced and secret-looking strings scrubbed. */
export function scrub(value: unknown, depth = 0): unknown {
  if (depth > 8) return '[depth]';
  if (typeof value === 'string') return scrubString(value);
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    return {
      type: value.name,
      message: scrubString(value.message),
      stack: value.stack && scrubString(value.stack),
      code: (value as { code?: unknown }).code,
    };
  }
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      SECRET_KEY_RE.test(k) && !/preview$/i.test(k) && v !== null && v !== undefined && typeof v !== 'boolean'
        ? REDACTED
        : scrub(v, depth + 1);
  }
  return out;
}

/**
 * Standard output, written in blocks of at least 4 KiB (at most a second late) instead of one
 * write(2) per line: with a line per request, a system call per line was a measurable share of the
 * API's CPU. What is buffered is written at exit.
 */
let stdoutDestination: pino.DestinationStream | undefined;
function bufferedStdout(): pino.DestinationStream {
  if (stdoutDestination) return stdoutDestination;
  const dest = pino.destination({ dest: 1, minLength: 4096, sync: false });
  stdoutDestination = dest;
  setInterval(() => dest.flush(), 1000).unref();
  process.on('exit', () => {
    try {
      dest.flushSync();
    } catch {
      // A write still in flight at exit: nothing more can be done synchronously.
    }
  });
  return dest;
}

/** Readable lines on `destination` (standard output by default), coloured when it is a terminal. */
function prettyDestination(destination: pino.DestinationStream | undefined): pino.DestinationStream {
  const stream = (destination ?? process.stdout) as NodeJS.WritableStream & { isTTY?: boolean };
  return pretty({
    destination: stream,
    colorize: stream.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    singleLine: true,
    sync: true,
  });
}

export function createLogger(
  level: LogLevel,
  destination?: pino.DestinationStream,
  format: LogFormat = 'json',
): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => scrub(object) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          // Scrub message strings too (the object part goes through formatters.log).
          const scrubbed = args.map((a) => (typeof a === 'string' ? scrubString(a) : a)) as typeof args;
          method.apply(this, scrubbed);
        },
      },
    },
    format === 'pretty' ? prettyDestination(destination) : (destination ?? bufferedStdout()),
  );
}
