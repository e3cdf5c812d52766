import { beforeAll, describe, expect, it } from 'vitest';
import { makePerson, makeTicket, type TestApp, useTestApp } from '../../../test/app.ts';
import { withTenant } from '../../platform/db/tx.ts';
import {
  BUILTIN_ACKNOWLEDGEMENT,
  BUILTIN_SIGNATURE,
  createTemplate,
  defaultTemplate,
  renderForSending,
  renderMailTemplate,
  SAMPLE_VARIABLES,
  ticketVariables,
  updateTemplate,
} from './templates.ts';

let t: TestApp;
let tokenA: string;
let tokenB: string;

beforeAll(async () => {
  t = await useTestApp();
  tokenA = t.a.adminToken.token;
  tokenB = t.b.adminToken.token;
});

let counter = 0;
const ack = (overrides: Record<string, unknown> = {}) => ({
  kind: 'acknowledgement',
  name: `Ack ${++counter}`,
  subject: 'Got it: {{ ticket.subject }}',
  text: 'Hello {{ requester.name }}, your ticket is {{ ticket.number }}.',
  html: '<p>Hello {{ requester.name }}, your ticket is <b>{{ ticket.number }}</b>.</p>',
  ...overrides,
});

async function create(token: string, body: Record<string, unknown>) {
  const res = await t.call(token, 'POST', '/api/v1/mail-templates', body);
  if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

const RUNAWAY = '{% for i in (1..100000000) %}x{% endfor %}';

describe('keeping mail templates', () => {
  it('creates, reads, lists by kind, replaces and deletes a template', async () => {
    const res = await t.call(tokenA, 'POST', '/api/v1/mail-templates', ack({ name: '  Welcome  ' }));
    expect(res.status).toBe(201);
    expect(res.headers['location']).toBe(`/api/v1/mail-templates/${res.body.id}`);
    expect(res.body).toMatchObject({
      kind: 'acknowledgement',
      name: 'Welcome',
      subject: 'Got it: {{ ticket.subject }}',
      text: 'Hello {{ requester.name }}, your ticket is {{ ticket.number }}.',
      html: '<p>Hello {{ requester.name }}, your ticket is <b>{{ ticket.number }}</b>.</p>',
    });
    const id = res.body.id as string;
    expect((await t.call(tokenA, 'GET', `/api/v1/mail-templates/${id}`)).body).toEqual(res.body);

    const signature = await create(tokenA, { kind: 'signature', name: 'Plain', text: '{{ agent.name }}' });
    expect(signature).toMatchObject({ subject: '', html: null });
    const acks = await t.call(tokenA, 'GET', '/api/v1/mail-templates?kind=acknowledgement');
    expect(acks.body.items.map((i: { id: string }) => i.id)).toContain(id);
    expect(acks.body.items.every((i: { kind: string }) => i.kind === 'acknowledgement')).toBe(true);

    // PUT replaces: what the body leaves out (html) becomes empty.
    const put = await t.call(tokenA, 'PUT', `/api/v1/mail-templates/${id}`, {
      kind: 'acknowledgement',
      name: 'Welcome back',
      subject: 'Thanks',
      text: 'Thanks, {{ requester.name }}',
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ id, name: 'Welcome back', subject: 'Thanks', html: null });
    expect(put.body.createdAt).toBe(res.body.createdAt);
    expect(new Date(put.body.updatedAt).getTime()).toBeGreaterThanOrEqual(
      new Date(res.body.updatedAt).getTime(),
    );

    expect((await t.call(tokenA, 'DELETE', `/api/v1/mail-templates/${id}`)).status).toBe(204);
    expect((await t.call(tokenA, 'GET', `/api/v1/mail-templates/${id}`)).status).toBe(404);
    expect((await t.call(tokenA, 'DELETE', `/api/v1/mail-templates/${id}`)).body.code).toBe('not_found');
  });

  it('pages the list newest first with a cursor', async () => {
    for (let i = 0; i < 3; i++) await create(tokenB, { kind: 'signature', name: `Page ${i}`, text: 'x' });
    const first = await t.call(tokenB, 'GET', '/api/v1/mail-templates?kind=signature&limit=2');
    expect(first.body.items.map((i: { name: string }) => i.name)).toEqual(['Page 2', 'Page 1']);
    const second = await t.call(
      tokenB,
      'GET',
      `/api/v1/mail-templates?kind=signature&limit=2&cursor=${first.body.nextCursor}`,
    );
    expect(second.body.items.map((i: { name: string }) => i.name)).toEqual(['Page 0']);
    expect(second.body.nextCursor).toBeNull();
    expect((await t.call(tokenB, 'GET', '/api/v1/mail-templates?cursor=nope')).body.code).toBe(
      'invalid_cursor',
    );
  });

  it('refuses a second template of the same name in a kind, whatever the case (409), also by PUT', async () => {
    await create(tokenA, ack({ name: 'Duplicate' }));
    const again = await t.call(tokenA, 'POST', '/api/v1/mail-templates', ack({ name: 'DUPLICATE' }));
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'conflict', field: 'name' });
    // Another kind may use the name.
    await create(tokenA, { kind: 'signature', name: 'duplicate', text: 'x' });
    const other = await create(tokenA, ack({ name: 'Other' }));
    const renamed = await t.call(tokenA, 'PUT', `/api/v1/mail-templates/${other.id}`, {
      ...ack({ name: 'duplicate' }),
    });
    expect(renamed.status).toBe(409);
    expect((await t.call(tokenA, 'GET', `/api/v1/mail-templates/${other.id}`)).body.name).toBe('Other');
  });

  it('answers a template that does not parse with validation_failed naming the part and the parser message', async () => {
    const res = await t.call(
      tokenA,
      'POST',
      '/api/v1/mail-templates',
      ack({ subject: 'Hi {{ ticket.subject', text: '{% if %}x{% endif %}', html: '{% for x in y %}' }),
    );
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(res.body.errors).toEqual([
      { path: '/subject', message: expect.stringContaining('not closed, line:1') },
      { path: '/text', message: expect.stringContaining('line:1, col:') },
      { path: '/html', message: expect.stringContaining('tag {% for x in y %} not closed') },
    ]);
    const filter = await t.call(
      tokenA,
      'POST',
      '/api/v1/mail-templates',
      ack({ text: '{{ x | nofilter }}' }),
    );
    expect(filter.body.errors).toEqual([
      { path: '/text', message: expect.stringContaining('undefined filter') },
    ]);
    const update = await create(tokenA, ack());
    const broken = await t.call(tokenA, 'PUT', `/api/v1/mail-templates/${update.id}`, ack({ html: '{{' }));
    expect(broken.status).toBe(400);
    expect(broken.body.errors[0].path).toBe('/html');
  });

  it('needs a subject for an acknowledgement, not for a signature', async () => {
    const res = await t.call(tokenA, 'POST', '/api/v1/mail-templates', ack({ subject: '  ' }));
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([{ path: '/subject', message: expect.any(String) }]);
    expect(
      (await t.call(tokenA, 'POST', '/api/v1/mail-templates', { kind: 'signature', name: 'S', text: 'x' }))
        .status,
    ).toBe(201);
  });
});

