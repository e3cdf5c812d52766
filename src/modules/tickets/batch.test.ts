// The batch form (applyTicketBatch) against the operations it stands for: the same script of
// ticket creations and messages is applied in tenant A as one batch in one transaction, and in
// tenant B one operation at a time (createTicket, appendMessage), each in its own transaction.
// The two tenants must end in exactly the same state: tickets and their numbers and statuses,
// messages in order with their direction, mail details and attachments, participants, status
// history, wake-ups.
import { beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, useTestApp } from '../../../test/app.ts';
import { withTenant } from '../../platform/db/tx.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { createPerson } from '../people/service.ts';
import { applyTicketBatch, type TicketBatchOp } from './batch.ts';
import { changeStatus } from './changes.ts';
import { createTicket } from './create.ts';
import { appendMessage, type NewMessage } from './messages.ts';
import { sanitizeBodyHtml, type TicketStatus } from './model.ts';

let t: TestApp;

interface Cast {
  tenantId: string;
  agent: string;
  ann: string;
  bob: string;
  /** Tickets created before the script, by name, in the given status. */
  existing: Map<string, string>;
}
const cast: Record<'a' | 'b', Cast> = {} as never;

const PRE: [string, TicketStatus][] = [
  ['waiting', 'pending'],
  ['done', 'solved'],
  ['shut', 'closed'],
  ['fresh', 'new'],
];

beforeAll(async () => {
  t = await useTestApp();
  for (const name of ['a', 'b'] as const) {
    const tenant = t[name].tenant;
    cast[name] = await withTenant(t.db.pool, tenant.id, async (tx) => {
      const actor = 'system:test' as const;
      const agent = await createPerson(tx, {
        displayName: 'Agent',
        kind: 'agent',
        emails: ['agent@x.test'],
        actor,
      });
      const ann = await createPerson(tx, {
        displayName: 'Ann',
        kind: 'contact',
        emails: ['ann@x.test'],
        actor,
      });
      const bob = await createPerson(tx, {
        displayName: 'Bob',
        kind: 'contact',
        emails: ['bob@x.test'],
        actor,
      });
      const existing = new Map<string, string>();
      for (const [subject, status] of PRE) {
        const ticket = await createTicket(tx, {
          subject,
          requester: { personId: ann.id },
          message: { text: `first of ${subject}` },
          actorId: agent.id,
        });
        if (status !== 'new') await changeStatus(tx, { ticketId: ticket.id, status, actorId: agent.id });
        existing.set(subject, ticket.id);
      }
      return { tenantId: tenant.id, agent: agent.id, ann: ann.id, bob: bob.id, existing };
    });
  }
});

type Step =
  | {
      kind: 'create';
      ticket: string;
      subject: string;
      requester: 'ann' | 'bob';
      message: Partial<NewMessage>;
    }
  | {
      kind: 'append';
      ticket: string;
      author: 'agent' | 'ann' | 'bob';
      visibility: 'public' | 'internal';
      message: Partial<NewMessage>;
    };

const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');

