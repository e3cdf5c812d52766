// Load generator for the inbound benchmark, in its own process:
//   node bench/inbound-load.ts '<json spec>'
// mode "mime": builds a corpus, prints {"ready":true}, waits for a line on stdin, then POSTs the corpus
// to /api/v1/mailboxes/:id/messages with `concurrency` in flight, or with `rate` set evenly paced at
// that many messages per second, printing a line {"accepted":<inbound id>,"at":<epoch ms>} per answer.
// mode "graph": autocannon against /hooks/graph/:id, 10 notifications per POST.
// Prints one JSON line with what it measured.
import http from 'node:http';
import os from 'node:os';
import autocannon from 'autocannon';

interface MimeSpec {
  mode: 'mime';
  url: string;
  token: string;
  mailboxId: string;
  count: number;
  concurrency: number;
  /** Only small messages (no attachments, no replies, no duplicates). */
  smallOnly: boolean;
  /** Distinguishes Message-IDs between runs. */
  run: string;
  /** Messages per second, evenly paced (runMimePaced); omit to keep `concurrency` in flight. */
  rate?: number;
}

interface GraphSpec {
  mode: 'graph';
  url: string;
  mailboxId: string;
  clientState: string;
  connections: number;
  duration: number;
  /** POSTs per second, evenly paced (runGraphPaced); omit to go as fast as the server answers (autocannon). */
  rate?: number;
}

/** CPU this load generator used so far (the benchmark reports it as the client's share). */
function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** A small deterministic PRNG, so a message can be rebuilt from its index (duplicates are exact copies). */
function rng(seed: number): () => number {
  let x = seed * 2654435761 + 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) % 1_000_000) / 1_000_000;
  };
}

export type Kind = 'small' | 'attachment' | 'large';

/** Message i of the corpus: 70% small text/HTML, 25% with a 50–500 KB attachment, 5% over 1 MB; 30% replies. */
export function corpusMessage(i: number, run: string, smallOnly: boolean): { raw: Buffer; kind: Kind } {
  const r = rng(i + 1);
  const roll = r();
  const kind: Kind = smallOnly || roll < 0.7 ? 'small' : roll < 0.95 ? 'attachment' : 'large';
  const reply = !smallOnly && i > 10 && r() < 0.3;
  const parent = reply ? Math.floor(r() * i) : -1;
  const headers = [
    `From: Customer ${i % 500} <customer${i % 500}@bench.example>`,
    'To: support@bench.test',
    `Subject: ${reply ? 'Re: ' : ''}Bench message ${reply ? parent : i}`,
    `Message-ID: <${run}-${i}@bench.example>`,
    ...(reply ? [`In-Reply-To: <${run}-${parent}@bench.example>`] : []),
    'Date: Mon, 02 Mar 2026 14:00:00 +0000',
    'MIME-Version: 1.0',
  ];
  const text = `Hello,\r\n\r\nThis is message ${i}. ${'Lorem ipsum dolor sit amet. '.repeat(20 + Math.floor(r() * 60))}\r\n\r\nRegards`;
  if (kind === 'small') {
    const html = r() < 0.5;
    return {
      kind,
      raw: Buffer.from(
        [
          ...headers,
          html ? 'Content-Type: text/html; charset=utf-8' : 'Content-Type: text/plain; charset=utf-8',
          '',
          html ? `<p>${text.replace(/\r\n/g, '<br>')}</p>` : text,
        ].join('\r\n'),
      ),
    };
  }
  const size =
    kind === 'attachment' ? 50_000 + Math.floor(r() * 450_000) : 1_050_000 + Math.floor(r() * 1_000_000);
  // The generator's own cost competes with the server for the same two cores: the words are
  // written through a typed array and the base64 is wrapped by slicing (the same bytes as
  // writeUInt32LE word by word and a /.{76}/g replace, at a fraction of the CPU).
  const bytes = Buffer.alloc(size);
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, Math.floor(size / 4));
  let k = 0;
  if (os.endianness() === 'LE') for (; k + 4 <= size; k += 4) words[k / 4] = Math.floor(r() * 0xffffffff);
  for (; k < size; k += 4) bytes.writeUInt32LE(Math.floor(r() * 0xffffffff), Math.min(k, size - 4));
  const base64 = bytes.toString('base64');
  const lines: string[] = [];
  for (let at = 0; at + 76 <= base64.length; at += 76) lines.push(base64.slice(at, at + 76));
  const rest = base64.slice(lines.length * 76);
  const body = lines.join('\r\n') + (lines.length > 0 ? '\r\n' : '') + rest;
  const head = [
    ...headers,
    'Content-Type: multipart/mixed; boundary="bench"',
    '',
    '--bench',
    'Content-Type: text/plain; charset=utf-8',
    '',
    text,
    '--bench',
    `Content-Type: application/octet-stream; name="data-${i}.bin"`,
    `Content-Disposition: attachment; filename="data-${i}.bin"`,
    'Content-Transfer-Encoding: base64',
    '',
    '',
  ].join('\r\n');
  return {
    kind,
    raw: Buffer.concat([Buffer.from(head), Buffer.from(body, 'latin1'), Buffer.from('\r\n--bench--\r\n')]),
  };
}