describe('what a template cannot do', () => {
  it('reads no file: include, render and layout are refused when the template is saved or previewed', async () => {
    for (const text of [
      "{% include 'x' %}",
      "{% render '/etc/passwd' %}",
      "{% layout 'base' %}",
      "{% if true %}{% include '../../package.json' %}{% endif %}",
      "{% liquid\n  include 'x' %}",
    ]) {
      const saved = await t.call(tokenA, 'POST', '/api/v1/mail-templates', ack({ text }));
      expect(saved.status, text).toBe(400);
      expect(saved.body.errors[0]).toEqual({
        path: '/text',
        message: expect.stringMatching(/the (include|render|layout) tag is not available in mail templates/),
      });
      const previewed = await t.call(tokenA, 'POST', '/api/v1/mail-templates/preview', { text });
      expect(previewed.status).toBe(400);
      expect(previewed.body.errors[0].path).toBe('/text');
    }
    // Nor through the send path: it falls back to the built-in template.
    const sent = renderForSending(
      { subject: 's', text: "{% include 'x' %}", html: null },
      'signature',
      SAMPLE_VARIABLES,
    );
    expect(sent.fallbackReason).toMatch(/include tag is not available/);
    expect(sent.text).toContain(SAMPLE_VARIABLES.agent.name);
  });

  it('bounds a runaway loop: a clear validation error at once, no hang', async () => {
    const saved = await t.call(tokenA, 'POST', '/api/v1/mail-templates', ack({ text: RUNAWAY }));
    expect(saved.status).toBe(400);
    expect(saved.body.errors).toEqual([
      { path: '/text', message: expect.stringContaining('memory alloc limit exceeded') },
    ]);
    const nested = '{% for i in (1..1000) %}{% for j in (1..1000) %}x{% endfor %}{% endfor %}';
    const previewed = await t.call(tokenA, 'POST', '/api/v1/mail-templates/preview', {
      subject: 'ok',
      text: 'ok',
      html: nested,
    });
    expect(previewed.status).toBe(400);
    // Whichever bound it meets first: the output's size, or (on a machine that is busy) the time.
    expect(previewed.body.errors).toEqual([
      {
        path: '/html',
        message: expect.stringMatching(/memory alloc limit exceeded|template render limit exceeded/),
      },
    ]);
    // A loop of a sensible size is fine.
    const small = await t.call(tokenA, 'POST', '/api/v1/mail-templates/preview', {
      text: '{% for i in (1..3) %}{{ i }}{% endfor %}',
    });
    expect(small.body.text).toBe('123');
  });

  it('never lets renderMailTemplate throw anything but a validation error, nor renderForSending at all', () => {
    // Twice: the second render takes the template as parsed for the first, and meets the same bound.
    for (let i = 0; i < 2; i++)
      expect(() => renderMailTemplate({ subject: '', text: RUNAWAY, html: null }, SAMPLE_VARIABLES)).toThrow(
        expect.objectContaining({
          code: 'validation_failed',
          details: { errors: [{ path: '/text', message: expect.stringContaining('limit') }] },
        }),
      );
    const sent = renderForSending(
      { subject: '{{ ticket.subject }}', text: RUNAWAY, html: null },
      'acknowledgement',
      SAMPLE_VARIABLES,
    );
    expect(sent.fallbackReason).toContain('memory alloc limit exceeded');
    expect(sent.subject).toBe(`We received your request: ${SAMPLE_VARIABLES.ticket.subject}`);
    expect(sent.text).toContain(SAMPLE_VARIABLES.ticket.number);
    expect(renderForSending(undefined, 'signature', SAMPLE_VARIABLES)).toMatchObject({
      text: `-- \n${SAMPLE_VARIABLES.agent.name}\n${SAMPLE_VARIABLES.mailbox.name}\n`,
      fallbackReason: null,
    });
  });

  it('sees only the values: no prototype members, unknown names render empty', () => {
    const out = renderMailTemplate(
      { subject: '', text: '[{{ ticket.constructor }}][{{ ticket.__proto__ }}][{{ nope.x }}]', html: null },
      SAMPLE_VARIABLES,
    );
    expect(out.text).toBe('[][][]');
  });
});

