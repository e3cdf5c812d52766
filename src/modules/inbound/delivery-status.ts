// The machine-readable part of a delivery-status notification (RFC 3464, message/delivery-status):
// what the reporting MTA says happened to each recipient of the mail it reports on. Pure: a
// function of the part's text (mime.ts deliveryStatusText finds it in the raw report).
//
// The part is a block of per-message fields (Reporting-MTA, Arrival-Date, ...), then one block per
// recipient, blocks separated by blank lines, each block header-like fields that may be folded:
//
//   Final-Recipient: rfc822; user@example.org
//   Action: failed
//   Status: 5.1.1
//   Diagnostic-Code: smtp; 550 5.1.1 <user@example.org>: Recipient address rejected
//
// A report often covers several recipients of one mail (To and Cc alike), and says more than
// "failed": `delayed` (still trying), `delivered`, `relayed` (handed on to a system that reports
// nothing further), `expanded` (delivered to a list or alias, which forwarded it).

export const DSN_ACTIONS = ['failed', 'delayed', 'delivered', 'relayed', 'expanded'] as const;
export type DsnAction = (typeof DSN_ACTIONS)[number];

/** What a report says of one recipient. */
export interface RecipientStatus {
  /** Final-Recipient's address (as the reporting MTA knew it), when it is an email address. */
  finalRecipient: string | null;
  /** Original-Recipient's address (as the sender gave it, when the MTAs kept it). */
  originalRecipient: string | null;
  action: DsnAction;
  /** The status code class.subject.detail (`5.1.1`), or null when missing or malformed. */
  status: string | null;
  /** Diagnostic-Code as reported (`smtp; 550 5.1.1 ...`), unfolded, or null. */
  diagnostic: string | null;
}

/** Reports larger than this are cut: no MTA reports on that many recipients of one mail. */
const MAX_RECIPIENTS = 1000;

// Control characters (NUL among them) cannot be stored in text columns, nor mean anything here.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]+/g;
const cleaned = (value: string) => value.replace(CONTROL, ' ').replace(/\s+/g, ' ').trim();

/** A block's fields by lower-case name, the first of each (continuation lines unfolded). */
function fieldsOf(lines: string[]): Map<string, string> {
  const fields = new Map<string, string>();
  let last: string | undefined;
  for (const line of lines) {
    if (/^[ \t]/.test(line)) {
      if (last !== undefined && fields.get(last) !== undefined)
        fields.set(last, `${fields.get(last)!} ${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      last = undefined;
      continue;
    }
    const name = line.slice(0, colon).trim().toLowerCase();
    if (fields.has(name)) {
      last = undefined; // a repeated field is ignored, its continuation lines too
      continue;
    }
    fields.set(name, line.slice(colon + 1).trim());
    last = name;
  }
  return fields;
}

/** The address of a recipient field (`rfc822; user@example.org`), when it is an email address. */
function addressOf(value: string | undefined): string | null {
  if (value === undefined) return null;
  const semicolon = value.indexOf(';');
  const type = semicolon < 0 ? 'rfc822' : value.slice(0, semicolon).trim().toLowerCase();
  // utf-8 is RFC 6533's type for internationalised addresses, an email address as well.
  if (type !== 'rfc822' && type !== 'utf-8') return null;
  const address = cleaned(value.slice(semicolon + 1))
    .replace(/^<(.*)>$/, '$1')
    .trim();
  return /^[^\s@]+@[^\s@]+$/.test(address) ? address : null;
}

/** Each per-recipient block of a message/delivery-status part that names a known action, in order. */
export function parseDeliveryStatus(text: string): RecipientStatus[] {
  const blocks: string[][] = [[]];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') {
      if (blocks.at(-1)!.length > 0) blocks.push([]);
    } else blocks.at(-1)!.push(line);
  }
  const out: RecipientStatus[] = [];
  for (const block of blocks) {
    const fields = fieldsOf(block);
    // The first word only: some MTAs add a comment ("failed (bad address)").
    const action = /^[a-z]+/i.exec(fields.get('action') ?? '')?.[0]?.toLowerCase();
    if (!DSN_ACTIONS.includes(action as DsnAction)) continue;
    const status = /^([245])\.(\d{1,3})\.(\d{1,3})(?!\S)/.exec(fields.get('status') ?? '');
    const diagnostic = cleaned(fields.get('diagnostic-code') ?? '');
    out.push({
      finalRecipient: addressOf(fields.get('final-recipient')),
      originalRecipient: addressOf(fields.get('original-recipient')),
      action: action as DsnAction,
      status: status ? `${status[1]}.${status[2]}.${status[3]}` : null,
      diagnostic: diagnostic === '' ? null : diagnostic,
    });
    if (out.length === MAX_RECIPIENTS) break;
  }
  return out;
}