/**
 * One upload with node:http on a keep-alive agent: the load generator shares the machine's cores
 * with the server, and this costs it less CPU per request than fetch().
 */
function postRaw(spec: MimeSpec, agent: http.Agent, raw: Buffer): Promise<number> {
  return postRawAnswer(spec, agent, raw, false).then((answer) => answer.status);
}

/** One upload; with `readBody`, also the answer's body (the inbound id it was accepted as). */
function postRawAnswer(
  spec: MimeSpec,
  agent: http.Agent,
  raw: Buffer,
  readBody: boolean,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${spec.url}/api/v1/mailboxes/${spec.mailboxId}/messages`,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${spec.token}`,
          'content-type': 'message/rfc822',
          'content-length': raw.length,
        },
      },
      (res) => {
        let body = '';
        if (readBody) res.setEncoding('utf8').on('data', (d: string) => (body += d));
        else res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(raw);
  });
}

/**
 * The whole corpus, built before anything is measured: the generator shares the machine's two cores
 * with the server, and what the benchmark measures is the server, not building random attachments.
 * The same messages as when they were built during the upload.
 */
function buildCorpus(spec: MimeSpec): { raw: Buffer; kind: Kind | 'duplicate' }[] {
  const corpus: { raw: Buffer; kind: Kind | 'duplicate' }[] = [];
  for (let i = 0; i < spec.count; i++) {
    // 10% exact duplicates: the very bytes of an earlier message.
    const duplicate = !spec.smallOnly && i > 10 && rng(i + 7777)() < 0.1;
    if (duplicate) {
      // Message `source` of the corpus, even where that slot itself sent a duplicate (as before).
      const source = Math.floor(rng(i + 9999)() * i);
      const earlier = corpus[source]!;
      const raw =
        earlier.kind === 'duplicate' ? corpusMessage(source, spec.run, spec.smallOnly).raw : earlier.raw;
      corpus.push({ raw, kind: 'duplicate' });
    } else corpus.push(corpusMessage(i, spec.run, spec.smallOnly));
  }
  return corpus;
}

/** Resolves at the first line on stdin: the benchmark's signal to start. */
function startSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.stdin.once('data', () => {
      process.stdin.pause();
      resolve();
    });
  });
}

async function runMime(spec: MimeSpec): Promise<void> {
  const corpus = buildCorpus(spec);
  // Ready: the benchmark settles the machine, starts its meters and then says go.
  process.stdout.write(`${JSON.stringify({ ready: true, messages: corpus.length })}\n`);
  await startSignal();
  if (spec.rate) return runMimePaced(spec, corpus, spec.rate);
  const cpuAtStart = ownCpuSeconds();
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency });
  let next = 0;
  let failed = 0;
  const kinds: Record<string, number> = { small: 0, attachment: 0, large: 0, duplicate: 0 };
  let bytes = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: spec.concurrency }, async () => {
      for (;;) {
        const i = next++;
        if (i >= spec.count) return;
        const { raw, kind } = corpus[i]!;
        kinds[kind]!++;
        bytes += raw.length;
        if ((await postRaw(spec, agent, raw)) !== 202) failed++;
      }
    }),
  );
  agent.destroy();
  const seconds = (Date.now() - started) / 1000;
  process.stdout.write(
    `${JSON.stringify({ submitted: spec.count, failed, seconds, acceptedPerSecond: spec.count / seconds, kinds, megabytes: bytes / 2 ** 20, cpuSeconds: ownCpuSeconds() - cpuAtStart })}\n`,
  );
}

/**
 * The corpus offered at `rate` messages per second (open loop, as runGraphPaced): message i is due at
 * start + i / rate whether or not earlier ones were answered. Each accepted message is announced on
 * stdout the moment its 202 is read, with its inbound id and the wall-clock time of that answer
 * (Date.now(): the benchmark compares it with PostgreSQL's clock on the same host; 1 ms resolution),
 * so the benchmark can watch for its record while the upload goes on.
 */
