// The hostile-input sweep: every operation of the served OpenAPI document gets hostile values, one at a
// time, in an otherwise valid request (path parameters, query parameters, each field of the JSON body
// as its schema describes it, the body as a whole, the media type), and every answer must be a 4xx
// or 2xx: never a 5xx, and every refusal application/problem+json with a code of the catalogue. Values
// that can never be taken (a NUL, an unpaired surrogate, a wrong type, JSON nested 10,000 deep, a
// number that is not an integer where one is required, ...) must be refused. Each operation's valid
// request is sent after its hostile ones and must succeed, which shows that the hostile values were
// tried where they reach the deepest validation and the handler.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type GmailSimulator, startGmailSimulator } from '../simulators/gmail.ts';
import { type SlackSimulator, startSlackSimulator } from '../simulators/slack.ts';
import { queueDelivery } from '../src/modules/outbound/ledger.ts';
import { uuidv7 } from '../src/platform/ids.ts';
import { processInbound } from '../src/modules/inbound/process.ts';
import { recordGraphSubscription } from '../src/modules/inbound/mailboxes.ts';
import { recordUnmapped } from '../src/modules/people/unmapped.ts';
import { setAgentPassword } from '../src/modules/sessions/accounts.ts';
import { withTenant } from '../src/platform/db/tx.ts';
import { ERROR_CODES, type ErrorCode } from '../src/platform/errors.ts';
import { HTTP_STATUS, PROBLEM_TYPE_BASE } from '../src/platform/http/problem.ts';
import { makePerson, makeTicket, type TestApp, useTestApp } from './app.ts';

// ---------------------------------------------------------------------------------------------------
// The OpenAPI document

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  maxItems?: number;
}

interface Parameter {
  in: 'path' | 'query' | 'header';
  name: string;
  schema: JsonSchema;
}

export interface Operation {
  /** "POST /api/v1/tickets/{id}/messages" */
  name: string;
  method: string;
  path: string;
  parameters: Parameter[];
  /** The JSON body's schema, when the operation takes JSON. */
  body: JsonSchema | undefined;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

export async function loadOperations(t: TestApp): Promise<Operation[]> {
  const res = await t.app.inject({ method: 'GET', url: '/docs/json' });
  if (res.statusCode !== 200) throw new Error(`/docs/json answered ${res.statusCode}`);
  const doc = res.json() as {
    paths: Record<
      string,
      Record<
        string,
        { parameters?: Parameter[]; requestBody?: { content: Record<string, { schema: JsonSchema }> } }
      >
    >;
  };
  return Object.entries(doc.paths)
    .flatMap(([path, item]) =>
      METHODS.filter((m) => item[m]).map((m) => {
        const op = item[m]!;
        return {
          name: `${m.toUpperCase()} ${path}`,
          method: m.toUpperCase(),
          path,
          parameters: op.parameters ?? [],
          body: op.requestBody?.content['application/json']?.schema,
        };
      }),
    )
    .sort((a, b) => a.name.localeCompare(b.name));
}

// ---------------------------------------------------------------------------------------------------
// JSON that JSON.stringify cannot write

/** JSON text put in the body exactly as written: numbers JavaScript cannot hold, deep nesting. */
export class RawJson {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/** Serialises a value, writing each RawJson as its text. */
export function toJsonText(value: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof RawJson) {
      raws.push(v.text);
      return `\u0001raw${raws.length - 1}\u0001`;
    }
    return v;
  });
  return text.replace(/"\\u0001raw(\d+)\\u0001"/g, (_m, i: string) => raws[Number(i)]!);
}

export const deepObject = (depth: number): RawJson =>
  new RawJson('{"a":'.repeat(depth) + '1' + '}'.repeat(depth));
export const deepArray = (depth: number): RawJson => new RawJson('['.repeat(depth) + ']'.repeat(depth));

/** Base64url of a cursor's JSON, or of any text. */
export const cursorOf = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

const SOME_UUID = '018f4a1e-8c3b-7d2e-9f10-123456789abc';

// ---------------------------------------------------------------------------------------------------
// Checking an answer

/** `refuse`: the value can never be taken, so the answer must be a 4xx. `any`: anything but a 5xx. */
export type Expect = 'refuse' | 'any';

export interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