/** Covers every rule: replies that open, automatic mail that changes nothing, internal notes, agents' first replies, attachments. */
const SCRIPT: Step[] = [
  {
    kind: 'append',
    ticket: 'waiting',
    author: 'ann',
    visibility: 'public',
    message: { text: 'still broken' },
  },
  {
    kind: 'append',
    ticket: 'done',
    author: 'ann',
    visibility: 'public',
    message: { text: 'out of office', automatic: true },
  },
  { kind: 'append', ticket: 'shut', author: 'bob', visibility: 'public', message: { text: 'about that...' } },
  { kind: 'append', ticket: 'fresh', author: 'agent', visibility: 'internal', message: { text: 'a note' } },
  { kind: 'append', ticket: 'fresh', author: 'agent', visibility: 'public', message: { text: 'on it' } },
  { kind: 'append', ticket: 'fresh', author: 'agent', visibility: 'public', message: { text: 'done?' } },
  {
    kind: 'create',
    ticket: 'new1',
    subject: 'Printer',
    requester: 'bob',
    message: {
      text: 'It smokes',
      html: sanitizeBodyHtml('<p>It smokes <img src="cid:pic1"></p><script>x()</script>'),
      rfcMessageId: 'm1@customer.test',
      mail: {
        inboundId: '00000000-0000-7000-8000-000000000001',
        from: 'bob@x.test',
        to: [{ address: 'support@desk.test', name: 'Support' }],
        cc: [{ address: 'carol@x.test', name: 'Carol' }],
        subject: 'Printer',
        replyText: 'It smokes',
        classification: { automatic: false, bounce: false, reasons: [], thread: 'new' },
      },
      attachments: [
        {
          id: '',
          filename: 'pic.png',
          contentType: 'image/png',
          content: png,
          contentId: 'pic1',
          inline: true,
        },
        {
          id: '',
          filename: 'log.txt',
          contentType: 'text/plain',
          content: Buffer.from('log'),
          contentId: null,
          inline: false,
        },
      ],
      participants: ['bob@x.test', 'carol@x.test'],
    },
  },
  {
    kind: 'append',
    ticket: 'new1',
    author: 'bob',
    visibility: 'public',
    message: { text: 'and now it beeps', participants: ['bob@x.test', 'dave@x.test'] },
  },
  { kind: 'append', ticket: 'new1', author: 'agent', visibility: 'public', message: { text: 'unplug it' } },
  { kind: 'create', ticket: 'new2', subject: 'VPN', requester: 'ann', message: { text: 'VPN down' } },
  { kind: 'append', ticket: 'waiting', author: 'ann', visibility: 'public', message: { text: 'hello?' } },
];

async function play(name: 'a' | 'b', mode: 'batch' | 'one by one'): Promise<void> {
  const c = cast[name];
  const ids = new Map(c.existing);
  const person = { agent: c.agent, ann: c.ann, bob: c.bob };
  const message = (m: Partial<NewMessage>) => ({
    ...m,
    id: uuidv7(),
    text: m.text!,
    attachments: m.attachments?.map((a) => ({ ...a, id: uuidv7() })),
  });
  if (mode === 'batch') {
    const ops: TicketBatchOp[] = SCRIPT.map((s) => {
      if (s.kind === 'create') {
        ids.set(s.ticket, uuidv7());
        return {
          kind: 'create',
          ticketId: ids.get(s.ticket)!,
          subject: s.subject,
          requesterId: person[s.requester],
          actorId: person[s.requester],
          message: message(s.message),
        };
      }
      return {
        kind: 'append',
        ticketId: ids.get(s.ticket)!,
        message: {
          ...message(s.message),
          authorId: person[s.author],
          authorKind: s.author === 'agent' ? 'agent' : 'contact',
          visibility: s.visibility,
        },
      };
    });
    await withTenant(t.db.pool, c.tenantId, (tx) => applyTicketBatch(tx, ops));
    return;
  }
  for (const s of SCRIPT) {
    await withTenant(t.db.pool, c.tenantId, async (tx) => {
      if (s.kind === 'create') {
        const ticket = await createTicket(tx, {
          subject: s.subject,
          requester: { personId: person[s.requester] },
          actorId: person[s.requester],
          message: message(s.message),
        });
        ids.set(s.ticket, ticket.id);
      } else {
        await appendMessage(tx, {
          ...message(s.message),
          ticketId: ids.get(s.ticket)!,
          authorId: person[s.author],
          visibility: s.visibility,
        });
      }
    });
  }
}

