// A webhook receiver on loopback, as a Standard Webhooks consumer writes one
// (https://www.standardwebhooks.com): it verifies `webhook-signature` against the secrets it is
// given (any `v1,` signature by any of them; HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}"
// keyed with the base64 after `whsec_`), refuses a timestamp more than five minutes off its clock,
// and counts what it accepted per `webhook-id`, so a test sees each notification arrive once and
// sees duplicates. It fails on demand (simulators/faults.ts): a status with Retry-After, 410, or a
// slow answer for timeouts. The verification is written here on its own, not shared with the signer.
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Fault, Faults } from './faults.ts';

export interface WebhookReceiverOptions {
  /** `whsec_` secrets a signature may be made with. */
  secrets?: string[];
  /** The receiver's clock, for the timestamp tolerance (a test's clock when it moves time). */
  now?: () => Date;
  /** How far webhook-timestamp may be from `now` (default 300 s, as the spec's libraries do). */
  toleranceSeconds?: number;
  /** Seeds probabilistic faults. */
  seed?: number;
}

export interface ReceivedWebhook {
  path: string;
  /** webhook-id, webhook-timestamp and webhook-signature as received. */
  id: string | undefined;
  timestamp: string | undefined;
  signature: string | undefined;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** Whether a signature verified with one of the secrets and the timestamp was within tolerance. */
  verified: boolean;
  /** Which secrets (indexes into the list at that time) had a valid signature. */
  verifiedBy: number[];
  /** What the receiver answered. */
  status: number;
  at: Date;
}

export interface WebhookReceiver {
  /** http://127.0.0.1:<port> */
  url: string;
  faults: Faults;
  setSecrets(secrets: string[]): void;
  /** Fails the next matching request(s); pathPrefix defaults to "/" (every request). */
  fail(fault: Omit<Fault, 'pathPrefix'> & { pathPrefix?: string }): void;
  /** Every request, in order of arrival. */
  requests(): ReceivedWebhook[];
  /** Accepted (verified, answered 2xx) deliveries per webhook-id. */
  counts(): Map<string, number>;
  /** webhook-ids accepted more than once. */
  duplicates(): string[];
  clear(): void;
  close(): Promise<void>;
}

const PREFIX = 'whsec_';

/** Which of `secrets` signed the request (indexes); empty when none did. */
export function verifyingSecrets(
  secrets: string[],
  input: { id: string; timestamp: string; body: string; signature: string },
): number[] {
  const content = Buffer.from(`${input.id}.${input.timestamp}.${input.body}`, 'utf8');
  const given = input.signature
    .split(' ')
    .filter((part) => part.startsWith('v1,'))
    .map((part) => Buffer.from(part.slice(3), 'base64'));
  const found: number[] = [];
  secrets.forEach((secret, i) => {
    if (!secret.startsWith(PREFIX)) return;
    const expected = createHmac('sha256', Buffer.from(secret.slice(PREFIX.length), 'base64'))
      .update(content)
      .digest();
    if (given.some((g) => g.length === expected.length && timingSafeEqual(g, expected))) found.push(i);
  });
  return found;
}

export async function startWebhookReceiver(options: WebhookReceiverOptions = {}): Promise<WebhookReceiver> {
  let secrets = [...(options.secrets ?? [])];
  const now = options.now ?? (() => new Date());
  const tolerance = options.toleranceSeconds ?? 300;
  const faults = new Faults(options.seed);
  const received: ReceivedWebhook[] = [];
  const accepted = new Map<string, number>();

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const path = req.url ?? '/';
        const body = Buffer.concat(chunks).toString('utf8');
        const one = (name: string) => {
          const v = req.headers[name];
          return Array.isArray(v) ? v[0] : v;
        };
        const entry: ReceivedWebhook = {
          path,
          id: one('webhook-id'),
          timestamp: one('webhook-timestamp'),
          signature: one('webhook-signature'),
          headers: req.headers,
          body,
          verified: false,
          verifiedBy: [],
          status: 0,
          at: now(),
        };
        received.push(entry);
        const answer = (status: number, json: unknown, headers: Record<string, string> = {}) => {
          entry.status = status;
          if (res.destroyed) return;
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          res.end(JSON.stringify(json));
        };
        faults.observe(req.method, path, now().getTime());
        const fault = await faults.take(req.method, path);
        if (fault) {
          const headers: Record<string, string> = {};
          if (fault.retryAfter !== undefined) {
            headers['retry-after'] = String(fault.retryAfter);
            faults.noteRetryAfter(req.method, path, now().getTime() + fault.retryAfter * 1000);
          }
          return answer(fault.status, { error: `simulated ${fault.status}` }, headers);
        }
        if (req.method !== 'POST') return answer(405, { error: 'method not allowed' });
        if (!entry.id || !entry.timestamp || !entry.signature)
          return answer(400, { error: 'missing webhook-id, webhook-timestamp or webhook-signature' });
        if (
          !/^\d+$/.test(entry.timestamp) ||
          Math.abs(now().getTime() / 1000 - Number(entry.timestamp)) > tolerance
        )
          return answer(400, { error: 'webhook-timestamp outside the tolerance' });
        entry.verifiedBy = verifyingSecrets(secrets, {
          id: entry.id,
          timestamp: entry.timestamp,
          body,
          signature: entry.signature,
        });
        if (entry.verifiedBy.length === 0) return answer(401, { error: 'no signature verified' });
        entry.verified = true;
        accepted.set(entry.id, (accepted.get(entry.id) ?? 0) + 1);
        return answer(200, { ok: true }, { 'x-request-id': `req-${received.length}` });
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    faults,
    setSecrets(list) {
      secrets = [...list];
    },
    fail(fault) {
      faults.add({ pathPrefix: '/', ...fault });
    },
    requests: () => [...received],
    counts: () => new Map(accepted),
    duplicates: () => [...accepted].filter(([, n]) => n > 1).map(([id]) => id),
    clear() {
      received.length = 0;
      accepted.clear();
      faults.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
