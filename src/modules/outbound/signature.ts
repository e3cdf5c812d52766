// The signature under an agent's reply: the agent's own (people metadata `signature`, plain text),
// else the tenant's signature template (the one named `default`, else the latest), else the built-in
// one, rendered for the ticket.
import type { TenantTx } from '../../platform/db/tx.ts';
import { escapeHtml } from '../../platform/html.ts';
import type { Mailbox } from '../inbound/mailboxes.ts';
import type { Person } from '../people/service.ts';
import type { Ticket } from '../tickets/model.ts';
import { defaultTemplate, renderForSending, variablesOf } from './templates.ts';

export interface Signature {
  text: string;
  html: string | null;
}

export async function signatureFor(
  tx: TenantTx,
  input: {
    author: Person;
    ticket: Ticket;
    requester: Person;
    mailbox: Mailbox;
  },
): Promise<Signature | undefined> {
  const own = input.author.metadata['signature'];
  if (typeof own === 'string' && own.trim() !== '') {
    const text = own.trim().slice(0, 4000);
    return { text, html: escapeHtml(text).replace(/\n/g, '<br>') };
  }
  const template = await defaultTemplate(tx, 'signature');
  // The ticket and its people as the reply read them: nothing read twice.
  const vars = variablesOf({
    ticket: input.ticket,
    requester: input.requester,
    agent: input.author,
    mailbox: input.mailbox,
  });
  const rendered = renderForSending(template, 'signature', vars);
  // The delimiter is the reply's to add.
  const text = rendered.text.replace(/^--[ \t]*\r?\n/, '').trim();
  return text === '' ? undefined : { text, html: rendered.html };
}