/** The tenant's tickets and everything on them, with ids replaced by names. */
async function state(name: 'a' | 'b') {
  const c = cast[name];
  const q = async (sql: string) => (await t.db.admin.query(sql, [c.tenantId])).rows;
  const tickets = await q('SELECT id, number, subject FROM tickets WHERE tenant_id = $1 ORDER BY number');
  const who = new Map([
    [c.agent, 'agent'],
    [c.ann, 'ann'],
    [c.bob, 'bob'],
  ]);
  const ticketName = new Map(tickets.map((r) => [r.id, `T-${r.number} ${r.subject}`]));
  const messages = await q('SELECT id FROM ticket_messages WHERE tenant_id = $1 ORDER BY created_at, id');
  const messageName = new Map(messages.map((r, i) => [r.id, `m${i}`]));
  const attachmentIds = await q('SELECT id FROM attachments WHERE tenant_id = $1 ORDER BY created_at, id');
  const attachmentName = new Map(attachmentIds.map((r, i) => [r.id, `a${i}`]));
  const names = (text: string | null) =>
    text?.replace(
      /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g,
      (id) => ticketName.get(id) ?? who.get(id) ?? messageName.get(id) ?? attachmentName.get(id) ?? 'id',
    ) ?? null;
  return {
    tickets: (
      await q(
        'SELECT id, number, subject, status, priority, requester_id, assignee_id, deleted_at FROM tickets WHERE tenant_id = $1 ORDER BY number',
      )
    ).map((r) => ({
      ...r,
      id: names(r.id),
      requester_id: names(r.requester_id),
      assignee_id: names(r.assignee_id),
    })),
    messages: (
      await q(
        `SELECT id, ticket_id, author_id, visibility, direction, body_text, body_html, rfc_message_id, inbound_id,
                mail_from, mail_to, mail_cc, mail_subject, reply_text, classification
           FROM ticket_messages WHERE tenant_id = $1 ORDER BY created_at, id`,
      )
    ).map((r) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'string' ? names(v) : v])),
    ),
    attachments: (
      await q(
        `SELECT message_id, ticket_id, filename, content_type, size, encode(sha256, 'hex') AS sha, content_id, inline
           FROM attachments WHERE tenant_id = $1 ORDER BY created_at, id`,
      )
    ).map((r) => ({ ...r, message_id: names(r.message_id), ticket_id: names(r.ticket_id) })),
    participants: (
      await q('SELECT ticket_id, address_normalized FROM ticket_participants WHERE tenant_id = $1')
    )
      .map((r) => `${names(r.ticket_id)} ${r.address_normalized}`)
      .sort(),
    history: (
      await q(
        'SELECT ticket_id, from_status, to_status, changed_by FROM ticket_status_history WHERE tenant_id = $1 ORDER BY seq',
      )
    )
      .map((r) => `${names(r.ticket_id)}: ${r.from_status} -> ${r.to_status} by ${names(r.changed_by)}`)
      // Each ticket's history in its order (the SLA clocks replay it per ticket); across tickets the
      // batch writes creations before changes, one by one interleaves them.
      .map((line, i) => ({ line, i }))
      .sort((x, y) => x.line.split(':')[0]!.localeCompare(y.line.split(':')[0]!) || x.i - y.i)
      .map((x) => x.line),
    wakeups: (await q('SELECT ticket_id FROM ticket_wakeups WHERE tenant_id = $1'))
      .map((r) => names(r.ticket_id))
      .sort(),
    counter: (await q('SELECT last_number FROM ticket_counters WHERE tenant_id = $1'))[0]!.last_number,
    blobs: (
      await q("SELECT encode(sha256, 'hex') AS sha, size FROM blobs WHERE tenant_id = $1 ORDER BY 1")
    ).map((r) => `${r.sha} ${r.size}`),
  };
}

describe('the batch form of createTicket and appendMessage', () => {
  it('ends exactly where the operations applied one by one end', async () => {
    // Wake-ups of the setup are dropped in both tenants, so that only the script's remain.
    await t.db.admin.query('DELETE FROM ticket_wakeups');
    await play('a', 'batch');
    await play('b', 'one by one');
    const [a, b] = [await state('a'), await state('b')];
    expect(a).toEqual(b);
    // And the rules did what they say (so equality is not two identical mistakes).
    const status = Object.fromEntries(a.tickets.map((r) => [r.subject, r.status]));
    expect(status).toEqual({
      waiting: 'open',
      done: 'solved',
      shut: 'open',
      fresh: 'open',
      Printer: 'open',
      VPN: 'new',
    });
    const printer = a.messages.filter((m) => String(m['ticket_id']).endsWith('Printer'));
    expect(printer.map((m) => m['direction'])).toEqual(['inbound', 'inbound', 'outbound']);
    expect(printer[0]!['body_html']).toMatch(/<img src="\/api\/v1\/attachments\/a0" \/?>/);
    expect(printer[0]!['body_html']).not.toContain('script');
    expect(a.participants).toContain('T-5 Printer dave@x.test');
    expect(a.counter).toBe(6);
  });
});