/** What is wrong with an answer (undefined when nothing is). */
export function judge(answer: Answer, expect: Expect): string | undefined {
  if (answer.status >= 500) return `answered ${answer.status}${codeOf(answer)}`;
  if (expect === 'refuse' && answer.status < 400) return `accepted (${answer.status}) what must be refused`;
  if (answer.status < 400) return undefined;
  const type = String(answer.headers['content-type'] ?? '');
  if (!type.startsWith('application/problem+json')) return `${answer.status} as ${type || 'no content type'}`;
  let problem: { type?: unknown; status?: unknown; code?: unknown; detail?: unknown };
  try {
    problem = JSON.parse(answer.body);
  } catch {
    return `${answer.status} problem+json that is not JSON`;
  }
  if (!ERROR_CODES.includes(problem.code as ErrorCode))
    return `${answer.status} with code ${String(problem.code)}`;
  const code = problem.code as ErrorCode;
  if (HTTP_STATUS[code] !== answer.status || problem.status !== answer.status)
    return `${answer.status} with code ${code} (status ${String(problem.status)})`;
  if (problem.type !== PROBLEM_TYPE_BASE + code)
    return `${answer.status} ${code} with type ${String(problem.type)}`;
  if (/__pgboss|__dlq|SELECT |INSERT |UPDATE |violates|relation "|\n\s+at /.test(String(problem.detail)))
    return `${answer.status} ${code} naming internals: ${String(problem.detail).slice(0, 120)}`;
  return undefined;
}

function codeOf(answer: Answer): string {
  try {
    return ` ${String(JSON.parse(answer.body).code)}`;
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------------
// The valid request of every operation

export interface Fixtures {
  token: string;
  agentId: string;
  person: { id: string; email: string };
  personToDelete: string;
  personWithEmail: { id: string; email: string };
  personWithIdentity: { id: string; kind: string; externalId: string };
  mergeTarget: string;
  mergeSource: string;
  delivery: string;
  ticket: string;
  ticketToDelete: string;
  token2: string;
  tokenToDelete: string;
  personTokenToDelete: string;
  unmapped: string;
  unmappedToDelete: string;
  mailbox: string;
  mailboxToDelete: string;
  graphMailbox: string;
  graphClientState: string;
  gmailMailbox: string;
  gmailUser: string;
  gmailPush: () => Promise<{ authorization: string; body: unknown }>;
  inbound: string;
  failedInbound: string;
  attachment: string;
  calendar: string;
  calendarToDelete: string;
  policy: string;
  policyToDelete: string;
  template: string;
  templateToDelete: string;
  slack: { apiBaseUrl: string; botToken: string };
  rule: string;
  ruleToDelete: string;
  endpoint: string;
  endpointToDelete: string;
  /** A failed webhook attempt of `endpoint`, to replay. */
  endpointDelivery: string;
  /** An agent with a password (signs in), and an invited one (is invited). */
  signInAgent: { email: string; password: string };
  invitee: string;
  /** The first message of `ticket` (the requester's): what a writer saw (seenMessageId). */
  ticketFirstMessage: string;
  cannedReply: string;
  cannedReplyToDelete: string;
}

export interface BaseRequest {
  params?: Record<string, string>;
  query?: Record<string, string>;
  /** The JSON body; more than one when a union has shapes one body cannot show at once. */
  bodies?: unknown[];
  /** A body in another media type (raw mail). */
  raw?: { contentType: string; payload: Buffer };
  headers?: Record<string, string>;
  /** Statuses the valid request answers. */
  ok: number[];
  /** Whether the route is public (hooks) rather than needing a token. */
  public?: boolean;
}

const CANNED = {
  shortcut: 'thanks',
  title: 'Thank you',
  body: 'Hello {{ requester.name }}, {{ ticket.number }}',
};

const MIME = (subject: string, attachment = false): Buffer => {
  const id = randomBytes(6).toString('hex');
  const head = [
    'From: Carol <carol@customer.test>',
    'To: support@helpdesk.test',
    `Subject: ${subject}`,
    `Message-ID: <${id}@customer.test>`,
    'MIME-Version: 1.0',
  ];
  if (!attachment) return Buffer.from([...head, '', `${subject}.`, ''].join('\r\n'));
  return Buffer.from(
    [
      ...head,
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      '',
      `${subject}.`,
      '--b1',
      'Content-Type: application/pdf; name="a.pdf"',
      'Content-Disposition: attachment; filename="a.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('%PDF-1.4 fake').toString('base64'),
      '--b1--',
      '',
    ].join('\r\n'),
  );
};

const CALENDAR = {
  name: 'Office hours',
  timeZone: 'Europe/Berlin',
  weekly: {
    mon: [['09:00', '17:00']],
    tue: [
      ['09:00', '12:00'],
      ['13:00', '17:00'],
    ],
    thu: [['22:00', '06:00']],
  },
  holidays: ['2026-12-24'],
  recurringHolidays: ['01-01'],
};

const targets = { firstResponse: 3600, nextResponse: 7200, resolution: 86400 };
const policyBody = (f: { calendar: string; mailbox: string; agentId: string }) => ({
  name: 'Gold',
  position: 10,
  conditions: { priorities: ['high'], requesterDomains: ['example.com'], mailboxIds: [f.mailbox] },
  calendarId: f.calendar,
  targets: { low: targets, normal: targets, high: targets, urgent: targets },
  pauseStatuses: {
    firstResponse: ['on_hold'],
    nextResponse: ['on_hold'],
    resolution: ['pending', 'on_hold'],
  },
  thresholds: [50, 100],
  escalations: [
    { percent: 120, actions: [{ type: 'notify', role: 'admin', personId: f.agentId }] },
    { percent: 150, actions: [{ type: 'reassign', personId: f.agentId }] },
    { percent: 200, actions: [{ type: 'set_priority', priority: 'urgent' }] },
  ],
  reopen: 'continue',
});

const ACKNOWLEDGEMENT = {
  kind: 'acknowledgement',
  name: 'Sweep',
  subject: 'Re: {{ ticket.subject }}',
  text: 'Hello {{ requester.name }}, we opened {{ ticket.number }}. {{ portal.link }}',
  html: '<p>Hello {{ requester.name }}, we opened <b>{{ ticket.number }}</b>.</p>',
};
const RULE = {
  event: 'ticket.customer_replied',
  recipients: [{ type: 'assignee' }, { type: 'role', role: 'admin' }],
  channel: 'preferred',
  fallback: ['slack', 'email'],
  conditions: { priority: ['high', 'urgent'] },
};
// Loopback: the sweep's app allows private webhook addresses, as tests do.
const ENDPOINT = { url: 'http://127.0.0.1:9/sweep', events: ['ticket.created', 'sla.breached'] };
const SIGNATURE = {
  kind: 'signature',
  name: 'Default',
  text: '-- \n{{ agent.name }}',
  html: '<p>{{ agent.name | upcase }}</p>',
};

/** Creates what the valid requests point at (tenant A). */
export async function makeFixtures(
  t: TestApp,
  gmail: GmailSimulator,
  slack: SlackSimulator,
): Promise<Fixtures> {
  const token = t.a.adminToken.token;
  const ok = async (method: 'POST' | 'PATCH' | 'PUT', url: string, body: unknown) => {
    const res = await t.call(token, method, url, body);
    if (res.status >= 300)
      throw new Error(`fixture ${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  for (const q of [
    'inbound.process',
    'gmail.history',
    'mailbox.lifecycle',
    'mailbox.renew',
    'mailbox.reconcile',
    'outbound.send',
    'mail.acknowledge',
    'mail.delivery-report',
    'notify.deliver',
  ])
    await t.queue.boss.createQueue(q);
  const person = await makePerson(t, token, { kind: 'contact', metadata: { team: 'north', level: 2 } });
  const personWithEmail = await makePerson(t, token, { kind: 'contact' });
  const personWithIdentity = await makePerson(t, token, { kind: 'contact' });
  await ok('POST', `/api/v1/people/${personWithIdentity.id}/identities`, {
    kind: 'slack',
    externalId: 'U0SWEEP',
  });
  const mergeTarget = await makePerson(t, token, { kind: 'contact' });
  const mergeSource = await makePerson(t, token, { kind: 'contact' });
  const personToDelete = await makePerson(t, token, { kind: 'contact' });
  const ticket = await makeTicket(t, token, { requester: { personId: person.id } });
  const ticketToDelete = await makeTicket(t, token);
  const token2 = await ok('POST', '/api/v1/tokens', { role: 'viewer', label: 'two' });
  const tokenToDelete = await ok('POST', '/api/v1/tokens', { role: 'viewer', label: 'gone' });
  const personToken = await ok('POST', `/api/v1/people/${t.a.adminPersonId}/tokens`, {
    role: 'viewer',
    label: 'own',
  });
  for (const externalId of ['U0UNMAPPED1', 'U0UNMAPPED2'])
    await recordUnmapped(t.db.pool, t.a.tenant.id, { kind: 'slack', externalId, displayName: 'Dana' });
  const unmapped = (
    await t.db.admin.query('SELECT id, external_id FROM unmapped_identities WHERE tenant_id = $1', [
      t.a.tenant.id,
    ])
  ).rows as { id: string; external_id: string }[];
  const mailbox = await ok('POST', '/api/v1/mailboxes', { kind: 'mime', address: 'support@helpdesk.test' });
  const mailboxToDelete = await ok('POST', '/api/v1/mailboxes', {
    kind: 'mime',
    address: 'old@helpdesk.test',
  });
  const graphMailbox = await ok('POST', '/api/v1/mailboxes', {
    kind: 'graph',
    address: 'graph@helpdesk.test',
    credentials: { tenantId: 't', clientId: 'c', clientSecret: 's' },
  });
  const graphClientState = randomBytes(16).toString('hex');
  await withTenant(t.db.pool, t.a.tenant.id, (tx) =>
    recordGraphSubscription(tx, graphMailbox.id, {
      subscriptionId: 'sub-sweep',
      clientState: graphClientState,
      expiresAt: new Date(t.clock.now().getTime() + 86_400_000),
    }),
  );
  const gmailUser = 'gmail@helpdesk.test';
  const audience = 'https://relaydesk.example/hooks/gmail';
  const serviceAccountEmail = 'push@sweep.iam.gserviceaccount.com';
  const gmailMailbox = await ok('POST', '/api/v1/mailboxes', {
    kind: 'gmail',
    address: gmailUser,
    settings: {
      gmail: {
        apiBaseUrl: gmail.apiBaseUrl,
        tokenUrl: gmail.tokenUrl,
        jwksUrl: gmail.jwksUrl,
        pushAudience: audience,
        serviceAccountEmail,
      },
    },
    credentials: { ...gmail.credentials },
  });
  // Mail with an attachment, uploaded and processed as a worker would: an inbound record and a file.
  const upload = async (raw: Buffer): Promise<string> => {
    const res = await t.call(token, 'POST', `/api/v1/mailboxes/${mailbox.id}/messages`, raw, {
      'content-type': 'message/rfc822',
    });
    if (res.status !== 202) throw new Error(`fixture upload: ${res.status} ${JSON.stringify(res.body)}`);
    await processInbound(t.inboundDeps(), {
      tenantId: t.a.tenant.id,
      inboundId: res.body.inboundId,
      lastAttempt: false,
    });
    return res.body.inboundId;
  };
  const inbound = await upload(MIME('Printer jammed', true));
  const failedInbound = await upload(MIME('Scanner offline'));
  await t.db.admin.query("UPDATE inbound_messages SET status = 'failed' WHERE id = $1", [failedInbound]);
  const attachment = (
    await t.db.admin.query('SELECT id FROM attachments WHERE tenant_id = $1 LIMIT 1', [t.a.tenant.id])
  ).rows[0].id as string;
  const calendar = await ok('POST', '/api/v1/calendars', CALENDAR);
  const calendarToDelete = await ok('POST', '/api/v1/calendars', { timeZone: 'UTC', alwaysOpen: true });
  const fixtureIds = { calendar: calendar.id, mailbox: mailbox.id, agentId: t.a.adminPersonId };
  const policy = await ok('POST', '/api/v1/sla-policies', policyBody(fixtureIds));
  const policyToDelete = await ok('POST', '/api/v1/sla-policies', { ...policyBody(fixtureIds), name: 'Old' });
  const replied = await ok('POST', `/api/v1/tickets/${ticket.id}/messages`, {
    visibility: 'public',
    text: 'A reply that failed',
  });
  // An attempt that ended without delivering, so that retrying it is a valid request.
  await t.db.admin.query(
    "UPDATE deliveries SET status = 'failed', error_code = 'transient', retryable = false WHERE id = $1",
    [replied.delivery.id],
  );
  const template = await ok('POST', '/api/v1/mail-templates', SIGNATURE);
  const templateToDelete = await ok('POST', '/api/v1/mail-templates', { ...ACKNOWLEDGEMENT, name: 'Old' });
  const cannedReply = await ok('POST', '/api/v1/canned-replies', CANNED);
  const cannedReplyToDelete = await ok('POST', '/api/v1/canned-replies', { ...CANNED, shortcut: 'old' });
  const ticketFirstMessage = (
    await t.db.admin.query(
      'SELECT id FROM ticket_messages WHERE tenant_id = $1 AND ticket_id = $2 ORDER BY created_at LIMIT 1',
      [t.a.tenant.id, ticket.id],
    )
  ).rows[0].id as string;
  const rule = await ok('POST', '/api/v1/notification-rules', RULE);
  const ruleToDelete = await ok('POST', '/api/v1/notification-rules', RULE);
  const endpoint = await ok('POST', '/api/v1/webhook-endpoints', ENDPOINT);
  const endpointToDelete = await ok('POST', '/api/v1/webhook-endpoints', ENDPOINT);
  // An attempt to the endpoint that ended without delivering, so that replaying it is valid.
  const endpointDelivery = await withTenant(t.db.pool, t.a.tenant.id, (tx) =>
    queueDelivery(tx, {
      channel: 'webhook',
      purpose: 'notification',
      destination: endpoint.id,
      ticketId: null,
      ticketMessageId: null,
      mailboxId: null,
      rfcMessageId: null,
      notificationId: uuidv7(),
      payload: {},
    }),
  );
  await t.db.admin.query(
    "UPDATE deliveries SET status = 'failed', error_code = 'transient', retryable = false WHERE id = $1",
    [endpointDelivery],
  );
  const signInAgent = { email: 'sweep.agent@helpdesk.test', password: 'the sweep agent password' };
  const agent = await makePerson(t, token, { kind: 'agent', email: signInAgent.email });
  await setAgentPassword(t.db.pool, {
    tenantId: t.a.tenant.id,
    personId: agent.id,
    password: signInAgent.password,
    now: t.clock.now(),
  });
  const invitee = await makePerson(t, token, { kind: 'agent', status: 'invited' });
  return {
    token,
    agentId: t.a.adminPersonId,
    person: { id: person.id, email: person.email },
    personToDelete: personToDelete.id,
    personWithEmail: { id: personWithEmail.id, email: personWithEmail.email },
    personWithIdentity: { id: personWithIdentity.id, kind: 'slack', externalId: 'U0SWEEP' },
    mergeTarget: mergeTarget.id,
    mergeSource: mergeSource.id,
    ticket: ticket.id,
    ticketToDelete: ticketToDelete.id,
    delivery: replied.delivery.id as string,
    token2: token2.id,
    tokenToDelete: tokenToDelete.id,
    personTokenToDelete: personToken.id,
    unmapped: unmapped[0]!.id,
    unmappedToDelete: unmapped[1]!.id,
    mailbox: mailbox.id,
    mailboxToDelete: mailboxToDelete.id,
    graphMailbox: graphMailbox.id,
    graphClientState,
    gmailMailbox: gmailMailbox.id,
    gmailUser,
    gmailPush: async () => {
      gmail.deliver(gmailUser, MIME('Via Gmail'));
      const authorization = `Bearer ${await gmail.pushToken({ audience, email: serviceAccountEmail })}`;
      return { authorization, body: gmail.pushBody(gmailUser) };
    },
    inbound,
    failedInbound,
    attachment,
    calendar: calendar.id,
    calendarToDelete: calendarToDelete.id,
    policy: policy.id,
    policyToDelete: policyToDelete.id,
    template: template.id,
    templateToDelete: templateToDelete.id,
    slack: { apiBaseUrl: slack.apiBaseUrl, botToken: slack.botToken },
    rule: rule.id,
    ruleToDelete: ruleToDelete.id,
    endpoint: endpoint.id,
    endpointToDelete: endpointToDelete.id,
    endpointDelivery,
    signInAgent,
    invitee: invitee.id,
    ticketFirstMessage,
    cannedReply: cannedReply.id,
    cannedReplyToDelete: cannedReplyToDelete.id,
  };
}

/** The valid request of every operation, by name. */
export function baseRequests(f: Fixtures): Record<string, BaseRequest> {
  const id = (value: string) => ({ id: value });
  const page = { limit: '2' };
  return {
    'GET /api/v1/me': { ok: [200] },
    'POST /api/v1/tokens': {
      bodies: [{ role: 'viewer', label: 'sweep', personId: f.agentId }],
      ok: [201],
    },
    'GET /api/v1/tokens': { query: { ...page, personId: f.agentId }, ok: [200] },
    'GET /api/v1/tokens/{id}': { params: id(f.token2), ok: [200] },
    'DELETE /api/v1/tokens/{id}': { params: id(f.tokenToDelete), ok: [200] },
    'POST /api/v1/people': {
      bodies: [
        {
          displayName: 'Erin',
          kind: 'contact',
          status: 'active',
          emails: ['erin@example.com', 'erin.alt@example.com'],
          email: 'erin@example.com',
          timeZone: 'Europe/Paris',
          preferredChannel: 'email',
          metadata: { team: 'south', tags: ['vip', 'eu'], nested: { level: 1 } },
        },
      ],
      // 409: a hostile variant that may be taken (a big number in metadata) took the address first.
      ok: [201, 409],
    },
    'GET /api/v1/people': { query: { ...page, kind: 'contact', status: 'active', q: 'person' }, ok: [200] },
    'GET /api/v1/people/resolve': { query: { email: f.person.email }, ok: [200] },
    'GET /api/v1/people/{id}': { params: id(f.person.id), ok: [200] },
    'PATCH /api/v1/people/{id}': {
      params: id(f.person.id),
      bodies: [
        {
          displayName: 'Frank',
          kind: 'contact',
          status: 'active',
          emails: [f.person.email, 'frank.alt@example.com'],
          email: f.person.email,
          timeZone: 'America/New_York',
          preferredChannel: 'slack',
          metadata: { team: 'east', tags: ['a'], nested: { level: 3 } },
        },
      ],
      ok: [200],
    },
    'DELETE /api/v1/people/{id}': { params: id(f.personToDelete), ok: [204] },
    'POST /api/v1/people/{id}/emails': {
      params: id(f.person.id),
      bodies: [{ address: 'frank.second@example.com', primary: false }],
      ok: [201],
    },
    'DELETE /api/v1/people/{id}/emails/{address}': {
      params: { id: f.personWithEmail.id, address: f.personWithEmail.email },
      ok: [200],
    },
    'POST /api/v1/people/{id}/identities': {
      params: id(f.person.id),
      bodies: [{ kind: 'github', externalId: 'octo-sweep' }],
      ok: [201],
    },
    'DELETE /api/v1/people/{id}/identities/{kind}/{externalId}': {
      params: {
        id: f.personWithIdentity.id,
        kind: f.personWithIdentity.kind,
        externalId: f.personWithIdentity.externalId,
      },
      ok: [200],
    },
    'GET /api/v1/people/{id}/events': { params: id(f.person.id), query: page, ok: [200] },
    'POST /api/v1/people/{id}/tokens': {
      params: id(f.agentId),
      bodies: [{ label: 'mine', role: 'viewer' }],
      ok: [201],
    },
    'GET /api/v1/people/{id}/tokens': { params: id(f.agentId), query: page, ok: [200] },
    'DELETE /api/v1/people/{id}/tokens/{tokenId}': {
      params: { id: f.agentId, tokenId: f.personTokenToDelete },
      ok: [200],
    },
    'GET /api/v1/unmapped-identities': { query: { ...page, kind: 'slack' }, ok: [200] },
    'POST /api/v1/unmapped-identities/{id}/link': {
      params: id(f.unmapped),
      bodies: [{ personId: f.person.id }],
      ok: [200, 201],
    },
    'DELETE /api/v1/unmapped-identities/{id}': { params: id(f.unmappedToDelete), ok: [204] },
    'POST /api/v1/people/{id}/merge': {
      params: id(f.mergeTarget),
      bodies: [{ sourceId: f.mergeSource }],
      ok: [200],
    },
    'POST /api/v1/tickets': {
      bodies: [
        {
          subject: 'Laptop will not boot',
          requester: { email: 'gina@example.com', name: 'Gina' },
          priority: 'high',
          assigneeId: f.agentId,
          message: { text: 'It beeps three times.', html: '<p>It beeps <b>three</b> times.</p>' },
        },
        { subject: 'Second laptop', requester: { personId: f.person.id }, assigneeId: null },
      ],
      ok: [201],
    },
    'GET /api/v1/tickets': {
      query: {
        ...page,
        status: 'new',
        priority: 'normal',
        assigneeId: f.agentId,
        requesterId: f.person.id,
        q: 'ticket',
        sla: 'paused',
        sort: 'created',
        view: 'open',
        mailboxId: f.mailbox,
        search: 'printer jam',
      },
      ok: [200],
    },
    'POST /api/v1/tickets/bulk': {
      bodies: [
        { ticketIds: [f.ticket], changes: { status: 'open', priority: 'high', assigneeId: f.agentId } },
      ],
      ok: [200],
    },
    'PUT /api/v1/tickets/{id}/presence': {
      params: id(f.ticket),
      bodies: [{ state: 'replying' }, { state: 'viewing', page: 'sweep-page', seq: 1 }],
      ok: [204],
    },
    'DELETE /api/v1/tickets/{id}/presence': {
      params: id(f.ticket),
      query: { page: 'sweep-page', seq: '2' },
      ok: [204],
    },
    'GET /api/v1/tickets/{id}/presence': { params: id(f.ticket), ok: [200] },
    'GET /api/v1/tickets/{id}/history': { params: id(f.ticket), ok: [200] },
    'GET /api/v1/stream': { ok: [200] },
    'GET /api/v1/canned-replies': { query: { ...page, q: 'th' }, ok: [200] },
    'POST /api/v1/canned-replies': { bodies: [{ ...CANNED, shortcut: 'sweep' }], ok: [201, 409] },
    'GET /api/v1/canned-replies/{id}': { params: id(f.cannedReply), ok: [200] },
    'PUT /api/v1/canned-replies/{id}': { params: id(f.cannedReply), bodies: [CANNED], ok: [200] },
    'DELETE /api/v1/canned-replies/{id}': { params: id(f.cannedReplyToDelete), ok: [204] },
    'POST /api/v1/canned-replies/{id}/render': {
      params: id(f.cannedReply),
      bodies: [{ ticketId: f.ticket }],
      ok: [200],
    },
    'GET /api/v1/tickets/{id}': { params: id(f.ticket), ok: [200] },
    'DELETE /api/v1/tickets/{id}': { params: id(f.ticketToDelete), ok: [204] },
    'PATCH /api/v1/tickets/{id}': {
      params: id(f.ticket),
      bodies: [{ status: 'open', priority: 'high', assigneeId: f.agentId, subject: 'Renamed' }],
      ok: [200],
    },
    'POST /api/v1/tickets/{id}/messages': {
      params: id(f.ticket),
      bodies: [
        {
          text: 'Have you tried turning it off?',
          html: '<p>Off and on</p>',
          visibility: 'public',
          seenMessageId: f.ticketFirstMessage,
        },
      ],
      ok: [201],
    },
    'GET /api/v1/tickets/{id}/messages': {
      params: id(f.ticket),
      query: { ...page, visibility: 'public' },
      ok: [200],
    },
    'GET /api/v1/deliveries': {
      query: {
        ...page,
        ticketId: f.ticket,
        ticketNumber: 'T-1',
        channel: 'email',
        purpose: 'reply',
        destination: 'someone@example.com',
        status: 'failed',
        errorCode: 'transient',
        from: '2020-01-01T00:00:00Z',
        to: '2100-01-01T00:00:00Z',
      },
      ok: [200],
    },
    'GET /api/v1/deliveries/{id}': { params: id(f.delivery), ok: [200] },
    'POST /api/v1/deliveries/{id}/retry': { params: id(f.delivery), ok: [202, 400] },
    'GET /api/v1/queue/stats': { query: { queue: 'inbound.process' }, ok: [200] },
    'GET /api/v1/queue/dlq': { query: { queue: 'inbound.process' }, ok: [200] },
    'POST /api/v1/queue/dlq/redrive': { query: { queue: 'inbound.process' }, ok: [200] },
    'POST /api/v1/mailboxes': {
      bodies: [
        {
          kind: 'imap',
          address: 'imap@helpdesk.test',
          displayName: 'IMAP desk',
          settings: {
            createContacts: true,
            automaticMayOpenTickets: false,
            maxMessageBytes: 1048576,
            reopenWithinDays: 7,
            imap: { host: '127.0.0.1', port: 1, secure: false, user: 'desk', folder: 'INBOX' },
          },
          credentials: { password: 'secret' },
        },
      ],
      // 409: a hostile variant that may be taken took the address first.
      ok: [201, 409],
    },
    'GET /api/v1/mailboxes': { query: page, ok: [200] },
    'GET /api/v1/mailboxes/{id}': { params: id(f.mailbox), ok: [200] },
    'GET /api/v1/mailboxes/{id}/health': { params: id(f.mailbox), ok: [200] },
    // Enqueued only (this app runs no workers); 409 once one is claimed.
    'POST /api/v1/mailboxes/{id}/renew': { params: id(f.graphMailbox), ok: [202, 409] },
    'POST /api/v1/mailboxes/{id}/reconcile': { params: id(f.graphMailbox), ok: [202, 409] },
    'POST /api/v1/mailboxes/{id}/test': { params: id(f.mailbox), ok: [200] },
    'POST /api/v1/mailboxes/{id}/connect': {
      params: id(f.gmailMailbox),
      query: { returnTo: '/console/mailboxes' },
      ok: [200],
    },
    'PATCH /api/v1/mailboxes/{id}': {
      params: id(f.mailbox),
      bodies: [
        {
          address: 'support@helpdesk.test',
          displayName: 'Support',
          settings: {
            reopenWithinDays: 30,
            graph: {
              apiBaseUrl: 'https://graph.microsoft.com/v1.0',
              tokenUrl: 'https://login.microsoftonline.com/common/oauth2/v2.0/token',
            },
          },
          credentials: null,
        },
        { credentials: { user: 'x', password: 'y' } },
      ],
      ok: [200],
    },
    'DELETE /api/v1/mailboxes/{id}': { params: id(f.mailboxToDelete), ok: [204] },
    'POST /api/v1/mailboxes/{id}/messages': {
      params: id(f.mailbox),
      raw: { contentType: 'message/rfc822', payload: MIME('Uploaded by the sweep') },
      ok: [202],
    },
    'GET /api/v1/inbound': { query: { ...page, mailboxId: f.mailbox, status: 'created' }, ok: [200] },
    'GET /api/v1/inbound/{id}': { params: id(f.inbound), ok: [200] },
    'POST /api/v1/inbound/{id}/reprocess': { params: id(f.failedInbound), ok: [202] },
    'GET /api/v1/attachments/{id}': { params: id(f.attachment), ok: [200] },
    'POST /api/v1/calendars': { bodies: [CALENDAR], ok: [201] },
    'GET /api/v1/calendars': { query: page, ok: [200] },
    'GET /api/v1/calendars/{id}': { params: id(f.calendar), ok: [200] },
    'PUT /api/v1/calendars/{id}': { params: id(f.calendar), bodies: [CALENDAR], ok: [200] },
    'DELETE /api/v1/calendars/{id}': { params: id(f.calendarToDelete), ok: [204] },
    'POST /api/v1/sla-policies': { bodies: [policyBody(f)], ok: [201] },
    'GET /api/v1/sla-policies': { ok: [200] },
    'GET /api/v1/sla-policies/{id}': { params: id(f.policy), ok: [200] },
    'PUT /api/v1/sla-policies/{id}': { params: id(f.policy), bodies: [policyBody(f)], ok: [200] },
    'DELETE /api/v1/sla-policies/{id}': { params: id(f.policyToDelete), ok: [204] },
    'GET /api/v1/tickets/{id}/sla': { params: id(f.ticket), ok: [200] },
    'GET /api/v1/tickets/{id}/sla/events': { params: id(f.ticket), query: page, ok: [200] },
    // 409: a hostile variant that may be taken (another name, a longer text) took the name first.
    'POST /api/v1/mail-templates': { bodies: [ACKNOWLEDGEMENT], ok: [201, 409] },
    'GET /api/v1/mail-templates': { query: { ...page, kind: 'acknowledgement' }, ok: [200] },
    'GET /api/v1/mail-templates/{id}': { params: id(f.template), ok: [200] },
    'PUT /api/v1/mail-templates/{id}': {
      params: id(f.template),
      bodies: [{ ...SIGNATURE, subject: '' }],
      ok: [200],
    },
    'DELETE /api/v1/mail-templates/{id}': { params: id(f.templateToDelete), ok: [204] },
    'POST /api/v1/mail-templates/preview': {
      bodies: [
        {
          kind: 'acknowledgement',
          subject: ACKNOWLEDGEMENT.subject,
          text: ACKNOWLEDGEMENT.text,
          html: ACKNOWLEDGEMENT.html,
          ticketId: f.ticket,
        },
      ],
      ok: [200],
    },
    'POST /api/v1/mail-templates/{id}/preview': {
      params: id(f.template),
      bodies: [{ ticketId: f.ticket }],
      ok: [200],
    },
    'POST /hooks/graph/{mailboxId}': {
      public: true,
      params: { mailboxId: f.graphMailbox },
      bodies: [
        {
          value: [
            {
              subscriptionId: 'sub-sweep',
              clientState: f.graphClientState,
              changeType: 'created',
              resource: "Users('graph@helpdesk.test')/Messages('AAMk1')",
              resourceData: { id: 'AAMk1' },
            },
            {
              subscriptionId: 'sub-sweep',
              clientState: f.graphClientState,
              lifecycleEvent: 'reauthorizationRequired',
            },
          ],
        },
      ],
      ok: [202],
    },
    // A state the sweep cannot have (a real one is spent by the first hostile variant that gets
    // through): every variant meets the state check, which refuses with problem+json.
    'GET /oauth/callback': {
      public: true,
      query: { state: 'a-state-nobody-was-given', code: 'sweep-code' },
      ok: [400],
    },
    'POST /api/v1/notification-rules': { bodies: [RULE], ok: [201] },
    'GET /api/v1/notification-rules': { query: { ...page, event: 'sla.breached' }, ok: [200] },
    'GET /api/v1/notification-rules/{id}': { params: id(f.rule), ok: [200] },
    'PUT /api/v1/notification-rules/{id}': { params: id(f.rule), bodies: [RULE], ok: [200] },
    'DELETE /api/v1/notification-rules/{id}': { params: id(f.ruleToDelete), ok: [204] },
    'POST /api/v1/notification-rules/{id}/test': {
      params: id(f.rule),
      query: { ticketId: f.ticket },
      ok: [202],
    },
    'PUT /api/v1/integrations/teams': {
      bodies: [
        {
          appId: '4f7c2a1e-9b3d-4c8e-a6f0-2d5b8e1c7a93',
          appPassword: 'sweep-bot-secret',
          tokenUrl: 'http://127.0.0.1:9/token',
          openIdMetadataUrl: 'http://127.0.0.1:9/openid',
        },
      ],
      ok: [200],
    },
    // Before the sweep's PUT (the two may run in either order) there is no integration: 404.
    'GET /api/v1/integrations/teams': { ok: [200, 404] },
    'PUT /api/v1/integrations/slack': {
      bodies: [{ botToken: f.slack.botToken, apiBaseUrl: f.slack.apiBaseUrl }],
      ok: [200],
    },
    'GET /api/v1/integrations/slack': { ok: [200] },
    'DELETE /api/v1/integrations/slack': { ok: [204, 404] },
    'POST /api/v1/webhook-endpoints': { bodies: [ENDPOINT], ok: [201] },
    'GET /api/v1/webhook-endpoints': { query: page, ok: [200] },
    'GET /api/v1/webhook-endpoints/{id}': { params: id(f.endpoint), ok: [200] },
    'PATCH /api/v1/webhook-endpoints/{id}': {
      params: id(f.endpoint),
      bodies: [{ description: 'Sweep', events: ['ticket.created'], enabled: true }],
      ok: [200],
    },
    'DELETE /api/v1/webhook-endpoints/{id}': { params: id(f.endpointToDelete), ok: [204] },
    'POST /api/v1/webhook-endpoints/{id}/rotate-secret': { params: id(f.endpoint), ok: [200] },
    'GET /api/v1/webhook-endpoints/{id}/deliveries': {
      params: id(f.endpoint),
      query: { ...page, status: 'failed' },
      ok: [200],
    },
    'POST /api/v1/webhook-endpoints/{id}/deliveries/{deliveryId}/replay': {
      params: { id: f.endpoint, deliveryId: f.endpointDelivery },
      ok: [202, 409],
    },
    'POST /api/v1/webhook-endpoints/{id}/replay': {
      params: id(f.endpoint),
      bodies: [{ since: '2026-01-01T00:00:00Z' }],
      ok: [202],
    },
    'GET /api/v1/audit-events': { query: { ...page, outcome: 'success' }, ok: [200] },
    // Console sign-in. The sweep sends an API token, which the session routes refuse (401) once the
    // request has passed validation: what reaches them is checked there (sessions/*.test.ts sign in).
    'POST /api/v1/session': {
      public: true,
      bodies: [{ ...f.signInAgent, tenant: 'Tenant A' }],
      ok: [200],
    },
    'GET /api/v1/session': { ok: [401] },
    'DELETE /api/v1/session': { ok: [401] },
    'DELETE /api/v1/sessions': { ok: [204] },
    'POST /api/v1/session/totp': { ok: [401] },
    'POST /api/v1/session/totp/confirm': { bodies: [{ code: '123456' }], ok: [401] },
    'DELETE /api/v1/session/totp': { bodies: [{ code: '123456' }], ok: [401] },
    'POST /api/v1/session/recovery-codes': { bodies: [{ code: 'abcde-fghjk' }], ok: [401] },
    'POST /api/v1/people/{id}/invitation': { params: id(f.invitee), ok: [202] },
    // Links nobody was given (a real one is spent by the first variant that gets through): every
    // variant meets the token check, which refuses with problem+json.
    'POST /api/v1/invitations/accept': {
      public: true,
      bodies: [
        {
          token: 'a-link-token-nobody-was-given',
          password: 'a password for the sweep',
          displayName: 'Swept',
        },
      ],
      ok: [400],
    },
    'POST /api/v1/password-reset': {
      public: true,
      bodies: [{ email: f.signInAgent.email, tenant: 'Tenant A' }],
      ok: [202],
    },
    'POST /api/v1/password-reset/complete': {
      public: true,
      bodies: [{ token: 'a-link-token-nobody-was-given', password: 'a password for the sweep' }],
      ok: [400],
    },
    'GET /api/v1/auth-settings': { ok: [200] },
    'PUT /api/v1/auth-settings': {
      bodies: [
        { requireTotp: false, idleTimeoutMinutes: 480, absoluteTimeoutHours: 168, passwordSignIn: true },
      ],
      ok: [200],
    },
    // A closed port on loopback: nothing is fetched from it by the settings routes anyway.
    'PUT /api/v1/integrations/oidc/{provider}': {
      params: { provider: 'oidc' },
      bodies: [
        {
          issuer: 'http://127.0.0.1:9/sweep',
          clientId: 'sweep-client',
          clientSecret: 'sweep-secret',
          enabled: true,
          allowedDomains: ['sweep.test'],
          label: 'Sweep',
        },
      ],
      ok: [200],
    },
    // Before the sweep's PUT (or after its DELETE) there is none: 404.
    'GET /api/v1/integrations/oidc/{provider}': { params: { provider: 'oidc' }, ok: [200, 404] },
    'DELETE /api/v1/integrations/oidc/{provider}': { params: { provider: 'oidc' }, ok: [204, 404] },
    'GET /api/v1/sso/providers': { public: true, query: { tenant: 'Tenant A' }, ok: [200] },
    // Refused (no public URL, or no provider) or sent on: a redirect either way.
    'GET /auth/oidc/{provider}/start': {
      public: true,
      params: { provider: 'oidc' },
      query: { tenant: 'Tenant A', returnTo: '/console/tickets' },
      ok: [302],
    },
    // A state the sweep cannot have: every variant that gets through meets the state check, which
    // refuses with a redirect to the sign-in page.
    'GET /auth/oidc/callback': {
      public: true,
      query: { state: 'a-state-nobody-was-given', code: 'sweep-code' },
      ok: [302],
    },
    // The sweep cannot sign Bot Framework tokens: every variant meets the token check first, which
    // refuses with problem+json and stores nothing (src/modules/teams/hook.test.ts signs real ones).
    'POST /hooks/teams': {
      public: true,
      bodies: [
        { type: 'message', id: '1', channelId: 'msteams', serviceUrl: 'https://smba.example/', text: 'hi' },
      ],
      ok: [401],
    },
    'POST /hooks/gmail/{mailboxId}': {
      public: true,
      params: { mailboxId: f.gmailMailbox },
      // The body and its token come from the simulator (gmailCase), fresh for each request.
      bodies: [
        { message: { data: '', messageId: '1', publishTime: '2026-03-02T10:00:00Z' }, subscription: 's' },
      ],
      ok: [202],
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Hostile cases

export interface Case {
  label: string;
  expect: Expect;
  /** Path with its parameters, already percent-encoded. */
  url: string;
  method: string;
  headers: Record<string, string>;
  payload?: string | Buffer;
  /** Send without a token. */
  anonymous?: boolean;
  /** The Gmail push: fill in a freshly signed token, and message.data around this historyId etc. */
  gmail?: { data?: unknown; rawData?: string };
}

/** Hostile path-parameter values, percent-encoded as they go into the URL. */
function pathValues(param: Parameter, valid: string): [string, string, Expect][] {
  const uuid = param.schema.format === 'uuid';
  const values: [string, string, Expect][] = [
    ['NUL', encodeURIComponent(valid) + '%00', 'refuse'],
    ['only NUL', '%00', 'refuse'],
    ['an unpaired surrogate (CESU bytes)', '%ED%A0%80', 'refuse'],
    ['invalid UTF-8', '%FF%FE', 'refuse'],
    ['bad percent-encoding', '%E0%A4%A', 'refuse'],
    ['a lone percent', 'a%', 'refuse'],
    ['10 KB', 'a'.repeat(10_000), 'refuse'],
    ['100 KB', 'b'.repeat(100_000), 'refuse'],
    ['a dot segment', '..', 'any'],
    ['an encoded slash', 'a%2Fb', 'any'],
    ['spaces', '%20%20', 'any'],
    ['a quote and a semicolon', "'%3B--", 'any'],
  ];
  if (uuid) {
    values.push(
      ['not a uuid', 'not-a-uuid', 'refuse'],
      ['a urn uuid', `urn:uuid:${valid}`, 'refuse'],
      ['a braced uuid', `%7B${valid}%7D`, 'refuse'],
      ['a uuid without hyphens', valid.replace(/-/g, ''), 'refuse'],
      ['an upper-case uuid', SOME_UUID.toUpperCase(), 'any'],
      ['an unknown uuid', SOME_UUID, 'any'],
      ['the nil uuid', '00000000-0000-0000-0000-000000000000', 'any'],
    );
  }
  return values;
}

const IMPOSSIBLE_INSTANTS = [
  '2026-02-30T10:00:00Z',
  '2025-02-29T00:00:00Z',
  '2026-04-31T00:00:00Z',
  '0000-01-01T00:00:00Z',
  '2026-13-01T00:00:00Z',
  '2026-01-01T24:00:00Z',
  '2026-01-01T23:60:00Z',
  '2026-12-31T23:59:60Z',
  '9999-12-31T23:59:59.9999999Z',
];

/** Hostile query values (percent-encoded) for a documented parameter. */
function queryValues(param: Parameter): [string, string, Expect][] {
  const s = param.schema;
  const values: [string, string, Expect][] = [
    ['NUL', 'a%00b', 'refuse'],
    ['an unpaired surrogate (CESU bytes)', '%ED%A0%80', 'refuse'],
    ['invalid UTF-8', '%C0%AF', 'refuse'],
    ['bad percent-encoding', '%E0%A4%A', 'refuse'],
    [
      '100 KB',
      'c'.repeat(100_000),
      s.maxLength !== undefined || s.format || s.enum || s.pattern ? 'refuse' : 'any',
    ],
    ['an empty value', '', 'any'],
  ];
  if (s.type === 'integer') {
    values.push(
      ['1.5', '1.5', 'refuse'],
      ['0x10', '0x10', 'refuse'],
      ['1e1', '1e1', 'refuse'],
      ['-1', '-1', 'refuse'],
      ['0', '0', 'refuse'],
      ['1e400', '1e400', 'refuse'],
      ['9007199254740993', '9007199254740993', 'refuse'],
      ['abc', 'abc', 'refuse'],
      ['a leading space', '%205', 'refuse'],
      ['a plus sign', '%2B5', 'refuse'],
      ['Infinity', 'Infinity', 'refuse'],
      ['a leading zero', '05', 'any'],
    );
  }
  if (s.format === 'uuid') {
    values.push(
      ['not a uuid', 'not-a-uuid', 'refuse'],
      ['a urn uuid', `urn:uuid:${SOME_UUID}`, 'refuse'],
      ['a braced uuid', `%7B${SOME_UUID}%7D`, 'refuse'],
    );
  }
  if (s.enum) values.push(['a value not in the enum', 'nope', 'refuse']);
  if (s.format === 'date-time') {
    // RFC 3339 instants PostgreSQL refuses (22008, 22009, 22007), and impossible dates.
    for (const instant of [
      '2026-02-30T10:00:00Z',
      '0000-01-01T00:00:00Z',
      '2026-01-01T00:00:00+16:00',
      '9999-12-31T23:59:59-23:59',
      `2026-01-01T00:00:00.${'1'.repeat(200)}Z`,
    ])
      values.push([`the instant ${instant.slice(0, 40)}`, encodeURIComponent(instant), 'refuse']);
    values.push(['an instant with an offset', encodeURIComponent('2026-01-01T00:00:00+15:59'), 'any']);
  }
  if (param.name === 'cursor') {
    for (const instant of IMPOSSIBLE_INSTANTS)
      values.push([`a cursor at ${instant}`, cursorOf([instant, SOME_UUID]), 'refuse']);
    values.push(
      ['a cursor with a urn uuid', cursorOf(['2026-01-01T00:00:00Z', `urn:uuid:${SOME_UUID}`]), 'refuse'],
      ['a cursor with a NUL', cursorOf(['2026-01-01T00:00:00Z', `${SOME_UUID}\u0000`]), 'refuse'],
      ['a cursor with a number', cursorOf(['2026-01-01T00:00:00Z', 5]), 'refuse'],
      ['a cursor of three parts', cursorOf(['2026-01-01T00:00:00Z', SOME_UUID, 1]), 'refuse'],
      ['a cursor of an object', cursorOf({ createdAt: '2026-01-01T00:00:00Z', id: SOME_UUID }), 'refuse'],
      ['a cursor of deep JSON', cursorOf('['.repeat(140) + ']'.repeat(140)), 'refuse'],
      ['a cursor of invalid UTF-8', Buffer.from([0xff, 0xfe, 0x5b]).toString('base64url'), 'refuse'],
      ['a garbage cursor', 'garbage!!', 'refuse'],
      ['a base64 cursor with padding', `${cursorOf(['2026-01-01T00:00:00Z', SOME_UUID])}%3D`, 'refuse'],
      ['a valid cursor', cursorOf(['2026-01-01T00:00:00.123456Z', SOME_UUID]), 'any'],
    );
  }
  return values;
}

interface Slot {
  /** JSON pointer parts. */
  at: string[];
  /** The schema at this place; undefined inside free-form JSON (and bodies without a schema). */
  schema: JsonSchema | undefined;
  /** The valid value there, if the base body has one. */
  value: unknown;
  /** Inside (or itself) free-form JSON of a known schema: bounded in size as a whole. */
  freeForm: boolean;
}

/** The branch of a union the value takes (the first whose type fits), else the first non-null one. */
function branchFor(schema: JsonSchema, value: unknown): JsonSchema {
  const branches = schema.anyOf ?? [schema];
  const fits = (b: JsonSchema) =>
    typesOf(b).has(jsonType(value)) && (b.const === undefined || b.const === value);
  return branches.find(fits) ?? branches.find((b) => b.type !== 'null') ?? branches[0]!;
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (Number.isInteger(value)) return 'integer';
  return typeof value;
}

/** The JSON types a schema takes (integer also under number). */
function typesOf(schema: JsonSchema | undefined): Set<string> {
  const all = new Set(['null', 'boolean', 'integer', 'number', 'string', 'object', 'array']);
  if (schema === undefined) return all;
  if (schema.anyOf) return new Set(schema.anyOf.flatMap((b) => [...typesOf(b)]));
  if (schema.enum) return new Set(schema.enum.map(jsonType));
  if (schema.const !== undefined) return new Set([jsonType(schema.const)]);
  if (schema.type === undefined) return all;
  const types = new Set([schema.type].flat());
  if (types.has('number')) types.add('integer');
  return types;
}

/** Every place of a body: each field of the schema (present in the base or not) and each value of the base. */
function slotsOf(
  schema: JsonSchema | undefined,
  value: unknown,
  at: string[] = [],
  inFreeForm = false,
): Slot[] {
  const s = schema?.anyOf ? branchFor(schema, value) : schema;
  const freeForm =
    inFreeForm ||
    (s !== undefined && s.type === 'object' && !s.properties && typeof s.additionalProperties === 'object');
  const here: Slot = { at, schema, value, freeForm };
  const out: Slot[] = at.length === 0 ? [] : [here];
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const props = s?.properties ?? {};
    for (const [key, sub] of Object.entries(props))
      out.push(...slotsOf(sub, obj[key], [...at, key], freeForm));
    for (const [key, sub] of Object.entries(obj)) {
      if (key in props) continue;
      const extra =
        s === undefined || s.additionalProperties === undefined ? undefined : s.additionalProperties;
      out.push(...slotsOf(typeof extra === 'object' ? extra : undefined, sub, [...at, key], freeForm));
    }
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => out.push(...slotsOf(s?.items, item, [...at, String(i)], freeForm)));
  }
  return out;
}

/** Hostile values for one place of the body. */
function slotValues(slot: Slot): [string, unknown, Expect][] {
  const s = slot.schema?.anyOf ? branchFor(slot.schema, slot.value) : slot.schema;
  const types = typesOf(slot.schema);
  const known = slot.schema !== undefined;
  const wrong = (v: unknown): Expect => (known && !types.has(jsonType(v)) ? 'refuse' : 'any');
  const base = typeof slot.value === 'string' ? slot.value : 'text';
  const values: [string, unknown, Expect][] = [
    ['a NUL inside a string', `${base}\u0000x`, 'refuse'],
    ['an unpaired high surrogate', `${base}\ud800`, 'refuse'],
    ['an unpaired low surrogate', `\udc00${base}`, 'refuse'],
    ['a reversed surrogate pair', '\ude00\ud83d', 'refuse'],
    ['JSON nested 10,000 deep (objects)', deepObject(10_000), 'refuse'],
    ['JSON nested 10,000 deep (arrays)', deepArray(10_000), 'refuse'],
    ['an object with a NUL key', { 'k\u0000': 1 }, 'refuse'],
    ['an object with an unpaired-surrogate key', { '\ud800': 1 }, 'refuse'],
    ['a number', 7, wrong(7)],
    ['an object', { x: 1 }, wrong({})],
    ['an array', ['x'], wrong([])],
    ['null', null, wrong(null)],
    ['a boolean', true, wrong(true)],
    ['1e400', new RawJson('1e400'), 'refuse'],
  ];
  const bounded =
    (s?.maxLength !== undefined && s.maxLength < 100_000) || !!(s?.format || s?.enum || s?.pattern);
  // Free-form JSON is bounded as a whole, so anything of 100 KB inside it is refused.
  const big: Expect = known && slot.freeForm ? 'refuse' : 'any';
  if (types.has('string'))
    values.push([
      'a 100 KB string',
      'x'.repeat(100_000),
      (known && bounded) || big === 'refuse' ? 'refuse' : 'any',
    ]);
  if (known && s?.type === 'integer') {
    values.push(
      ['1.5', 1.5, 'refuse'],
      ['"0x10"', '0x10', wrong('0x10')],
      ['"abc"', 'abc', wrong('abc')],
      ['-1', -1, s?.minimum !== undefined && s.minimum >= 0 ? 'refuse' : 'any'],
      ['9007199254740993', new RawJson('9007199254740993'), 'any'],
      ['2147483648', 2_147_483_648, s?.maximum !== undefined && s.maximum < 2_147_483_648 ? 'refuse' : 'any'],
      ['1e300', new RawJson('1e300'), s?.maximum !== undefined ? 'refuse' : 'any'],
    );
  }
  if (known && s?.format === 'uuid') {
    values.push(
      ['not a uuid', 'not-a-uuid', 'refuse'],
      ['a urn uuid', `urn:uuid:${SOME_UUID}`, 'refuse'],
      ['a braced uuid', `{${SOME_UUID}}`, 'refuse'],
      ['an unknown uuid', SOME_UUID, 'any'],
    );
  }
  if (known && s?.format === 'date-time') {
    for (const instant of [...IMPOSSIBLE_INSTANTS, '275760-09-13T00:00:01Z'])
      values.push([`the instant ${instant}`, instant, 'refuse']);
  }
  if (known && s?.enum) values.push(['a value not in the enum', 'nope', 'refuse']);
  if (types.has('array') || Array.isArray(slot.value))
    values.push([
      'an array of 20,000 items',
      Array.from({ length: 20_000 }, () =>
        Array.isArray(slot.value) ? (slot.value[0] ?? 'item-00000') : 'item-00000',
      ),
      (known && s?.maxItems !== undefined && s.maxItems < 20_000) || big === 'refuse' ? 'refuse' : 'any',
    ]);
  if (
    types.has('object') &&
    slot.schema !== undefined &&
    (s?.additionalProperties === undefined || typeof s.additionalProperties === 'object')
  )
    values.push(
      [
        'a free-form object of 20,000 keys',
        Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i])),
        'refuse',
      ],
      ['a __proto__ key', JSON.parse('{"__proto__": {"polluted": true}}'), 'any'],
    );
  return values;
}

/** A copy of `body` with the value at `at` replaced (parents made as needed). */
function withValue(body: unknown, at: string[], value: unknown): unknown {
  const copy = structuredClone(body) as Record<string, unknown>;
  let node: Record<string, unknown> = copy;
  for (const key of at.slice(0, -1)) {
    if (node[key] === null || typeof node[key] !== 'object') node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  Object.defineProperty(node, at[at.length - 1]!, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
  return copy;
}

/** Every hostile request for one operation, then its valid request (label "the valid request"). */
export function casesFor(op: Operation, base: BaseRequest, options: { bodyLimit: number }): Case[] {
  const params = base.params ?? {};
  const pathWith = (overrides: Record<string, string> = {}) =>
    op.path.replace(
      /\{(\w+)\}/g,
      (_m, name: string) => overrides[name] ?? encodeURIComponent(params[name] ?? ''),
    );
  const queryOf = (q: Record<string, string>, extra = '') => {
    const parts = Object.entries(q).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
    if (extra) parts.push(extra);
    return parts.length ? `?${parts.join('&')}` : '';
  };
  const query = base.query ?? {};
  const api = op.path.startsWith('/api/');
  const json = { 'content-type': 'application/json' };
  const bodies = base.bodies ?? [];
  const validPayload = base.raw ? base.raw.payload : bodies.length > 0 ? toJsonText(bodies[0]) : undefined;
  const validHeaders = {
    ...(base.headers ?? {}),
    ...(base.raw ? { 'content-type': base.raw.contentType } : bodies.length > 0 ? json : {}),
  };
  const gmail = op.name === 'POST /hooks/gmail/{mailboxId}';
  const cases: Case[] = [];
  const late: Case[] = [];
  const add = (c: Omit<Case, 'method'>) =>
    cases.push({ ...c, method: op.method, ...(gmail && !c.gmail ? { gmail: {} } : {}) });
  const url = pathWith() + queryOf(query);

  // A public route under /api (the sign-in page's) takes requests without a token.
  if (api && !base.public)
    add({
      label: 'no token',
      expect: 'refuse',
      url,
      headers: validHeaders,
      payload: validPayload,
      anonymous: true,
    });

  // Path parameters.
  for (const p of op.parameters.filter((x) => x.in === 'path')) {
    for (const [label, value, expect] of pathValues(p, params[p.name] ?? SOME_UUID))
      add({
        label: `path ${p.name}: ${label}`,
        expect,
        url: pathWith({ [p.name]: value }) + queryOf(query),
        headers: validHeaders,
        payload: validPayload,
      });
  }
  add({
    label: 'a 100 KB path',
    expect: 'refuse',
    url: `${op.path.split('{')[0]}${'p/'.repeat(50_000)}`,
    headers: {},
  });

  // Query parameters: each documented one, then unknown ones.
  for (const p of op.parameters.filter((x) => x.in === 'query')) {
    const rest = Object.fromEntries(Object.entries(query).filter(([k]) => k !== p.name));
    for (const [label, value, expect] of queryValues(p))
      add({
        label: `query ${p.name}: ${label}`,
        expect,
        url: pathWith() + queryOf(rest, `${encodeURIComponent(p.name)}=${value}`),
        headers: validHeaders,
        payload: validPayload,
      });
    add({
      label: `query ${p.name}: given twice`,
      expect: 'refuse',
      url:
        pathWith() +
        queryOf(
          rest,
          `${p.name}=${encodeURIComponent(query[p.name] ?? 'x')}&${p.name}=${encodeURIComponent(query[p.name] ?? 'x')}`,
        ),
      headers: validHeaders,
      payload: validPayload,
    });
  }
  const unknownQuery: [string, string][] = [
    ['an unknown parameter', 'zzz=1'],
    ['an unknown parameter with a NUL', 'zzz=%00'],
    ['a NUL in a parameter name', 'z%00z=1'],
    ['a cursor where none is documented', `cursor=${cursorOf(['2026-02-30T10:00:00Z', SOME_UUID])}`],
    ['a limit where none is documented', 'limit=1.5'],
    ['a bad percent-encoding in a name', '%E0%A4%A=1'],
  ];
  for (const [label, extra] of unknownQuery) {
    const name = decodeURIComponentSafe(extra.split('=')[0]!);
    if (op.parameters.some((p) => p.in === 'query' && p.name === name)) continue;
    add({
      label: `query: ${label}`,
      expect: api ? 'refuse' : 'any',
      url: pathWith() + queryOf(query, extra),
      headers: validHeaders,
      payload: validPayload,
    });
  }

  // The body as a whole.
  const takesJson = bodies.length > 0;
  if (takesJson || base.raw || op.method !== 'GET') {
    const text = validPayload === undefined ? '{}' : validPayload.toString('utf8');
    const wholeBodies: [string, string | Buffer, Record<string, string>, Expect][] = [
      ['malformed JSON', '{"a":', json, 'refuse'],
      ['JSON with a trailing comma', '{"a":1,}', json, 'refuse'],
      ['JSON with a trailing garbage', '{}x', json, 'refuse'],
      ['an empty JSON body', '', json, takesJson ? 'refuse' : 'any'],
      ['whitespace only', '  \n', json, 'refuse'],
      ['the JSON null', 'null', json, takesJson || api ? 'refuse' : 'any'],
      ['a JSON array', '[]', json, takesJson || api ? 'refuse' : 'any'],
      ['a JSON string', '"x"', json, takesJson || api ? 'refuse' : 'any'],
      ['a JSON number', '1', json, takesJson || api ? 'refuse' : 'any'],
      ['a body on a route that takes none', '{"zzz":1}', json, takesJson || api ? 'refuse' : 'any'],
      [
        'invalid UTF-8 inside a string',
        Buffer.concat([Buffer.from('{"zzz":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
        json,
        'refuse',
      ],
      [
        'an unpaired surrogate as CESU bytes',
        Buffer.concat([Buffer.from('{"zzz":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]),
        json,
        'refuse',
      ],
      [
        'an overlong UTF-8 encoding',
        Buffer.concat([Buffer.from('{"zzz":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]),
        json,
        'refuse',
      ],
      ['a NUL escape in a key', '{"\\u0000":1}', json, 'refuse'],
      ['nested 10,000 deep at the top', toJsonText(deepArray(10_000)), json, 'refuse'],
      ['nested 300,000 deep at the top', toJsonText(deepArray(300_000)), json, 'refuse'],
      ['a __proto__ key', '{"__proto__":{"polluted":true}}', json, 'refuse'],
      ['a constructor.prototype key', '{"constructor":{"prototype":{"polluted":true}}}', json, 'refuse'],
      ['a body over the limit', `{"zzz":"${'y'.repeat(options.bodyLimit + 10)}"}`, json, 'refuse'],
      ['text/plain', text, { 'content-type': 'text/plain' }, takesJson || base.raw ? 'refuse' : 'any'],
      ['application/xml', '<a/>', { 'content-type': 'application/xml' }, 'refuse'],
      ['an unparseable content type', text, { 'content-type': '/;;' }, 'refuse'],
      ['no content type', text, {}, takesJson || base.raw ? 'refuse' : 'any'],
      [
        'a content type with another charset',
        text,
        { 'content-type': 'application/json; charset=iso-8859-1' },
        'any',
      ],
      ['form data', 'a=1', { 'content-type': 'application/x-www-form-urlencoded' }, 'refuse'],
    ];
    if (op.name === 'POST /hooks/graph/{mailboxId}') {
      // The validation handshake is text/plain by design.
      wholeBodies.splice(
        wholeBodies.findIndex((b) => b[0] === 'text/plain'),
        1,
      );
    }
    // Variants a route may rightly take as its valid request (another charset named; no body where
    // none is taken) are sent after it, so that a deletion they do is not missed by the valid one.
    const sameAsValid = [
      'a content type with another charset',
      ...(takesJson || base.raw ? [] : ['an empty JSON body']),
    ];
    for (const [label, payload, headers, expect] of wholeBodies) {
      // The raw-mail route takes its own media type; JSON there is refused as the wrong media type.
      if (base.raw && label === 'a body over the limit') continue;
      const c = {
        label: `body: ${label}`,
        expect: base.raw && headers === json ? 'refuse' : expect,
        url,
        headers,
        payload,
      };
      if (sameAsValid.includes(label)) late.push({ ...c, method: op.method });
      else add(c);
    }
  }
  if (base.raw) {
    const mail = base.raw.payload;
    const rawBodies: [string, Buffer, Expect][] = [
      ['raw mail with NUL bytes', Buffer.concat([mail, Buffer.from([0, 0, 0])]), 'any'],
      [
        'raw mail of invalid UTF-8',
        Buffer.concat([Buffer.from('Subject: \xff\xfe\r\n\r\n', 'latin1'), Buffer.from([0xff])]),
        'any',
      ],
      ['raw mail that is not mail', Buffer.from('{"not": "mail"}'), 'any'],
      ['empty raw mail', Buffer.alloc(0), 'refuse'],
    ];
    for (const [label, payload, expect] of rawBodies)
      add({
        label: `body: ${label}`,
        expect,
        url,
        headers: { 'content-type': base.raw.contentType },
        payload,
      });
  }

  // Each place of the JSON body.
  const seen = new Set<string>();
  for (const body of bodies) {
    if (gmail) break;
    for (const slot of slotsOf(op.body, body)) {
      for (const [label, value, expect] of slotValues(slot)) {
        const key = `${slot.at.join('/')}\n${label}`;
        if (seen.has(key)) continue;
        seen.add(key);
        add({
          label: `body /${slot.at.join('/')}: ${label}`,
          expect,
          url,
          headers: { ...validHeaders, ...json },
          payload: toJsonText(withValue(body, slot.at, value)),
        });
      }
    }
  }
  if (gmail) cases.push(...gmailCases(url));

  // Last, the valid request itself (every variant).
  const variants = bodies.length > 0 ? bodies : [undefined];
  for (const body of variants)
    add({
      label: 'the valid request',
      expect: 'any',
      url,
      headers: validHeaders,
      payload: body === undefined ? validPayload : toJsonText(body),
    });
  return [...cases, ...late];
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The Gmail push's message.data, decoded: each a hostile value of its own. */
function gmailCases(url: string): Case[] {
  const json = { 'content-type': 'application/json' };
  const c = (label: string, expect: Expect, gmail: Case['gmail']): Case => ({
    label: `gmail push: ${label}`,
    expect,
    url,
    method: 'POST',
    headers: json,
    gmail,
  });
  const cases: Case[] = [];
  for (const [label, historyId] of [
    ['historyId "abc"', 'abc'],
    ['historyId "12abc"', '12abc'],
    ['historyId ""', ''],
    ['historyId "-5"', '-5'],
    ['historyId "1.5"', '1.5'],
    ['historyId "1e3"', '1e3'],
    ['historyId 1.5', 1.5],
    ['historyId -5', -5],
    ['historyId null', null],
    ['historyId {}', {}],
    ['historyId []', []],
    ['historyId true', true],
    ['historyId with a NUL', '12\u0000'],
    ['historyId of 10,000 digits', '9'.repeat(10_000)],
  ] as [string, unknown][])
    cases.push(c(label, 'refuse', { data: { historyId } }));
  cases.push(
    c('emailAddress with a NUL', 'refuse', { data: { emailAddress: 'gmail@helpdesk.test\u0000' } }),
    c('emailAddress an object', 'refuse', { data: { emailAddress: {} } }),
    c('data not base64', 'refuse', { rawData: '!!!not base64!!!' }),
    c('data base64 of invalid UTF-8', 'refuse', {
      rawData: Buffer.from([0x7b, 0xff, 0x7d]).toString('base64'),
    }),
    c('data base64 of deep JSON', 'refuse', {
      rawData: Buffer.from(toJsonText(deepArray(10_000))).toString('base64'),
    }),
    c('data base64 of null', 'refuse', { rawData: Buffer.from('null').toString('base64') }),
    c('data a number', 'refuse', { rawData: 5 as unknown as string }),
    c('historyId a number (as Gmail sends it)', 'any', { data: { historyId: 123456 } }),
  );
  return cases;
}

// ---------------------------------------------------------------------------------------------------
// Running

export interface SweepResult {
  requests: number;
  failures: string[];
}

export async function runCases(
  t: TestApp,
  f: Fixtures,
  op: Operation,
  cases: Case[],
  base: BaseRequest,
): Promise<SweepResult> {
  const failures: string[] = [];
  for (const c of cases) {
    let headers = c.headers;
    let payload = c.payload;
    if (c.gmail) {
      // Every Gmail case carries a freshly signed push token, so that it gets past verification.
      const push = await f.gmailPush();
      headers = { ...headers, authorization: push.authorization };
      const body = push.body as { message: { data: unknown } };
      if (c.gmail.rawData !== undefined || c.gmail.data !== undefined) {
        const decoded = JSON.parse(Buffer.from(String(body.message.data), 'base64').toString('utf8'));
        body.message.data =
          c.gmail.rawData ??
          Buffer.from(toJsonText({ ...decoded, ...(c.gmail.data as object) })).toString('base64');
        payload = toJsonText(body);
      } else if (c.label === 'the valid request') payload = toJsonText(body);
    }
    const res = await t.app.inject({
      method: c.method as 'GET',
      url: c.url,
      headers: {
        ...(c.anonymous || op.path.startsWith('/hooks/') ? {} : { authorization: `Bearer ${f.token}` }),
        ...headers,
      },
      ...(payload === undefined ? {} : { payload }),
    });
    const answer = { status: res.statusCode, headers: res.headers, body: res.body };
    const problem =
      c.label === 'the valid request'
        ? base.ok.includes(answer.status)
          ? undefined
          : `answered ${answer.status} ${res.body.slice(0, 200)}`
        : judge(answer, c.expect);
    if (problem) failures.push(`${op.name} | ${c.label}: ${problem}`);
    if (process.env['HOSTILE_TRACE'] && answer.status < 300)
      failures.push(`TRACE ${op.name} | ${c.label}: ${answer.status}`);
  }
  return { requests: cases.length, failures };
}

// ---------------------------------------------------------------------------------------------------
// The sweep as tests

const BODY_LIMIT = 1024 * 1024;

/** Defines the sweep over part `part` (1-based) of `parts` of the operations. */
export function defineSweep(part: number, parts: number): void {
  let t: TestApp;
  let gmail: GmailSimulator;
  let slack: SlackSimulator;
  let f: Fixtures;
  let operations: Operation[];

  beforeAll(async () => {
    t = await useTestApp({
      bodyLimit: BODY_LIMIT,
      // GET /stream's valid request, sent by inject, ends when the stream does.
      streamLifetimeMs: 50,
      oauth: { google: { clientId: 'sweep.apps.googleusercontent.com', clientSecret: 'sweep-secret' } },
    });
    gmail = await startGmailSimulator();
    slack = await startSlackSimulator();
    f = await makeFixtures(t, gmail, slack);
    // Only now: with it, making the fixtures' Graph mailbox would subscribe it at Microsoft's.
    t.config.publicUrl = 'https://relaydesk.example';
    operations = await loadOperations(t);
  });
  afterAll(async () => {
    await gmail?.close();
    await slack?.close();
  });

  it('has a valid request for every operation the OpenAPI document lists', () => {
    const table = Object.keys(baseRequests(f)).sort();
    expect(operations.map((o) => o.name).sort()).toEqual(table);
  });

  it(`never answers a hostile request with a 5xx or a refusal outside the catalogue (part ${part} of ${parts})`, async () => {
    const mine = operations.filter((_, i) => i % parts === part - 1);
    const bases = baseRequests(f);
    const failures: string[] = [];
    let requests = 0;
    const timings: string[] = [];
    for (const op of mine) {
      const base = bases[op.name]!;
      const started = performance.now();
      const result = await runCases(t, f, op, casesFor(op, base, { bodyLimit: BODY_LIMIT }), base);
      timings.push(`${Math.round(performance.now() - started)} ms ${result.requests} ${op.name}`);
      requests += result.requests;
      failures.push(...result.failures);
    }
    if (process.env['HOSTILE_REPORT'])
      (await import('node:fs')).writeFileSync(
        `${process.env['HOSTILE_REPORT']}-${part}`,
        failures.join('\n') + '\n' + timings.join('\n'),
      );
    expect(requests).toBeGreaterThan(mine.length * 20);
    expect(failures, `${failures.length} of ${requests} requests`).toEqual([]);
  }, 300_000);
}
