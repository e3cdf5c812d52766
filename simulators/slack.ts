// A local Slack Web API simulator for tests and `relaydesk demo`. It follows the public API's
// payloads and error shapes for what Relaydesk uses:
//   POST /api/auth.test            who the bot token belongs to
//   POST /api/chat.postMessage     JSON or form body; `channel` a channel id, or a user id (the app's DM with them)
//   GET|POST /api/conversations.info   one channel (form or query `channel`)
// As Slack does, API errors answer HTTP 200 with `{ok: false, error: "<code>"}`; only a rate limit
// answers HTTP 429 with Retry-After (and `{ok: false, error: "ratelimited"}`). Bearer tokens are
// checked (not_authed, invalid_auth, token_revoked, account_inactive). Posting is limited per
// channel to about one message a second with a short burst (a token bucket), text to 40,000
// characters (msg_too_long), and blocks to Block Kit's sizes (invalid_blocks). Accepted posts are
// recorded in order. Faults on demand: an HTTP status (with Retry-After) or a slow answer through
// faults.ts, or an API error by name for the next calls of a method.
// The control API under /_control adds channels and users, injects faults and lists the posts.
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Fault, faultFromJson, Faults } from './faults.ts';

export type { Fault } from './faults.ts';

export interface SlackChannel {
  id: string;
  name: string;
  isPrivate: boolean;
  archived: boolean;
  /** The bot has been invited (otherwise posting answers not_in_channel). */
  botIsMember: boolean;
}

export interface SlackPost {
  /** The channel the message went to (a DM's D… id when a user id was given). */
  channel: string;
  /** What the request named as `channel`. */
  requested: string;
  ts: string;
  text: string | undefined;
  blocks: unknown[] | undefined;
  /** The token the post was made with. */
  token: string;
  at: Date;
}

export interface SlackSimulator {
  url: string;
  /** What Relaydesk's `apiBaseUrl` is set to: `${url}/api`. */
  apiBaseUrl: string;
  /** A valid bot token of the simulated workspace. */
  botToken: string;
  team: { id: string; name: string };
  botUserId: string;
  /** Another valid bot token (of the same workspace). */
  issueToken(): string;
  /** The token stops working: token_revoked. */
  revokeToken(token: string): void;
  /** The bot's account is deactivated: account_inactive for its tokens. */
  deactivateToken(token: string): void;
  addChannel(channel: Partial<SlackChannel> & { id: string }): void;
  archiveChannel(id: string): void;
  /** A person of the workspace, reachable by DM. */
  addUser(id: string): void;
  /** The DM conversation id the simulator opened for a user, if any. */
  dmOf(userId: string): string | undefined;
  /** Accepted posts, in the order they were accepted. */
  posts(): SlackPost[];
  clearPosts(): void;
  /** The next `times` calls of `method` (e.g. "chat.postMessage") answer `{ok: false, error}` with HTTP 200. */
  failNext(method: string, error: string, times?: number): void;
  fault(fault: Fault): void;
  clearFaults(): void;
  /** Requests that came back before the Retry-After given for the same method and path. */
  retryAfterViolations(): number;
  /** Posts refused by the per-channel rate limit, per channel. */
  rateLimited(): Map<string, number>;
  /** Every request: method, Slack method name, HTTP status and the `error` answered (if any). */
  log: { method: string; apiMethod: string; status: number; error: string | undefined }[];
  close(): Promise<void>;
}

export interface SlackSimulatorOptions {
  port?: number;
  seed?: number;
  /** Posts per second per channel once the burst is spent (Slack: about 1). */
  postsPerSecond?: number;
  /** Posts a channel takes at once before the rate applies. */
  burst?: number;
  /** The longest `text` accepted (Slack: 40,000 characters). */
  maxTextLength?: number;
}

// Block Kit's documented limits that a renderer can run into.
const MAX_BLOCKS = 50;
const MAX_HEADER_TEXT = 150;
const MAX_SECTION_TEXT = 3000;
const MAX_SECTION_FIELDS = 10;
const MAX_FIELD_TEXT = 2000;
const MAX_CONTEXT_ELEMENTS = 10;

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const slackId = (prefix: string) => prefix + randomBytes(6).toString('hex').toUpperCase().slice(0, 10);