describe('rendering', () => {
  it('renders one source again with new values, escaped in the HTML body only, however often', () => {
    const source = 'Hi {{ requester.name }}';
    const template = { subject: source, text: source, html: source };
    for (const name of ['<b>Ann</b>', 'Bob & Co', '<b>Ann</b>']) {
      const vars = { ...SAMPLE_VARIABLES, requester: { ...SAMPLE_VARIABLES.requester, name } };
      const escaped = name.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
      expect(renderMailTemplate(template, vars)).toEqual({
        subject: `Hi ${name}`,
        text: `Hi ${name}`,
        html: `Hi ${escaped}`,
      });
    }
  });

  it('escapes variables in the HTML body only', async () => {
    const ticket = await makeTicket(t, tokenA, {
      subject: 'Broken <b>bold</b>',
      requester: { email: 'mallory@example.com', name: '<script>alert(1)</script>' },
    });
    const res = await t.call(tokenA, 'POST', '/api/v1/mail-templates/preview', {
      subject: '{{ requester.name }} / {{ ticket.subject }}',
      text: 'Hi {{ requester.name }}',
      html: '<p>Hi {{ requester.name }}, {{ ticket.subject }}</p>',
      ticketId: ticket.id,
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      subject: '<script>alert(1)</script> / Broken <b>bold</b>',
      text: 'Hi <script>alert(1)</script>',
      html: '<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;, Broken &lt;b&gt;bold&lt;/b&gt;</p>',
    });
  });

  it('previews a stored template with a ticket: its number, requester and the caller as agent', async () => {
    const ticket = await makeTicket(t, tokenA, {
      subject: 'VPN down',
      requester: { email: 'Carol@Example.com', name: 'Carol' },
    });
    const template = await create(
      tokenA,
      ack({
        subject: 'Re: {{ ticket.subject }} ({{ ticket.status }}, {{ ticket.priority }})',
        text: '{{ ticket.number }} for {{ requester.name }} <{{ requester.email }}> from {{ agent.name }} [{{ portal.link }}]',
      }),
    );
    const me = (await t.call(tokenA, 'GET', '/api/v1/me')).body;
    const res = await t.call(tokenA, 'POST', `/api/v1/mail-templates/${template.id}/preview`, {
      ticketId: ticket.id,
    });
    expect(res.status).toBe(200);
    expect(res.body.subject).toBe('Re: VPN down (new, normal)');
    expect(res.body.text).toBe(
      `${ticket.number} for Carol <Carol@Example.com> from ${me.person.displayName} []`,
    );
    expect(res.body.html).toContain(`<b>${ticket.number}</b>`);

    // The console is for agents: customers' mail never links to it, public URL or not.
    t.config.publicUrl = 'https://desk.example';
    try {
      const linked = await t.call(tokenA, 'POST', '/api/v1/mail-templates/preview', {
        text: '[{{ portal.link }}]',
        ticketId: ticket.id,
      });
      expect(linked.body.text).toBe('[]');
    } finally {
      t.config.publicUrl = undefined;
    }
  });

  it('previews with the documented sample values without a ticket', async () => {
    const template = await create(
      tokenA,
      ack({ text: '{{ ticket.number }} {{ requester.email }} {{ mailbox.address }}' }),
    );
    const res = await t.call(tokenA, 'POST', `/api/v1/mail-templates/${template.id}/preview`, {});
    expect(res.body).toEqual({
      subject: `Got it: ${SAMPLE_VARIABLES.ticket.subject}`,
      text: 'T-1234 carol@example.com support@example.com',
      html: '<p>Hello Carol Customer, your ticket is <b>T-1234</b>.</p>',
    });
  });

  it('makes the subject one line of at most 998 characters', () => {
    const out = renderMailTemplate(
      { subject: ' a\r\nBcc: x@example.com\n{{ ticket.subject }} ', text: '', html: null },
      SAMPLE_VARIABLES,
    );
    expect(out.subject).toBe(`a Bcc: x@example.com ${SAMPLE_VARIABLES.ticket.subject}`);
    const long = renderMailTemplate(
      { subject: `${'é'.repeat(997)}😀😀`, text: '', html: null },
      SAMPLE_VARIABLES,
    );
    expect(long.subject).toBe('é'.repeat(997));
    expect(
      renderMailTemplate({ subject: 'x'.repeat(5000), text: '', html: null }, SAMPLE_VARIABLES).subject,
    ).toHaveLength(998);
  });

  it('renders the built-in templates, with the portal link only when there is one', () => {
    const ack = renderMailTemplate(BUILTIN_ACKNOWLEDGEMENT, SAMPLE_VARIABLES);
    expect(ack.subject).toBe('We received your request: Printer on floor 3 is jammed');
    expect(ack.text).toContain('T-1234');
    expect(ack.text).toContain('reply to this email');
    expect(ack.text).toContain(SAMPLE_VARIABLES.portal.link);
    expect(ack.html).toContain(`<a href="${SAMPLE_VARIABLES.portal.link}">`);
    const noLink = renderMailTemplate(BUILTIN_ACKNOWLEDGEMENT, { ...SAMPLE_VARIABLES, portal: { link: '' } });
    expect(noLink.text).not.toContain('follow your request');
    expect(noLink.html).not.toContain('<a ');
    expect(renderMailTemplate(BUILTIN_SIGNATURE, SAMPLE_VARIABLES).html).toBe('<p>Alex Agent<br>Support</p>');
  });
});

