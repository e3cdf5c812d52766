// Speaks SMTP by hand over cleartext, one command at a time, for what an SMTP client library will
// not do (send past a declared SIZE, pause between RCPT TO and DATA). Each reply comes back whole,
// the lines of a multi-line reply joined with "\n".
import { once } from 'node:events';
import net from 'node:net';

export interface SmtpDialogue {
  /** The server's greeting. */
  greeting: string;
  /** Sends one command (or a message ending in a "." line) and answers the server's reply to it. */
  say(line: string): Promise<string>;
  close(): void;
}

export async function smtpDialogue(port: number, host = '127.0.0.1'): Promise<SmtpDialogue> {
  const socket = net.connect(port, host);
  const replies: string[] = [];
  const waiting: ((reply: string) => void)[] = [];
  let buffer = '';
  let current: string[] = [];
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      current.push(line);
      // "250-..." continues a reply, "250 ..." ends it.
      if (line[3] !== '-') {
        const reply = current.join('\n');
        current = [];
        const waiter = waiting.shift();
        if (waiter) waiter(reply);
        else replies.push(reply);
      }
    }
  });
  const next = () =>
    new Promise<string>((resolve) => {
      const ready = replies.shift();
      if (ready === undefined) waiting.push(resolve);
      else resolve(ready);
    });
  await once(socket, 'connect');
  return {
    greeting: await next(),
    say: (line) => {
      socket.write(`${line}\r\n`);
      return next();
    },
    close: () => socket.destroy(),
  };
}
