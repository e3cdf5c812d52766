// The signature under an agent's reply: the agent's own (metadata.signature, plain text), else the
// tenant's signature template rendered for the ticket, else none.
import type { TenantTx } from '../../platform/db/tx.ts';
import type { Mailbox } from '../inbound/mailboxes.ts';
import type { Person } from '../people/service.ts';
import type { Ticket } from '../tickets/model.ts';

export interface Signature {
  text: string;
  html: string | null;
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export async function signatureFor(
  _tx: TenantTx,
  input: { author: Person; ticket: Ticket; mailbox: Mailbox; publicUrl?: string | undefined },
): Promise<Signature | undefined> {
  const own = input.author.metadata['signature'];
  if (typeof own === 'string' && own.trim() !== '') {
    const text = own.trim().slice(0, 4000);
    return { text, html: escapeHtml(text).replace(/\n/g, '<br>') };
  }
  return undefined;
}
