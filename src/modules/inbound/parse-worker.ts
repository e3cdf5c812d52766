// A worker thread of the parse pool (parse-pool.ts): parses the raw messages it is sent.
import { parentPort } from 'node:worker_threads';
import { parseMessage } from './mime.ts';

export interface ParseRequest {
  id: number;
  raw: Uint8Array;
}

export type ParseReply =
  | { id: number; ok: true; message: Awaited<ReturnType<typeof parseMessage>> }
  | { id: number; ok: false; error: string };

parentPort!.on('message', async ({ id, raw }: ParseRequest) => {
  let reply: ParseReply;
  try {
    const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    reply = { id, ok: true, message: await parseMessage(bytes) };
  } catch (err) {
    reply = { id, ok: false, error: String((err as Error)?.message ?? err) };
  }
  parentPort!.postMessage(reply);
});