/** Why a block list is not one Slack takes, or undefined. */
function blocksProblem(blocks: unknown): string | undefined {
  if (!Array.isArray(blocks)) return 'blocks must be an array';
  if (blocks.length > MAX_BLOCKS) return `no more than ${MAX_BLOCKS} items allowed [json-pointer:/blocks]`;
  for (const [i, block] of blocks.entries()) {
    const b = block as Record<string, any>;
    const at = `[json-pointer:/blocks/${i}`;
    if (b?.type === 'header') {
      if (b.text?.type !== 'plain_text') return `must be plain_text ${at}/text/type]`;
      const text = String(b.text?.text ?? '');
      if (text.length < 1 || text.length > MAX_HEADER_TEXT)
        return `must be between 1 and ${MAX_HEADER_TEXT} characters ${at}/text/text]`;
    } else if (b?.type === 'section') {
      if (b.text === undefined && b.fields === undefined) return `must provide text or fields ${at}]`;
      if (b.text !== undefined && String(b.text?.text ?? '').length > MAX_SECTION_TEXT)
        return `must be less than ${MAX_SECTION_TEXT + 1} characters ${at}/text/text]`;
      if (b.fields !== undefined) {
        if (!Array.isArray(b.fields) || b.fields.length > MAX_SECTION_FIELDS)
          return `no more than ${MAX_SECTION_FIELDS} items allowed ${at}/fields]`;
        for (const [j, f] of (b.fields as any[]).entries())
          if (String(f?.text ?? '').length > MAX_FIELD_TEXT)
            return `must be less than ${MAX_FIELD_TEXT + 1} characters ${at}/fields/${j}/text]`;
      }
    } else if (b?.type === 'context') {
      if (!Array.isArray(b.elements) || b.elements.length < 1 || b.elements.length > MAX_CONTEXT_ELEMENTS)
        return `must have 1 to ${MAX_CONTEXT_ELEMENTS} elements ${at}/elements]`;
    } else if (b?.type !== 'divider' && b?.type !== 'actions' && b?.type !== 'image') {
      return `unsupported type ${at}/type]`;
    }
  }
  return undefined;
}

