// What the provider simulators were asked to send, kept as the MIME the provider would send on, so a
// test can compare it byte for byte and the simulated search by Message-ID (Graph's internetMessageId
// filter, Gmail's rfc822msgid:) finds it.

export interface SentMessage {
  user: string;
  raw: Buffer;
  /** On the simulator's clock. */
  at: Date;
}

/** The value of the first `name` header (folded lines joined), or undefined when there is none. */
export function headerOf(raw: Buffer, name: string): string | undefined {
  const head = raw.toString('latin1').split(/\r?\n\r?\n/)[0] ?? '';
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const value = new RegExp(`^${escaped}:(.*(?:\\r?\\n[ \\t].*)*)`, 'im').exec(head)?.[1];
  return value?.replace(/\r?\n(?=[ \t])/g, '').trim();
}

/** A Message-ID without its angle brackets, for comparing the forms with and without them. */
export const bareMessageId = (id: string): string => id.trim().replace(/^<(.*)>$/, '$1');

export class SentMail {
  private readonly list: (SentMessage & { id: string })[] = [];

  record(id: string, message: SentMessage): void {
    this.list.push({ id, ...message });
  }

  all(): SentMessage[] {
    return this.list.map(({ user, raw, at }) => ({ user, raw: Buffer.from(raw), at: new Date(at) }));
  }

  clear(): void {
    this.list.length = 0;
  }

  /** Ids of what `user` sent with exactly this Message-ID header value. */
  idsByMessageId(user: string, messageId: string): string[] {
    return this.list
      .filter(
        (m) => m.user.toLowerCase() === user.toLowerCase() && headerOf(m.raw, 'Message-ID') === messageId,
      )
      .map((m) => m.id);
  }
}
