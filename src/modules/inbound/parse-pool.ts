// Parsing off the event loop. Decoding a message with large attachments takes the parser tens of
// milliseconds (about 12 ms per MB of base64); on the event loop that time is taken from every
// HTTP request and database reply of the process. Messages are therefore parsed in worker threads
// (one per core beyond the first, at most four, at least one), each message wholly in one thread.
// If threads cannot be started, or a thread dies (its messages then fail and their jobs retry),
// parsing goes on: a dead thread is replaced; without threads it runs in place.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { type ParsedMessage, parseMessage } from './mime.ts';
import type { ParseReply } from './parse-worker.ts';

const SIZE = Math.max(1, Math.min(4, os.availableParallelism() - 1));

interface Waiting {
  resolve: (message: ParsedMessage) => void;
  reject: (err: Error) => void;
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
      if (this.waiting.size === 0) this.worker.unref();
      if (reply.ok) waiting.resolve(revive(reply.message));
      else waiting.reject(new Error(reply.error));
    });
    const stop = (reason: string) => {
      this.dead = true;
      for (const w of this.waiting.values()) w.reject(new Error(`the parser thread stopped: ${reason}`));
      this.waiting.clear();
    };
    this.worker.on('error', (err) => stop(err.message));
    this.worker.on('exit', (code) => stop(`exit code ${code}`));
  }

  parse(id: number, raw: Buffer): Promise<ParsedMessage> {
    return new Promise((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref();
      this.waiting.set(id, { resolve, reject });
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

/** parseMessage, in a worker thread when one is available. */
export function parseInThread(raw: Buffer): Promise<ParsedMessage> {
  const thread = pick();
  return thread ? thread.parse(nextId++, raw) : parseMessage(raw);
}
