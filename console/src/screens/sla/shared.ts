// What the SLA screens share: calendars and policies as the API gives them, durations in words.
import type { Json } from '../../api/types.ts';
import type { TicketPriority, TicketStatus } from '../../api/types.ts';

export type CalendarRecord = Json<'/api/v1/calendars/{id}', 'get'>;
export type PolicyRecord = Json<'/api/v1/sla-policies/{id}', 'get'>;

export const WEEK = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEK)[number];
export const DAY_NAMES: Record<Weekday, string> = {
  mon: 'Monday',
  tue: 'Tuesday',
  wed: 'Wednesday',
  thu: 'Thursday',
  fri: 'Friday',
  sat: 'Saturday',
  sun: 'Sunday',
};

/** The calendar file format (what POST /calendars takes, and `calendar` of a stored one). */
export interface CalendarSpec {
  timeZone: string;
  alwaysOpen?: boolean;
  weekly?: Partial<Record<Weekday, [string, string][]>>;
  holidays?: string[];
  recurringHolidays?: string[];
}

export const METRICS = ['firstResponse', 'nextResponse', 'resolution'] as const;
export type MetricKey = (typeof METRICS)[number];
export const METRIC_LABELS: Record<MetricKey, string> = {
  firstResponse: 'First response',
  nextResponse: 'Next response',
  resolution: 'Resolution',
};

export type EscalationAction =
  | { type: 'reassign'; personId: string }
  | { type: 'set_priority'; priority: TicketPriority }
  | { type: 'notify'; role?: string; personId?: string };
export interface Escalation {
  percent: number;
  actions: EscalationAction[];
}

/** A policy's loosely typed fields (records in the OpenAPI document) as the screens read them. */
export interface PolicyShape {
  conditions: { priorities?: TicketPriority[]; requesterDomains?: string[]; mailboxIds?: string[] };
  targets: Partial<Record<TicketPriority, Partial<Record<MetricKey, number>>>>;
  pauseStatuses: Partial<Record<MetricKey, TicketStatus[]>>;
  escalations: Escalation[];
}
export const shapeOf = (p: PolicyRecord): PolicyShape => p as unknown as PolicyShape;

/** Seconds as "1d 2h 30m" (what the duration fields take back). */
export function durationText(seconds: number | undefined): string {
  if (!seconds) return '';
  const parts: string[] = [];
  let rest = seconds;
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  return parts.join(' ');
}

/**
 * "1d 2h 30m", "4h", "90m", "45s" or a bare number of minutes, as seconds; '' is undefined (no
 * target); anything else is NaN.
 */
export function parseDuration(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  if (t === '') return undefined;
  if (/^\d+$/.test(t)) return Number(t) * 60;
  const re = /(\d+)\s*(d|h|m|s)/gy;
  let total = 0;
  let at = 0;
  for (;;) {
    while (t[at] === ' ') at++;
    if (at >= t.length) break;
    re.lastIndex = at;
    const m = re.exec(t);
    if (!m) return NaN;
    total += Number(m[1]) * { d: 86_400, h: 3600, m: 60, s: 1 }[m[2] as 'd' | 'h' | 'm' | 's'];
    at = re.lastIndex;
  }
  return total > 0 ? total : NaN;
}