async function runMimePaced(
  spec: MimeSpec,
  corpus: { raw: Buffer; kind: Kind | 'duplicate' }[],
  rate: number,
): Promise<void> {
  const cpuAtStart = ownCpuSeconds();
  // No cap on sockets: a slow answer must not hold back the next message's send (open loop).
  const agent = new http.Agent({ keepAlive: true });
  const acceptLatencies: number[] = [];
  let failed = 0;
  let errors = 0;
  let lastSent = 0;
  let maxSendLag = 0;
  const inFlight: Promise<void>[] = [];
  const start = performance.now() + 50;
  for (let i = 0; i < corpus.length; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    lastSent = performance.now();
    maxSendLag = Math.max(maxSendLag, lastSent - due);
    inFlight.push(
      postRawAnswer(spec, agent, corpus[i]!.raw, true).then(
        ({ status, body }) => {
          const at = Date.now();
          acceptLatencies.push(performance.now() - due);
          if (status !== 202) {
            failed++;
            return;
          }
          const { inboundId } = JSON.parse(body) as { inboundId: string };
          process.stdout.write(`${JSON.stringify({ accepted: inboundId, at })}\n`);
        },
        () => {
          errors++;
        },
      ),
    );
  }
  const sendSeconds = (lastSent - start) / 1000;
  await Promise.all(inFlight);
  agent.destroy();
  acceptLatencies.sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(
      acceptLatencies[Math.min(acceptLatencies.length - 1, Math.floor(q * acceptLatencies.length))] ?? 0,
    );
  process.stdout.write(
    `${JSON.stringify({
      submitted: corpus.length,
      failed,
      errors,
      // Messages sent per second from the first send to the last (the rate actually offered).
      offeredPerSecond: sendSeconds > 0 ? (corpus.length - 1) / sendSeconds : 0,
      maxSendLagMs: Math.round(maxSendLag),
      // From when a message was due to its 202 (what the sender waits for).
      acceptMs: { p50: at(0.5), p99: at(0.99), max: Math.round(acceptLatencies.at(-1) ?? 0) },
      kinds: Object.fromEntries(
        ['small', 'attachment', 'large', 'duplicate'].map((k) => [
          k,
          corpus.filter((m) => m.kind === k).length,
        ]),
      ),
      megabytes: corpus.reduce((n, m) => n + m.raw.length, 0) / 2 ** 20,
      cpuSeconds: ownCpuSeconds() - cpuAtStart,
    })}\n`,
  );
}

/** A Graph notification collection of 10 (message ids unique within this process). */
let notificationSeq = 0;
function graphBody(clientState: string): string {
  const value = Array.from({ length: 10 }, () => {
    notificationSeq++;
    return {
      subscriptionId: 'bench',
      clientState,
      changeType: 'created',
      resource: `Users/x/Messages/p${process.pid}-${notificationSeq}`,
      resourceData: { id: `p${process.pid}-${notificationSeq}` },
    };
  });
  return JSON.stringify({ value });
}

/**
 * Evenly paced POSTs (open loop): request i is due at start + i / rate, whether or not earlier ones
 * have answered, and its latency counts from when it was due. (autocannon's own rate limit lets
 * each connection send its share of a second at the start of that second, so what it measures at a
 * given rate is a burst every second.)
 */
async function runGraphPaced(spec: GraphSpec & { rate: number }): Promise<void> {
  const url = `${spec.url}/hooks/graph/${spec.mailboxId}`;
  const total = Math.round(spec.rate * spec.duration);
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  const inFlight: Promise<void>[] = [];
  const start = performance.now() + 50;
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / spec.rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const body = graphBody(spec.clientState);
    inFlight.push(
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(
        async (res) => {
          await res.arrayBuffer();
          if (res.status < 200 || res.status > 299) non2xx++;
          latencies.push(performance.now() - due);
        },
        () => {
          errors++;
        },
      ),
    );
  }
  await Promise.all(inFlight);
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  process.stdout.write(
    `${JSON.stringify({
      postsPerSecond: latencies.length / seconds,
      notificationsPerSecond: (latencies.length * 10) / seconds,
      latencyMs: { p50: at(0.5), p99: at(0.99), max: Math.round(latencies.at(-1) ?? 0) },
      non2xx,
      errors,
      cpuSeconds: ownCpuSeconds(),
    })}\n`,
  );
}

async function runGraph(spec: GraphSpec): Promise<void> {
  if (spec.rate) return runGraphPaced({ ...spec, rate: spec.rate });
  let n = 0;
  const result = await autocannon({
    url: `${spec.url}/hooks/graph/${spec.mailboxId}`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    connections: spec.connections,
    duration: spec.duration,
    ...(spec.rate ? { overallRate: spec.rate } : {}),
    requests: [
      {
        setupRequest: (request: { body?: string }) => {
          const value = Array.from({ length: 10 }, () => {
            n++;
            return {
              subscriptionId: 'bench',
              clientState: spec.clientState,
              changeType: 'created',
              resource: `Users/x/Messages/m${n}`,
              resourceData: { id: `m${n}` },
            };
          });
          request.body = JSON.stringify({ value });
          return request;
        },
      },
    ],
  });
  process.stdout.write(
    `${JSON.stringify({
      postsPerSecond: result.requests.average,
      notificationsPerSecond: result.requests.average * 10,
      latencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
      non2xx: result.non2xx,
      errors: result.errors,
      cpuSeconds: ownCpuSeconds(),
    })}\n`,
  );
}

if (process.argv[2]) {
  const spec = JSON.parse(process.argv[2]) as MimeSpec | GraphSpec;
  await (spec.mode === 'mime' ? runMime(spec) : runGraph(spec));
}
