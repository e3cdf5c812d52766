// Mail templates per tenant (acknowledgements of new tickets, signatures under replies): the owner
// operations of `mail_templates`, and the variables a ticket gives them. Rendering is in
// template-render.ts; a template is stored only once it parses and renders within the limits.
import type { TenantTx } from '../../platform/db/tx.ts';
import { conflict, notFound, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import { findPerson, type Person } from '../people/service.ts';
import type { Ticket } from '../tickets/model.ts';
import { getTicket } from '../tickets/queries.ts';
import {
  checkTemplate,
  MAX_TEMPLATE_LENGTH,
  TEMPLATE_KINDS,
  type TemplateKind,
  type TemplateVariables,
} from './template-render.ts';

export {
  BUILTIN_ACKNOWLEDGEMENT,
  BUILTIN_SIGNATURE,
  BUILTIN_TEMPLATES,
  renderForSending,
  renderMailTemplate,
  SAMPLE_VARIABLES,
  TEMPLATE_KINDS,
  type RenderedMail,
  type TemplateKind,
  type TemplateSource,
  type TemplateVariables,
} from './template-render.ts';

export interface MailTemplate {
  id: string;
  kind: TemplateKind;
  /** Unique per kind, case-insensitively; `default` (any case) is the one sending uses. */
  name: string;
  /** Liquid; empty for signatures (they have no subject). */
  subject: string;
  text: string;
  html: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface MailTemplateInput {
  kind: TemplateKind;
  name: string;
  /** Required (not blank) for acknowledgements; '' when left out. */
  subject?: string;
  text: string;
  /** null or left out: the mail has a text body only. */
  html?: string | null;
}

interface TemplateRow {
  id: string;
  kind: TemplateKind;
  name: string;
  subject: string;
  body_text: string;
  body_html: string | null;
  created_at: string;
  updated_at: string;
}

const COLUMNS = 'id, kind, name, subject, body_text, body_html, created_at, updated_at';

const toTemplate = (r: TemplateRow): MailTemplate => ({
  id: r.id,
  kind: r.kind,
  name: r.name,
  subject: r.subject,
  text: r.body_text,
  html: r.body_html,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** The input as stored: checked field by field, then the template as a whole (parse and render). */
function checked(input: MailTemplateInput): Required<MailTemplateInput> {
  if (!(TEMPLATE_KINDS as readonly string[]).includes(input.kind))
    throw validation(`kind must be one of ${TEMPLATE_KINDS.join(', ')}`, [
      { path: '/kind', message: `must be one of ${TEMPLATE_KINDS.join(', ')}` },
    ]);
  const name = input.name.trim();
  if (name === '' || name.length > 200)
    throw validation('name must be 1 to 200 characters', [
      { path: '/name', message: 'must be 1 to 200 characters (not blank)' },
    ]);
  const subject = input.subject ?? '';
  if (input.kind === 'acknowledgement' && subject.trim() === '')
    throw validation('an acknowledgement needs a subject', [
      { path: '/subject', message: 'must not be empty for an acknowledgement' },
    ]);
  const html = input.html ?? null;
  for (const [path, value] of [
    ['/subject', subject],
    ['/text', input.text],
    ['/html', html ?? ''],
  ] as const) {
    if (value.length > MAX_TEMPLATE_LENGTH)
      throw validation(`${path} is longer than ${MAX_TEMPLATE_LENGTH} characters`, [
        { path, message: `must be at most ${MAX_TEMPLATE_LENGTH} characters` },
      ]);
  }
  if (input.text.trim() === '')
    throw validation('text must not be empty', [{ path: '/text', message: 'must not be empty' }]);
  checkTemplate({ subject, text: input.text, html });
  return { kind: input.kind, name, subject, text: input.text, html };
}

const nameTaken = (kind: string, name: string) =>
  conflict(`a ${kind} template named "${name.slice(0, 200)}" already exists`, { field: 'name' });

export async function createTemplate(tx: TenantTx, input: MailTemplateInput): Promise<MailTemplate> {
  const t = checked(input);
  const { rows } = await tx.query<TemplateRow>(
    `INSERT INTO mail_templates (tenant_id, id, kind, name, subject, body_text, body_html)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (tenant_id, kind, lower(name)) DO NOTHING
     RETURNING ${COLUMNS}`,
    [tx.tenantId, uuidv7(), t.kind, t.name, t.subject, t.text, t.html],
  );
  if (!rows[0]) throw nameTaken(t.kind, t.name);
  return toTemplate(rows[0]);
}

export async function getTemplate(tx: TenantTx, id: string): Promise<MailTemplate> {
  const { rows } = await tx.query<TemplateRow>(
    `SELECT ${COLUMNS} FROM mail_templates WHERE tenant_id = $1 AND id = $2`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('mail template');
  return toTemplate(rows[0]);
}

export async function listTemplates(
  tx: TenantTx,
  input: { kind?: TemplateKind; limit?: number; cursor?: string },
): Promise<Page<MailTemplate>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const { rows } = await tx.query<TemplateRow>(
    `SELECT ${COLUMNS} FROM mail_templates
      WHERE tenant_id = $1 AND ($2::text IS NULL OR kind = $2)
        AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::uuid))
      ORDER BY created_at DESC, id DESC LIMIT $5`,
    [tx.tenantId, input.kind ?? null, cursor?.createdAt ?? null, cursor?.id ?? null, limit + 1],
  );
  return toPage(rows, limit, toTemplate);
}

/** Changes the fields given; the others stay (the PUT route gives them all). */
export async function updateTemplate(
  tx: TenantTx,
  id: string,
  patch: Partial<MailTemplateInput>,
): Promise<MailTemplate> {
  const current = await getTemplate(tx, id);
  const t = checked({
    kind: patch.kind ?? current.kind,
    name: patch.name ?? current.name,
    subject: patch.subject ?? current.subject,
    text: patch.text ?? current.text,
    html: patch.html === undefined ? current.html : patch.html,
  });
  try {
    const { rows } = await tx.query<TemplateRow>(
      `UPDATE mail_templates
          SET kind = $3, name = $4, subject = $5, body_text = $6, body_html = $7, updated_at = now()
        WHERE tenant_id = $1 AND id = $2
      RETURNING ${COLUMNS}`,
      [tx.tenantId, id, t.kind, t.name, t.subject, t.text, t.html],
    );
    if (!rows[0]) throw notFound('mail template');
    return toTemplate(rows[0]);
  } catch (err) {
    // The name index decides (no check-then-write); the failed statement ends the transaction,
    // which the conflict rolls back.
    if ((err as { code?: string }).code === '23505') throw nameTaken(t.kind, t.name);
    throw err;
  }
}

export async function deleteTemplate(tx: TenantTx, id: string): Promise<void> {
  const { rowCount } = await tx.query('DELETE FROM mail_templates WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    id,
  ]);
  if (rowCount === 0) throw notFound('mail template');
}

/**
 * The template sending uses for a kind: the one named `default` (any case), else the most recently
 * updated one, else undefined (the built-in then).
 */
export async function defaultTemplate(tx: TenantTx, kind: TemplateKind): Promise<MailTemplate | undefined> {
  const { rows } = await tx.query<TemplateRow>(
    `SELECT ${COLUMNS} FROM mail_templates WHERE tenant_id = $1 AND kind = $2
      ORDER BY lower(name) = 'default' DESC, updated_at DESC, id DESC LIMIT 1`,
    [tx.tenantId, kind],
  );
  return rows[0] ? toTemplate(rows[0]) : undefined;
}

/** What the variables take of the mailbox the mail goes through. */
export interface TemplateMailbox {
  address: string;
  displayName: string | null;
  settings?: { outbound: { portalLink: string | null } };
}

const addressOf = (p: Person | undefined): string => p?.email ?? p?.emails[0]?.address ?? '';

/**
 * The variables of a ticket for its mail. `agentId`: the agent who writes; left out, the ticket's
 * assignee; null, no agent (empty values). The ticket must be one of this tenant's (else not_found).
 */
export async function ticketVariables(
  tx: TenantTx,
  input: {
    ticketId: string;
    agentId?: string | null;
    mailbox?: TemplateMailbox | null;
  },
): Promise<TemplateVariables> {
  const ticket = await getTicket(tx, input.ticketId);
  const agentId = input.agentId === undefined ? ticket.assigneeId : input.agentId;
  const [requester, agent] = await Promise.all([
    findPerson(tx, ticket.requesterId),
    agentId ? findPerson(tx, agentId) : Promise.resolve(undefined),
  ]);
  return variablesOf({ ticket, requester, agent, mailbox: input.mailbox });
}

/** The variables of a ticket whose requester and agent the caller has read already (ticketVariables). */
export function variablesOf(input: {
  ticket: Ticket;
  requester: Person | undefined;
  agent: Person | undefined;
  mailbox?: TemplateMailbox | null | undefined;
}): TemplateVariables {
  const { ticket, requester, agent } = input;
  const portal = input.mailbox?.settings?.outbound.portalLink;
  return {
    ticket: {
      number: ticket.number,
      subject: ticket.subject,
      status: ticket.status,
      priority: ticket.priority,
    },
    requester: { name: requester?.displayName ?? '', email: addressOf(requester) },
    agent: { name: agent?.displayName ?? '', email: addressOf(agent) },
    mailbox: {
      address: input.mailbox?.address ?? '',
      name: input.mailbox?.displayName ?? '',
    },
    // The desk's customer portal, where the mailbox names one; never the agents' console.
    portal: { link: portal ? portal.replaceAll('{number}', encodeURIComponent(ticket.number)) : '' },
  };
}
