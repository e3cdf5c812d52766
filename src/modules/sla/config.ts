// SLA configuration as tenant data: calendars (the calendar file format, plus a name) and policies.
import type { TenantTx } from '../../platform/db/tx.ts';
import { conflict, notFound, validation } from '../../platform/errors.ts';
import { uuidv7 } from '../../platform/ids.ts';
import { clampLimit, decodeCursor, type Page, toPage } from '../../platform/pagination.ts';
import {
  TICKET_PRIORITIES,
  TICKET_STATUSES,
  type TicketPriority,
  type TicketStatus,
} from '../tickets/model.ts';
import { Calendar } from './calendar.ts';
import { scheduleSlaRecompute } from './wake.ts';

export const METRICS = ['first_response', 'next_response', 'resolution'] as const;
export type Metric = (typeof METRICS)[number];

export interface CalendarRecord {
  id: string;
  name: string;
  calendar: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

interface CalendarRow {
  id: string;
  name: string;
  spec: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

const toCalendar = (r: CalendarRow): CalendarRecord => ({
  id: r.id,
  name: r.name,
  calendar: r.spec,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** Validates a calendar body (the file format, with an optional `name`); returns the name and spec. */
function checkCalendar(body: Record<string, unknown>): { name: string; spec: Record<string, unknown> } {
  const { name, ...spec } = body;
  if (name !== undefined && (typeof name !== 'string' || name.trim() === '' || name.length > 200)) {
    throw validation('name must be a non-empty string of at most 200 characters', [
      { path: '/name', message: 'invalid' },
    ]);
  }
  const compiled = Calendar.load(spec); // throws invalid_calendar / invalid_time_zone / calendar_has_no_business_time
  return {
    name: (name as string | undefined)?.trim() ?? `${compiled.timeZone} calendar`,
    spec: { ...spec, timeZone: compiled.timeZone },
  };
}

export async function createCalendar(tx: TenantTx, body: Record<string, unknown>): Promise<CalendarRecord> {
  const { name, spec } = checkCalendar(body);
  const { rows } = await tx.query<CalendarRow>(
    'INSERT INTO calendars (tenant_id, id, name, spec) VALUES ($1, $2, $3, $4) RETURNING id, name, spec, created_at, updated_at',
    [tx.tenantId, uuidv7(), name, JSON.stringify(spec)],
  );
  return toCalendar(rows[0]!);
}

export async function getCalendar(tx: TenantTx, id: string): Promise<CalendarRecord> {
  const { rows } = await tx.query<CalendarRow>(
    'SELECT id, name, spec, created_at, updated_at FROM calendars WHERE tenant_id = $1 AND id = $2',
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('calendar');
  return toCalendar(rows[0]);
}

export async function listCalendars(
  tx: TenantTx,
  input: { limit?: number; cursor?: string },
): Promise<Page<CalendarRecord>> {
  const limit = clampLimit(input.limit);
  const cursor = decodeCursor(input.cursor);
  const { rows } = await tx.query<CalendarRow>(
    `SELECT id, name, spec, created_at, updated_at FROM calendars
      WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
      ORDER BY created_at DESC, id DESC LIMIT $4`,
    [tx.tenantId, cursor?.createdAt ?? null, cursor?.id ?? null, limit + 1],
  );
  return toPage(rows, limit, toCalendar);
}

export async function replaceCalendar(
  tx: TenantTx,
  id: string,
  body: Record<string, unknown>,
): Promise<CalendarRecord> {
  const { name, spec } = checkCalendar(body);
  const { rows } = await tx.query<CalendarRow>(
    `UPDATE calendars SET name = $3, spec = $4, updated_at = now() WHERE tenant_id = $1 AND id = $2
     RETURNING id, name, spec, created_at, updated_at`,
    [tx.tenantId, id, name, JSON.stringify(spec)],
  );
  if (!rows[0]) throw notFound('calendar');
  // The clocks computed on this calendar are recomputed (in this transaction's wake-ups).
  await scheduleSlaRecompute(tx, { calendarId: id });
  return toCalendar(rows[0]);
}

export async function deleteCalendar(tx: TenantTx, id: string): Promise<void> {
  const { rows } = await tx.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM sla_policies WHERE tenant_id = $1 AND calendar_id = $2',
    [tx.tenantId, id],
  );
  if ((rows[0]?.n ?? 0) > 0)
    throw conflict(`the calendar is used by ${rows[0]!.n} SLA policies; change them first`, { field: 'id' });
  const { rowCount } = await tx.query('DELETE FROM calendars WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    id,
  ]);
  if (rowCount === 0) throw notFound('calendar');
  // A policy still using it refuses the delete above, so clocks on it are ones whose policy has since
  // changed (and were woken then); wake them anyway, it is cheap and leaves no stale clock behind.
  await scheduleSlaRecompute(tx, { calendarId: id });
}

// ---------------------------------------------------------------------------------------------
// Policies

export type EscalationAction =
  | { type: 'reassign'; personId: string }
  | { type: 'set_priority'; priority: TicketPriority }
  | { type: 'notify'; role?: string; personId?: string };

export interface PolicyInput {
  name: string;
  position: number;
  conditions?: { priorities?: TicketPriority[]; requesterDomains?: string[]; mailboxIds?: string[] };
  /** null: calendar time (every instant counts). */
  calendarId: string | null;
  /** Per priority, per metric, in seconds of business time. */
  targets: Partial<
    Record<TicketPriority, Partial<Record<'firstResponse' | 'nextResponse' | 'resolution', number>>>
  >;
  /** Statuses that pause each metric (default: pending and on_hold pause resolution only). */
  pauseStatuses?: Partial<Record<'firstResponse' | 'nextResponse' | 'resolution', TicketStatus[]>>;
  /** Percentages below 100 that fire warnings, and 100 (the breach); default 50, 75, 90, 100. */
  thresholds?: number[];
  /** Levels at any percentage (e.g. 110, 125) with their actions. */
  escalations?: { percent: number; actions: EscalationAction[] }[];
  /** On reopen: continue the used business time, or restart it. */
  reopen?: 'continue' | 'restart';
}

export interface Policy extends Required<Omit<PolicyInput, 'conditions'>> {
  id: string;
  conditions: NonNullable<PolicyInput['conditions']>;
  createdAt: string;
  updatedAt: string;
}

export const DEFAULT_PAUSE: Policy['pauseStatuses'] = {
  firstResponse: [],
  nextResponse: [],
  resolution: ['pending', 'on_hold'],
};
export const DEFAULT_THRESHOLDS = [50, 75, 90, 100];

interface PolicyRow {
  id: string;
  name: string;
  position: number;
  conditions: Policy['conditions'];
  calendar_id: string | null;
  targets: Policy['targets'];
  pause_statuses: Policy['pauseStatuses'];
  thresholds: number[];
  escalations: Policy['escalations'];
  reopen: 'continue' | 'restart';
  created_at: string;
  updated_at: string;
}

const POLICY_COLUMNS =
  'id, name, position, conditions, calendar_id, targets, pause_statuses, thresholds, escalations, reopen, created_at, updated_at';

const toPolicy = (r: PolicyRow): Policy => ({
  id: r.id,
  name: r.name,
  position: r.position,
  conditions: r.conditions,
  calendarId: r.calendar_id,
  targets: r.targets,
  pauseStatuses: r.pause_statuses,
  thresholds: r.thresholds,
  escalations: r.escalations,
  reopen: r.reopen,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

async function checkPolicy(tx: TenantTx, input: PolicyInput): Promise<void> {
  if (input.name.trim() === '')
    throw validation('name must not be empty', [{ path: '/name', message: 'must not be empty' }]);
  if (input.calendarId)
    await getCalendar(tx, input.calendarId).catch(() => {
      throw validation('calendarId: no such calendar', [
        { path: '/calendarId', message: 'no such calendar' },
      ]);
    });
  const targets = Object.entries(input.targets);
  if (targets.length === 0 || targets.every(([, t]) => !t || Object.keys(t).length === 0)) {
    throw validation('a policy needs at least one target', [{ path: '/targets', message: 'empty' }]);
  }
  for (const [priority, t] of targets) {
    if (!(TICKET_PRIORITIES as readonly string[]).includes(priority)) {
      throw validation(`targets: "${priority}" is not a priority`, [
        { path: `/targets/${priority}`, message: 'unknown priority' },
      ]);
    }
    for (const [metric, seconds] of Object.entries(t ?? {})) {
      if (!Number.isInteger(seconds) || (seconds as number) <= 0) {
        throw validation(`targets.${priority}.${metric} must be a positive whole number of seconds`, [
          { path: `/targets/${priority}/${metric}`, message: 'invalid' },
        ]);
      }
    }
  }
  for (const statuses of Object.values(input.pauseStatuses ?? {})) {
    for (const s of statuses ?? [])
      if (!(TICKET_STATUSES as readonly string[]).includes(s))
        throw validation(`"${s}" is not a ticket status`);
  }
  const thresholds = input.thresholds ?? DEFAULT_THRESHOLDS;
  if (thresholds.some((p) => !Number.isInteger(p) || p <= 0 || p > 100) || !thresholds.includes(100)) {
    throw validation('thresholds are whole percentages in 1..100 and include 100 (the breach)', [
      { path: '/thresholds', message: 'invalid' },
    ]);
  }
  for (const [i, level] of (input.escalations ?? []).entries()) {
    if (!Number.isInteger(level.percent) || level.percent <= 0 || level.percent > 1000) {
      throw validation(`escalations[${i}].percent must be a whole percentage in 1..1000`);
    }
    for (const action of level.actions) {
      if (action.type === 'reassign' || (action.type === 'notify' && action.personId)) {
        const { rowCount } = await tx.query('SELECT 1 FROM people WHERE tenant_id = $1 AND id = $2', [
          tx.tenantId,
          action.personId,
        ]);
        if (rowCount === 0) throw validation(`escalations[${i}]: no such person ${action.personId}`);
      }
      if (action.type === 'notify' && !action.personId && !action.role)
        throw validation(`escalations[${i}]: notify needs a role or a personId`);
    }
  }
}

function policyValues(input: PolicyInput): unknown[] {
  return [
    input.name.trim(),
    input.position,
    JSON.stringify(input.conditions ?? {}),
    input.calendarId,
    JSON.stringify(input.targets),
    JSON.stringify({ ...DEFAULT_PAUSE, ...(input.pauseStatuses ?? {}) }),
    [...new Set(input.thresholds ?? DEFAULT_THRESHOLDS)].sort((a, b) => a - b),
    JSON.stringify([...(input.escalations ?? [])].sort((a, b) => a.percent - b.percent)),
    input.reopen ?? 'continue',
  ];
}

export async function createPolicy(tx: TenantTx, input: PolicyInput): Promise<Policy> {
  await checkPolicy(tx, input);
  const { rows } = await tx.query<PolicyRow>(
    `INSERT INTO sla_policies (tenant_id, id, name, position, conditions, calendar_id, targets, pause_statuses, thresholds, escalations, reopen)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ${POLICY_COLUMNS}`,
    [tx.tenantId, uuidv7(), ...policyValues(input)],
  );
  // First match wins: a new policy may now be the one of tickets that had another, or none.
  await scheduleSlaRecompute(tx, { openTickets: true });
  return toPolicy(rows[0]!);
}

export async function replacePolicy(tx: TenantTx, id: string, input: PolicyInput): Promise<Policy> {
  await checkPolicy(tx, input);
  const { rows } = await tx.query<PolicyRow>(
    `UPDATE sla_policies SET name = $3, position = $4, conditions = $5, calendar_id = $6, targets = $7, pause_statuses = $8,
            thresholds = $9, escalations = $10, reopen = $11, updated_at = now()
      WHERE tenant_id = $1 AND id = $2 RETURNING ${POLICY_COLUMNS}`,
    [tx.tenantId, id, ...policyValues(input)],
  );
  if (!rows[0]) throw notFound('SLA policy');
  await scheduleSlaRecompute(tx, { openTickets: true });
  return toPolicy(rows[0]);
}

export async function getPolicy(tx: TenantTx, id: string): Promise<Policy> {
  const { rows } = await tx.query<PolicyRow>(
    `SELECT ${POLICY_COLUMNS} FROM sla_policies WHERE tenant_id = $1 AND id = $2`,
    [tx.tenantId, id],
  );
  if (!rows[0]) throw notFound('SLA policy');
  return toPolicy(rows[0]);
}

/** All policies in evaluation order (first match wins). */
export async function listPolicies(tx: TenantTx): Promise<Policy[]> {
  const { rows } = await tx.query<PolicyRow>(
    `SELECT ${POLICY_COLUMNS} FROM sla_policies WHERE tenant_id = $1 ORDER BY position, created_at, id`,
    [tx.tenantId],
  );
  return rows.map(toPolicy);
}

export async function deletePolicy(tx: TenantTx, id: string): Promise<void> {
  const { rowCount } = await tx.query('DELETE FROM sla_policies WHERE tenant_id = $1 AND id = $2', [
    tx.tenantId,
    id,
  ]);
  if (rowCount === 0) throw notFound('SLA policy');
  // Its tickets fall to the next matching policy, or to none (their clocks are then cancelled).
  await scheduleSlaRecompute(tx, { openTickets: true });
}

/** The first policy whose conditions hold for a ticket, or undefined. */
export function matchPolicy(
  policies: Policy[],
  ticket: { priority: TicketPriority; requesterEmail: string | null; mailboxId: string | null },
): Policy | undefined {
  return policies.find((p) => {
    const c = p.conditions;
    if (c.priorities?.length && !c.priorities.includes(ticket.priority)) return false;
    if (c.requesterDomains?.length) {
      const domain = ticket.requesterEmail?.split('@')[1]?.toLowerCase();
      if (!domain || !c.requesterDomains.some((d) => d.toLowerCase() === domain)) return false;
    }
    if (c.mailboxIds?.length && (!ticket.mailboxId || !c.mailboxIds.includes(ticket.mailboxId))) return false;
    return Boolean(p.targets[ticket.priority]);
  });
}
