// Parsing off the event loop. Decoding a message with large attachments takes the parser tens of
// milliseconds (about 12 ms per MB of base64); on the event loop that time is taken from every
// HTTP request and database reply of the process. Messages are therefore parsed in worker threads
// (one per core beyond the first, at most four, at least one), each message wholly in one thread.
// If threads cannot be started, parsing runs in place; a dead thread is replaced.
//
// Hostile mail must not be able to stop parsing for good: a message whose parse does not end
// within the deadline has its thread terminated, and one that kills its thread (a crash, memory)
// loses it. Either way the messages that were in that thread are parsed again, each alone in a
// thread of its own, since any of them may have been the cause; a message that fails alone too is
// unparseable (its record is quarantined) rather than a job failing attempt after attempt.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { type ParsedMessage, parseMessage } from './mime.ts';
import type { ParseReply } from './parse-worker.ts';

const SIZE = Math.max(1, Math.min(4, os.availableParallelism() - 1));
/** How long parsing one message may take (the inbound job's lease is 120 s; a second try alone is possible). */
export const PARSE_DEADLINE_MS = 30_000;

/** The thread was lost under a message: not necessarily that message's doing. */
class ThreadLost extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'ThreadLost';
  }
}

interface Waiting {
  resolve: (message: ParsedMessage) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

class ParseThread {
  readonly worker: Worker;
  readonly waiting = new Map<number, Waiting>();
  dead = false;

  constructor() {
    this.worker = new Worker(new URL('./parse-worker.ts', import.meta.url));
    // Only a thread with work keeps the process alive.
    this.worker.unref();
    this.worker.on('message', (reply: ParseReply) => {
      const waiting = this.waiting.get(reply.id);
      if (!waiting) return;
      this.waiting.delete(reply.id);
      clearTimeout(waiting.timer);
      if (this.waiting.size === 0) this.worker.unref();
      if (reply.ok) waiting.resolve(revive(reply.message));
      else waiting.reject(new Error(reply.error));
    });
    this.worker.on('error', (err) => this.stop(`the parser thread stopped: ${err.message}`));
    this.worker.on('exit', (code) => this.stop(`the parser thread stopped: exit code ${code}`));
  }

  /** Ends the thread (if it still runs) and fails every message in it with ThreadLost. */
  stop(reason: string): void {
    if (!this.dead) {
      this.dead = true;
      void this.worker.terminate();
    }
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(new ThreadLost(reason));
    }
    this.waiting.clear();
  }

  parse(id: number, raw: Buffer, deadlineMs: number): Promise<ParsedMessage> {
    return new Promise((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref();
      const timer = setTimeout(
        () => this.stop(`parsing took longer than ${deadlineMs / 1000} s`),
        deadlineMs,
      ).unref();
      this.waiting.set(id, { resolve, reject, timer });
      this.worker.postMessage({ id, raw });
    });
  }
}

/** Buffers come back from a thread as plain Uint8Arrays. */
const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

function revive(message: ParsedMessage): ParsedMessage {
  return {
    ...message,
    attachments: message.attachments.map((a) => ({
      ...a,
      content: asBuffer(a.content),
      sha256: asBuffer(a.sha256),
    })),
  };
}

let threads: ParseThread[] | null | undefined;
let nextId = 0;

function pick(): ParseThread | undefined {
  if (threads === null) return undefined;
  try {
    threads = (threads ?? []).filter((t) => !t.dead);
    while (threads.length < SIZE) threads.push(new ParseThread());
  } catch {
    threads = null; // no worker threads here: parse in place
    return undefined;
  }
  return threads.reduce((a, b) => (b.waiting.size < a.waiting.size ? b : a));
}

/**
 * parseMessage, in a worker thread when one is available. Rejects when the message cannot be parsed:
 * the parser refused it, or it took longer than the deadline or killed its thread when parsed alone.
 */
export async function parseInThread(
  raw: Buffer,
  options: { deadlineMs?: number } = {},
): Promise<ParsedMessage> {
  const deadlineMs = options.deadlineMs ?? PARSE_DEADLINE_MS;
  const thread = pick();
  if (!thread) return parseMessage(raw);
  try {
    return await thread.parse(nextId++, raw, deadlineMs);
  } catch (err) {
    if (!(err instanceof ThreadLost)) throw err;
  }
  // Alone in a thread of its own: what happens now is this message's doing.
  let alone: ParseThread;
  try {
    alone = new ParseThread();
  } catch {
    return parseMessage(raw);
  }
  try {
    return await alone.parse(nextId++, raw, deadlineMs);
  } catch (err) {
    throw err instanceof ThreadLost ? new Error(err.message) : err;
  } finally {
    alone.stop('done');
  }
}