export async function startSlackSimulator(options: SlackSimulatorOptions = {}): Promise<SlackSimulator> {
  const perSecond = options.postsPerSecond ?? 1;
  const burst = options.burst ?? 3;
  const maxText = options.maxTextLength ?? 40_000;
  const team = { id: 'T0SIM0001', name: 'Simulated Workspace' };
  const botUserId = 'U0SIMBOT1';
  const botId = 'B0SIMBOT1';

  const tokens = new Map<string, 'active' | 'revoked' | 'inactive'>();
  const channels = new Map<string, SlackChannel>();
  const users = new Set<string>();
  const dms = new Map<string, string>();
  const posts: SlackPost[] = [];
  const buckets = new Map<string, { tokens: number; at: number }>();
  const limited = new Map<string, number>();
  const apiErrors: { method: string; error: string; left: number }[] = [];
  const faults = new Faults(options.seed);
  const log: SlackSimulator['log'] = [];
  let lastTs = 0;

  const issue = () => {
    const token = `xoxb-${randomBytes(4).readUInt32BE()}-${randomBytes(4).readUInt32BE()}-${randomBytes(12).toString('hex')}`;
    tokens.set(token, 'active');
    return token;
  };
  const botToken = issue();

  /** Takes one post from the channel's bucket; answers the seconds to wait when it is empty. */
  function takeSlot(channel: string): number | undefined {
    const now = performance.now();
    const b = buckets.get(channel) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    buckets.set(channel, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return undefined;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / perSecond));
  }

  /** A message timestamp: seconds.microseconds, unique and increasing. */
  function nextTs(): string {
    const micros = Math.max(Date.now() * 1000, lastTs + 1);
    lastTs = micros;
    return `${Math.floor(micros / 1e6)}.${String(micros % 1e6).padStart(6, '0')}`;
  }

  async function params(req: http.IncomingMessage, url: URL): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = Object.fromEntries(url.searchParams);
    if (req.method !== 'POST') return out;
    const body = await readBody(req);
    const type = String(req.headers['content-type'] ?? '').toLowerCase();
    if (type.startsWith('application/json')) {
      if (body === '') return out;
      try {
        return { ...out, ...(JSON.parse(body) as Record<string, unknown>) };
      } catch {
        return { ...out, __invalid_json: true };
      }
    }
    const form = Object.fromEntries(new URLSearchParams(body));
    // Form bodies carry blocks as a JSON string.
    if (typeof form['blocks'] === 'string') {
      try {
        return { ...out, ...form, blocks: JSON.parse(form['blocks']) };
      } catch {
        return { ...out, ...form, blocks: 'invalid' };
      }
    }
    return { ...out, ...form };
  }

  type Send = (
    status: number,
    body: Record<string, unknown> | string,
    headers?: Record<string, string>,
  ) => void;

  function postMessage(p: Record<string, unknown>, token: string, send: Send) {
    const requested = typeof p['channel'] === 'string' ? p['channel'] : '';
    let channel: string;
    if (/^[UW]/.test(requested)) {
      if (!users.has(requested)) return send(200, { ok: false, error: 'channel_not_found' });
      let dm = dms.get(requested);
      if (!dm) {
        dm = slackId('D');
        dms.set(requested, dm);
      }
      channel = dm;
    } else {
      const known = channels.get(requested);
      if (!known && ![...dms.values()].includes(requested))
        return send(200, { ok: false, error: 'channel_not_found' });
      if (known?.archived) return send(200, { ok: false, error: 'is_archived' });
      if (known && !known.botIsMember) return send(200, { ok: false, error: 'not_in_channel' });
      channel = requested;
    }
    const text = typeof p['text'] === 'string' ? p['text'] : undefined;
    const blocks = p['blocks'];
    if ((text === undefined || text === '') && blocks === undefined)
      return send(200, { ok: false, error: 'no_text' });
    if (text !== undefined && text.length > maxText) return send(200, { ok: false, error: 'msg_too_long' });
    if (blocks !== undefined) {
      const problem = blocksProblem(blocks);
      if (problem) return send(200, { ok: false, error: 'invalid_blocks', errors: [problem] });
    }
    const wait = takeSlot(channel);
    if (wait !== undefined) {
      limited.set(channel, (limited.get(channel) ?? 0) + 1);
      return send(429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(wait) });
    }
    const ts = nextTs();
    posts.push({
      channel,
      requested,
      ts,
      text,
      blocks: blocks as unknown[] | undefined,
      token,
      at: new Date(),
    });
    return send(200, {
      ok: true,
      channel,
      ts,
      message: {
        type: 'message',
        subtype: 'bot_message',
        text: text ?? '',
        user: botUserId,
        bot_id: botId,
        ts,
        ...(blocks !== undefined ? { blocks } : {}),
      },
    });
  }

  function conversationsInfo(p: Record<string, unknown>, send: Send) {
    const id = typeof p['channel'] === 'string' ? p['channel'] : '';
    const c = channels.get(id);
    if (!c) return send(200, { ok: false, error: 'channel_not_found' });
    return send(200, {
      ok: true,
      channel: {
        id: c.id,
        name: c.name,
        is_channel: !c.isPrivate,
        is_group: c.isPrivate,
        is_im: false,
        is_private: c.isPrivate,
        is_archived: c.archived,
        is_member: c.botIsMember,
        created: 1_700_000_000,
      },
    });
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const apiMethod = path.startsWith('/api/') ? path.slice(5) : path;
    const send: Send = (status, body, headers = {}) => {
      log.push({
        method,
        apiMethod,
        status,
        error: typeof body === 'object' && body['ok'] === false ? String(body['error']) : undefined,
      });
      const requestId = randomUUID();
      if (typeof body === 'string')
        res
          .writeHead(status, { 'content-type': 'text/plain', 'x-slack-req-id': requestId, ...headers })
          .end(body);
      else
        res
          .writeHead(status, {
            'content-type': 'application/json; charset=utf-8',
            'x-slack-req-id': requestId,
            ...headers,
          })
          .end(JSON.stringify(body));
    };
    try {
      if (path.startsWith('/_control/')) return await control(req, path, send);

      faults.observe(method, path, Date.now());
      const fault = await faults.take(method, path);
      if (fault) {
        if (fault.retryAfter) faults.noteRetryAfter(method, path, Date.now() + fault.retryAfter * 1000);
        const headers: Record<string, string> = fault.retryAfter
          ? { 'retry-after': String(fault.retryAfter) }
          : {};
        // Slack answers a rate limit with JSON; its gateway's 5xx carry no API body.
        if (fault.status === 429) return send(429, { ok: false, error: 'ratelimited' }, headers);
        return send(fault.status, `simulated ${fault.status}`, headers);
      }

      if (!path.startsWith('/api/')) return send(404, { ok: false, error: 'unknown_method' });
      const known = ['auth.test', 'chat.postMessage', 'conversations.info'];
      if (!known.includes(apiMethod)) return send(404, { ok: false, error: 'unknown_method' });
      if (method !== 'POST' && method !== 'GET')
        return send(405, { ok: false, error: 'method_not_supported' });

      const p = await params(req, url);
      if (p['__invalid_json']) return send(200, { ok: false, error: 'invalid_json' });
      const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1] ?? (p['token'] as string);
      if (!bearer) return send(200, { ok: false, error: 'not_authed' });
      const state = tokens.get(bearer);
      if (state === undefined) return send(200, { ok: false, error: 'invalid_auth' });
      if (state === 'revoked') return send(200, { ok: false, error: 'token_revoked' });
      if (state === 'inactive') return send(200, { ok: false, error: 'account_inactive' });

      const injected = apiErrors.find((e) => e.method === apiMethod && e.left > 0);
      if (injected) {
        injected.left--;
        return send(200, { ok: false, error: injected.error });
      }

      if (apiMethod === 'auth.test')
        return send(200, {
          ok: true,
          url: 'https://simulated.slack.com/',
          team: team.name,
          user: 'relaydesk',
          team_id: team.id,
          user_id: botUserId,
          bot_id: botId,
          is_enterprise_install: false,
        });
      if (apiMethod === 'chat.postMessage') {
        if (method !== 'POST') return send(405, { ok: false, error: 'method_not_supported' });
        return postMessage(p, bearer, send);
      }
      return conversationsInfo(p, send);
    } catch (err) {
      if (!res.headersSent) send(500, `simulator error: ${(err as Error).message}`);
    }
  });

  async function control(req: http.IncomingMessage, path: string, send: Send) {
    const json = async () => JSON.parse((await readBody(req)) || '{}') as Record<string, unknown>;
    if (path === '/_control/faults' && req.method === 'POST') {
      try {
        sim.fault(faultFromJson(await json()));
      } catch (err) {
        return send(400, { error: (err as Error).message });
      }
      return send(204, '');
    }
    if (path === '/_control/faults' && req.method === 'DELETE') {
      sim.clearFaults();
      return send(204, '');
    }
    if (path === '/_control/channels' && req.method === 'POST') {
      const body = await json();
      if (typeof body['id'] !== 'string') return send(400, { error: 'a channel needs an id' });
      sim.addChannel(body as unknown as SlackChannel);
      return send(204, '');
    }
    if (path === '/_control/users' && req.method === 'POST') {
      const body = await json();
      if (typeof body['id'] !== 'string') return send(400, { error: 'a user needs an id' });
      sim.addUser(body['id']);
      return send(204, '');
    }
    if (path === '/_control/posts' && req.method === 'GET')
      return send(200, { posts: posts.map((p) => ({ ...p, token: undefined })) });
    return send(404, { error: 'unknown control route' });
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const sim: SlackSimulator = {
    url: base,
    apiBaseUrl: `${base}/api`,
    botToken,
    team,
    botUserId,
    issueToken: issue,
    revokeToken(token) {
      if (tokens.has(token)) tokens.set(token, 'revoked');
    },
    deactivateToken(token) {
      if (tokens.has(token)) tokens.set(token, 'inactive');
    },
    addChannel(c) {
      channels.set(c.id, {
        id: c.id,
        name: c.name ?? c.id.toLowerCase(),
        isPrivate: c.isPrivate ?? false,
        archived: c.archived ?? false,
        botIsMember: c.botIsMember ?? true,
      });
    },
    archiveChannel(id) {
      const c = channels.get(id);
      if (c) c.archived = true;
    },
    addUser(id) {
      users.add(id);
    },
    dmOf: (userId) => dms.get(userId),
    posts: () => posts.map((p) => ({ ...p })),
    clearPosts() {
      posts.length = 0;
    },
    failNext(apiMethod, error, times = 1) {
      apiErrors.push({ method: apiMethod, error, left: times });
    },
    fault(f) {
      faults.add(f);
    },
    clearFaults() {
      faults.clear();
      apiErrors.length = 0;
    },
    retryAfterViolations: () => faults.retryAfterViolations(),
    rateLimited: () => new Map(limited),
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return sim;
}