describe('operations for sending', () => {
  it('defaultTemplate: the one named default, else the one changed last, else none', async () => {
    const tenant = t.b.tenant.id;
    await withTenant(t.db.pool, tenant, async (tx) => {
      expect(await defaultTemplate(tx, 'acknowledgement')).toBeUndefined();
    });
    const alpha = await withTenant(t.db.pool, tenant, (tx) =>
      createTemplate(tx, { kind: 'acknowledgement', name: 'Alpha', subject: 's', text: 'a' }),
    );
    await withTenant(t.db.pool, tenant, (tx) =>
      createTemplate(tx, { kind: 'acknowledgement', name: 'Beta', subject: 's', text: 'b' }),
    );
    expect((await withTenant(t.db.pool, tenant, (tx) => defaultTemplate(tx, 'acknowledgement')))?.name).toBe(
      'Beta',
    );
    await withTenant(t.db.pool, tenant, (tx) => updateTemplate(tx, alpha.id, { text: 'a2' }));
    expect((await withTenant(t.db.pool, tenant, (tx) => defaultTemplate(tx, 'acknowledgement')))?.name).toBe(
      'Alpha',
    );
    await withTenant(t.db.pool, tenant, (tx) =>
      createTemplate(tx, { kind: 'acknowledgement', name: 'DeFault', subject: 's', text: 'd' }),
    );
    await withTenant(t.db.pool, tenant, (tx) => updateTemplate(tx, alpha.id, { text: 'a3' }));
    expect((await withTenant(t.db.pool, tenant, (tx) => defaultTemplate(tx, 'acknowledgement')))?.name).toBe(
      'DeFault',
    );
    // Tenant A's templates are not tenant B's.
    expect(
      (await withTenant(t.db.pool, t.a.tenant.id, (tx) => defaultTemplate(tx, 'acknowledgement')))?.name,
    ).not.toBe('DeFault');
  });

  it("ticketVariables: the ticket's values, the assignee as agent unless told, the mailbox given", async () => {
    const agent = await makePerson(t, tokenA, { kind: 'agent', displayName: 'Dana Desk' });
    const ticket = await makeTicket(t, tokenA, {
      subject: 'Printer',
      priority: 'high',
      requester: { email: 'erin@example.com', name: 'Erin' },
      assigneeId: agent.id,
    });
    const vars = await withTenant(t.db.pool, t.a.tenant.id, (tx) =>
      ticketVariables(tx, {
        ticketId: ticket.id,
        mailbox: {
          address: 'help@example.com',
          displayName: null,
          settings: { outbound: { portalLink: 'https://portal.example/requests/{number}?from=mail' } },
        },
      }),
    );
    expect(vars).toEqual({
      ticket: { number: ticket.number, subject: 'Printer', status: 'new', priority: 'high' },
      requester: { name: 'Erin', email: 'erin@example.com' },
      agent: { name: 'Dana Desk', email: agent.email },
      mailbox: { address: 'help@example.com', name: '' },
      // The mailbox's customer portal, with the ticket's number.
      portal: { link: `https://portal.example/requests/${ticket.number}?from=mail` },
    });
    const noAgent = await withTenant(t.db.pool, t.a.tenant.id, (tx) =>
      ticketVariables(tx, { ticketId: ticket.id, agentId: null }),
    );
    expect(noAgent).toMatchObject({ agent: { name: '', email: '' }, mailbox: { address: '', name: '' } });
    expect(noAgent.portal.link).toBe('');
    await expect(
      withTenant(t.db.pool, t.b.tenant.id, (tx) => ticketVariables(tx, { ticketId: ticket.id })),
    ).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('access', () => {
  it("keeps each tenant's templates and tickets to itself (404)", async () => {
    const template = await create(tokenA, ack());
    const ticket = await makeTicket(t, tokenA);
    const url = `/api/v1/mail-templates/${template.id}`;
    expect((await t.call(tokenB, 'GET', url)).status).toBe(404);
    expect((await t.call(tokenB, 'PUT', url, ack())).status).toBe(404);
    expect((await t.call(tokenB, 'DELETE', url)).status).toBe(404);
    const preview = await t.call(tokenB, 'POST', `${url}/preview`, {});
    expect(preview.status).toBe(404);
    expect(preview.body.code).toBe('not_found');
    const list = await t.call(tokenB, 'GET', '/api/v1/mail-templates');
    expect(list.body.items.map((i: { id: string }) => i.id)).not.toContain(template.id);

    const own = await create(tokenB, ack());
    const withTicket = await t.call(tokenB, 'POST', `/api/v1/mail-templates/${own.id}/preview`, {
      ticketId: ticket.id,
    });
    expect(withTicket.status).toBe(404);
    expect(withTicket.body.code).toBe('not_found');
    expect(
      (await t.call(tokenB, 'POST', '/api/v1/mail-templates/preview', { text: 'x', ticketId: ticket.id }))
        .status,
    ).toBe(404);
    // Still there for its own tenant, unchanged.
    expect((await t.call(tokenA, 'GET', url)).body).toEqual(template);
  });

  it('is for admins: agent and viewer tokens get 403', async () => {
    const template = await create(tokenA, ack());
    for (const role of ['agent', 'viewer', 'integration']) {
      const token = (await t.call(tokenA, 'POST', '/api/v1/tokens', { role })).body.token as string;
      const calls: [string, string, unknown?][] = [
        ['GET', '/api/v1/mail-templates'],
        ['POST', '/api/v1/mail-templates', ack()],
        ['GET', `/api/v1/mail-templates/${template.id}`],
        ['PUT', `/api/v1/mail-templates/${template.id}`, ack()],
        ['DELETE', `/api/v1/mail-templates/${template.id}`],
        ['POST', '/api/v1/mail-templates/preview', { text: 'x' }],
        ['POST', `/api/v1/mail-templates/${template.id}/preview`, {}],
      ];
      for (const [method, url, body] of calls) {
        const res = await t.call(token, method as 'GET', url, body);
        expect(res.status, `${role} ${method} ${url}`).toBe(403);
        expect(res.body.code).toBe('forbidden');
      }
    }
  });
});
