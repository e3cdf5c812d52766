// The conversation of a ticket, oldest first: who wrote each message and when, internal notes set
// apart, mail details (from, to, Cc), automatic-mail and bounce markers, attachments, and for each
// message an agent sent by mail its delivery status.
import { useQuery } from '@tanstack/react-query';
import { api, unwrap } from '../../api/client.ts';
import type { Message } from '../../api/types.ts';
import { formatTime } from '../../lib/time.ts';
import { MailFrame } from './MailFrame.tsx';

const DELIVERY_LABELS: Record<string, string> = {
  queued: 'Queued',
  sending: 'Sending',
  sent: 'Sent',
  delivered: 'Delivered',
  failed: 'Not sent',
  bounced: 'Bounced',
  skipped: 'Not sent',
};

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** A person's name by id (authors of messages), fetched once and kept. */
export function usePersonName(id: string | null | undefined): string | undefined {
  const person = useQuery({
    queryKey: ['person', id],
    queryFn: () => unwrap(api.GET('/api/v1/people/{id}', { params: { path: { id: id! } } })),
    enabled: Boolean(id),
    staleTime: 600_000,
    retry: false,
  });
  return person.data?.displayName;
}

function Delivery({ delivery }: { delivery: NonNullable<Message['delivery']> }) {
  const failed = ['failed', 'bounced', 'skipped'].includes(delivery.status);
  return (
    <p
      className={`delivery delivery-${failed ? 'failed' : delivery.status}`}
      data-delivery-status={delivery.status}
    >
      <span className="delivery-label">Email: {DELIVERY_LABELS[delivery.status] ?? delivery.status}</span>
      {delivery.attempt > 1 && <span> (attempt {delivery.attempt})</span>}
      {delivery.errorMessage && <span> — {delivery.errorMessage}</span>}
    </p>
  );
}

function MessageItem({ message, timeZone }: { message: Message; timeZone: string | null }) {
  const author = usePersonName(message.authorId);
  const mail = message.mail;
  const classification = (mail?.classification ?? null) as {
    automatic?: boolean;
    bounce?: boolean;
    reasons?: string[];
  } | null;
  const note = message.visibility === 'internal';
  const attachments = (mail?.attachments ?? []).filter((a) => !a.inline);
  const who = author ?? mail?.from ?? 'Someone';
  return (
    <article
      className={`message ${note ? 'message-note' : `message-${message.direction}`}`}
      aria-label={`${note ? 'Note' : 'Message'} from ${who}`}
      data-message-id={message.id}
    >
      <header className="message-head">
        <strong>{who}</strong>
        {note && <span className="marker marker-note">Internal note</span>}
        {classification?.automatic && (
          <span className="marker marker-auto" title={(classification.reasons ?? []).join('; ')}>
            Automatic mail
          </span>
        )}
        {classification?.bounce && (
          <span className="marker marker-bounce" title={(classification.reasons ?? []).join('; ')}>
            Bounce
          </span>
        )}
        <time dateTime={message.createdAt}>{formatTime(message.createdAt, timeZone)}</time>
      </header>
      {mail && (mail.to.length > 0 || mail.cc.length > 0) && (
        <p className="message-addresses">
          {mail.from && <span>From {mail.from}</span>}
          {mail.to.length > 0 && <span> · To {mail.to.map((a) => a.address).join(', ')}</span>}
          {mail.cc.length > 0 && <span> · Cc {mail.cc.map((a) => a.address).join(', ')}</span>}
        </p>
      )}
      {message.html ? (
        <MailFrame html={message.html} title={`Message from ${who}`} />
      ) : (
        <div className="message-text">{message.text}</div>
      )}
      {attachments.length > 0 && (
        <ul className="attachments" aria-label="Attachments">
          {attachments.map((a) => (
            <li key={a.id}>
              <a href={`/api/v1/attachments/${a.id}`} download={a.filename}>
                {a.filename}
              </a>{' '}
              <span className="muted">({size(a.size)})</span>
            </li>
          ))}
        </ul>
      )}
      {message.delivery && <Delivery delivery={message.delivery} />}
    </article>
  );
}

export function Conversation({ messages, timeZone }: { messages: Message[]; timeZone: string | null }) {
  return (
    <section className="conversation" aria-label="Conversation">
      {messages.map((m) => (
        <MessageItem key={m.id} message={m} timeZone={timeZone} />
      ))}
    </section>
  );
}
