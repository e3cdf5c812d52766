// One webhook request: a POST over node:http(s) to an address vetted beforehand. The connection's
// name lookup answers only that address (so a DNS answer that changed since the check cannot move
// it), while the URL's host still names the server for the Host header, TLS SNI and the
// certificate check. No agent (each request connects anew, to the address it vetted), no
// redirects followed, a bounded read of the answer.
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { ResolvedAddress } from './address.ts';

export interface PostResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The start of the answer's body (at most MAX_BODY bytes, as UTF-8). */
  body: string;
}

/** How much of an answer is read; the rest is dropped. */
const MAX_BODY = 4096;

/** A lookup that answers one address, in whichever form the caller asked for. */
function pinnedLookup(target: ResolvedAddress): LookupFunction {
  return (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all)
      (callback as (err: null, addresses: { address: string; family: number }[]) => void)(null, [
        { address: target.address, family: target.family },
      ]);
    else callback(null, target.address, target.family);
  };
}

/** POSTs `body` to `url` connecting to `address`; rejects on a network error, a timeout or an abort. */
export function postTo(input: {
  url: URL;
  address: ResolvedAddress;
  headers: Record<string, string>;
  body: string;
  signal: AbortSignal;
}): Promise<PostResult> {
  const { url, body } = input;
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<PostResult>((resolve, reject) => {
    const req = client.request(
      url,
      {
        method: 'POST',
        agent: false,
        lookup: pinnedLookup(input.address),
        signal: input.signal,
        headers: { ...input.headers, 'content-length': String(Buffer.byteLength(body)) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size < MAX_BODY) chunks.push(chunk.subarray(0, MAX_BODY - size));
          size += chunk.length;
        });
        res.on('error', reject);
        // A timeout or abort mid-answer destroys it without an 'end'.
        res.on('close', () => {
          if (!res.complete) reject(new Error('the answer was cut off'));
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
