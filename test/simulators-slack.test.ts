// The Slack simulator's own behaviour (no database), through plain fetch: Slack's error shapes
// (HTTP 200 with ok:false, 429 with Retry-After), token checks, channels and DMs, the message and
// block limits, the per-channel rate limit, faults and the control API.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SlackSimulator, startSlackSimulator } from '../simulators/slack.ts';

let sim: SlackSimulator;

beforeEach(async () => {
  sim = await startSlackSimulator({ seed: 7 });
  sim.addChannel({ id: 'C0GENERAL1', name: 'general' });
  sim.addChannel({ id: 'C0OUTSIDE1', name: 'outside', botIsMember: false });
  sim.addChannel({ id: 'C0ARCHIVE1', name: 'old', archived: true });
  sim.addUser('U0ALICE001');
});
afterEach(() => sim.close());

async function api(method: string, args: Record<string, unknown> = {}, token: string | null = sim.botToken) {
  const res = await fetch(`${sim.apiBaseUrl}/${method}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json; charset=utf-8',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(args),
  });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body, headers: res.headers };
}

const post = (channel: string, extra: Record<string, unknown> = {}) =>
  api('chat.postMessage', { channel, text: 'hello', ...extra });

describe('tokens', () => {
  it('auth.test names the workspace and bot of a valid token', async () => {
    const res = await api('auth.test');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-slack-req-id')).toBeTruthy();
    expect(res.body).toMatchObject({
      ok: true,
      team_id: sim.team.id,
      team: sim.team.name,
      user_id: sim.botUserId,
    });
  });

  it('answers not_authed, invalid_auth, token_revoked and account_inactive with HTTP 200', async () => {
    const revoked = sim.issueToken();
    sim.revokeToken(revoked);
    const inactive = sim.issueToken();
    sim.deactivateToken(inactive);
    const cases: [string | null, string][] = [
      [null, 'not_authed'],
      ['xoxb-1-2-unknown', 'invalid_auth'],
      [revoked, 'token_revoked'],
      [inactive, 'account_inactive'],
    ];
    for (const [token, error] of cases) {
      const res = await api('auth.test', {}, token);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ok: false, error });
    }
    expect((await post('C0GENERAL1', {})).status).toBe(200);
    expect((await api('chat.postMessage', { channel: 'C0GENERAL1', text: 'x' }, revoked)).body.error).toBe(
      'token_revoked',
    );
    expect(sim.posts()).toHaveLength(1);
  });
});

describe('chat.postMessage', () => {
  it('posts to a channel and records it; a user id posts in the DM with them', async () => {
    const blocks = [{ type: 'header', text: { type: 'plain_text', text: 'Hi' } }];
    const res = await post('C0GENERAL1', { blocks });
    expect(res.body).toMatchObject({
      ok: true,
      channel: 'C0GENERAL1',
      ts: expect.stringMatching(/^\d+\.\d{6}$/),
    });
    const dm = await post('U0ALICE001');
    expect(dm.body.ok).toBe(true);
    expect(dm.body.channel).toBe(sim.dmOf('U0ALICE001'));
    expect(dm.body.channel).toMatch(/^D/);
    const posts = sim.posts();
    expect(posts.map((p) => [p.channel, p.requested, p.ts])).toEqual([
      ['C0GENERAL1', 'C0GENERAL1', res.body.ts],
      [dm.body.channel, 'U0ALICE001', dm.body.ts],
    ]);
    expect(posts[0]!.blocks).toEqual(blocks);
    expect(Number(dm.body.ts)).toBeGreaterThan(Number(res.body.ts));
  });

  it("answers Slack's errors for channels it cannot post in", async () => {
    expect((await post('C0NOWHERE1')).body).toEqual({ ok: false, error: 'channel_not_found' });
    expect((await post('U0NOBODY01')).body).toEqual({ ok: false, error: 'channel_not_found' });
    expect((await post('C0OUTSIDE1')).body).toEqual({ ok: false, error: 'not_in_channel' });
    expect((await post('C0ARCHIVE1')).body).toEqual({ ok: false, error: 'is_archived' });
    expect(sim.posts()).toEqual([]);
  });

  it('refuses an empty message, text over 40,000 characters and blocks over their limits', async () => {
    expect((await post('C0GENERAL1', { text: '' })).body.error).toBe('no_text');
    expect((await post('C0GENERAL1', { text: 'x'.repeat(40_001) })).body.error).toBe('msg_too_long');
    expect((await post('C0GENERAL1', { text: 'x'.repeat(40_000) })).body.ok).toBe(true);
    const header = (text: string) => [{ type: 'header', text: { type: 'plain_text', text } }];
    expect((await post('C0GENERAL1', { blocks: header('h'.repeat(151)) })).body.error).toBe('invalid_blocks');
    expect((await post('C0GENERAL1', { blocks: header('h'.repeat(150)) })).body.ok).toBe(true);
    const section = [{ type: 'section', text: { type: 'mrkdwn', text: 's'.repeat(3001) } }];
    expect((await post('C0GENERAL1', { blocks: section })).body.error).toBe('invalid_blocks');
  });

  it('limits each channel to about one post a second after a burst, with 429 and Retry-After', async () => {
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await post('C0GENERAL1'));
    expect(answers.slice(0, 3).map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers[3]!.status).toBe(429);
    expect(answers[3]!.body).toEqual({ ok: false, error: 'ratelimited' });
    expect(Number(answers[3]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Another channel has its own bucket.
    expect((await post('U0ALICE001')).status).toBe(200);
    expect(sim.rateLimited().get('C0GENERAL1')).toBe(1);
    expect(sim.posts()).toHaveLength(4);
  });
});

describe('conversations.info', () => {
  it('describes a channel, or answers channel_not_found', async () => {
    const res = await api('conversations.info', { channel: 'C0OUTSIDE1' });
    expect(res.body).toMatchObject({
      ok: true,
      channel: { id: 'C0OUTSIDE1', name: 'outside', is_member: false },
    });
    expect((await api('conversations.info', { channel: 'C0NOWHERE1' })).body.error).toBe('channel_not_found');
  });
});

describe('faults', () => {
  it('answers an injected status (429 with Retry-After in JSON, 5xx without a body of the API)', async () => {
    sim.fault({ pathPrefix: '/api/chat.postMessage', status: 429, retryAfter: 9 });
    sim.fault({ pathPrefix: '/api/chat.postMessage', status: 503 });
    const limited = await post('C0GENERAL1');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('9');
    expect(limited.body).toEqual({ ok: false, error: 'ratelimited' });
    // Coming back before the 9 seconds are up is counted.
    const down = await post('C0GENERAL1');
    expect(down.status).toBe(503);
    expect(typeof down.body).toBe('string');
    expect(sim.retryAfterViolations()).toBe(1);
    expect((await post('C0GENERAL1')).status).toBe(200);
  });

  it('answers a named API error for the next calls of a method', async () => {
    sim.failNext('chat.postMessage', 'fatal', 2);
    expect((await post('C0GENERAL1')).body).toEqual({ ok: false, error: 'fatal' });
    expect((await api('auth.test')).body.ok).toBe(true);
    expect((await post('C0GENERAL1')).body.error).toBe('fatal');
    expect((await post('C0GENERAL1')).body.ok).toBe(true);
  });

  it('answers unknown methods with unknown_method, and takes faults and channels over its control API', async () => {
    const unknown = await api('chat.deleteEverything');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ ok: false, error: 'unknown_method' });
    const control = (path: string, body: unknown) =>
      fetch(`${sim.url}/_control${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await control('/channels', { id: 'C0NEWCHAN1', name: 'new' })).status).toBe(204);
    expect((await control('/faults', { pathPrefix: '/api/auth.test', status: 500 })).status).toBe(204);
    expect((await api('auth.test')).status).toBe(500);
    expect((await post('C0NEWCHAN1')).body.ok).toBe(true);
    const listed = (await (await fetch(`${sim.url}/_control/posts`)).json()) as any;
    expect(listed.posts.map((p: any) => p.channel)).toEqual(['C0NEWCHAN1']);
    expect(listed.posts[0].token).toBeUndefined();
  });
});
