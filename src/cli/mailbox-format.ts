// How `relaydesk mailbox` prints: durations a person reads at a glance ("2d 3h"), an aligned table,
// and a mailbox with its health as labelled lines. Pure functions of their input and `now`.
import type { MailboxHealth } from '../modules/inbound/health.ts';
import type { Mailbox } from '../modules/inbound/mailboxes.ts';

/** A duration in its two largest units: "2d 3h", "3h 12m", "45m", "40s". */
export function humanDuration(seconds: number): string {
  const units: [string, number][] = [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ];
  const s = Math.max(0, Math.floor(seconds));
  const first = units.findIndex(([, size]) => s >= size);
  if (first === -1) return '0s';
  const [unit, size] = units[first]!;
  const shown = [`${Math.floor(s / size)}${unit}`];
  const next = units[first + 1];
  // "3h 0m" reads worse than "3h".
  if (next && Math.floor((s % size) / next[1]) > 0)
    shown.push(`${Math.floor((s % size) / next[1])}${next[0]}`);
  return shown.join(' ');
}

/** Until an expiry: "2d 3h", "expired 5m ago", or "-" when there is none. */
export function expiresIn(expiresAt: string | null, now: Date): string {
  if (!expiresAt) return '-';
  const seconds = (Date.parse(expiresAt) - now.getTime()) / 1000;
  return seconds >= 0 ? humanDuration(seconds) : `expired ${humanDuration(-seconds)} ago`;
}

/** Since a past time: "3h 5m ago", or "-" when it never happened. */
export function ago(at: string | null, now: Date): string {
  if (!at) return '-';
  return `${humanDuration((now.getTime() - Date.parse(at)) / 1000)} ago`;
}

/** One line, at most `max` characters (a failure reason can be a provider's paragraph). */
export function oneLine(text: string | null, max = 60): string {
  if (!text) return '-';
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** Rows under a header, each column as wide as its widest cell, two spaces apart. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows].map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

export type MailboxWithHealth = Mailbox & { health: MailboxHealth };

export function mailboxRows(mailboxes: MailboxWithHealth[], now: Date): string[] {
  return table(
    ['ID', 'KIND', 'ADDRESS', 'HEALTH', 'EXPIRES IN', 'LAST MESSAGE', 'LAST ERROR'],
    mailboxes.map((m) => [
      m.id,
      m.kind,
      m.address,
      m.health.status,
      expiresIn(m.health.expiresAt, now),
      ago(m.health.lastMessageAt, now),
      oneLine(m.health.failureReason),
    ]),
  );
}

/** `mailbox show`: the mailbox (never its credentials), its settings and its whole health. */
export function mailboxDetail(m: MailboxWithHealth, now: Date): string[] {
  const h = m.health;
  const when = (at: string | null) => (at ? `${at} (${ago(at, now)})` : '-');
  const fields: [string, string][] = [
    ['id', m.id],
    ['kind', m.kind],
    ['address', m.address],
    ['display name', m.displayName ?? '-'],
    ['credentials', m.hasCredentials ? 'stored (encrypted; never shown)' : 'none'],
    ['created', m.createdAt],
    ['updated', m.updatedAt],
    ['', ''],
    ['health', h.status],
    ['subscription', h.subscriptionId ?? '-'],
    ['expires', h.expiresAt ? `${h.expiresAt} (in ${expiresIn(h.expiresAt, now)})` : '-'],
    ['last renewal', h.lastRenewalAt ? `${when(h.lastRenewalAt)}: ${h.lastRenewalResult ?? '-'}` : '-'],
    ['failure reason', h.failureReason ?? '-'],
    ['failures in a row', String(h.consecutiveFailures)],
    ['last notification', when(h.lastNotificationAt)],
    ['last message', when(h.lastMessageAt)],
    ['last reconcile', when(h.lastReconcileAt)],
    [
      'recovered by it',
      h.recoveredByLastReconcile === null ? '-' : `${h.recoveredByLastReconcile} message(s)`,
    ],
    ['', ''],
    ['settings', ''],
  ];
  const width = Math.max(...fields.map(([k]) => k.length));
  const lines = fields.map(([k, v]) => (k === '' ? '' : `${`${k}:`.padEnd(width + 2)}${v}`.trimEnd()));
  for (const line of JSON.stringify(m.settings, null, 2).split('\n')) lines.push(`  ${line}`);
  return lines;
}
