// A real IMAP server for tests: Debian's dovecot-imapd with a throw-away configuration on a loopback
// port, one mailbox user. Installed by apt-get when missing (the tests need it; so does CI).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensureDebianPackage } from './debian-packages.ts';
import { freePort } from './relaydesk-process.ts';
import { ImapFlow } from 'imapflow';

const DOVECOT = '/usr/sbin/dovecot';

export function ensureDovecotInstalled(): void {
  ensureDebianPackage('dovecot-imapd', DOVECOT);
}

export interface Dovecot {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Changes UIDVALIDITY of INBOX (by recreating the mailbox's index), as a server migration would. */
  resetUidValidity(): Promise<void>;
  stop(): Promise<void>;
}

export async function startDovecot(user = 'support@imap.test'): Promise<Dovecot> {
  ensureDovecotInstalled();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-dovecot-'));
  await chmod(dir, 0o755);
  const password = randomBytes(9).toString('base64url');
  const port = await freePort();
  const mail = path.join(dir, 'mail');
  await mkdir(mail, { recursive: true });
  await mkdir(path.join(dir, 'run'), { recursive: true });
  await mkdir(path.join(dir, 'state'), { recursive: true });
  const ids = {
    uid: Number(execFileSync('id', ['-u', 'dovecot']).toString()),
    gid: Number(execFileSync('id', ['-g', 'dovecot']).toString()),
  };
  await chown(mail, ids.uid, ids.gid);
  await writeFile(path.join(dir, 'users'), `${user}:{PLAIN}${password}::::::\n`, { mode: 0o644 });
  const config = `
base_dir = ${dir}/run
state_dir = ${dir}/state
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = ${dir}/dovecot.log
mail_location = maildir:${mail}/%u
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=${mail}/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
`;
  const conf = path.join(dir, 'dovecot.conf');
  await writeFile(conf, config);
  const child: ChildProcess = spawn(DOVECOT, ['-F', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) break;
    if (child.exitCode !== null || i > 100) throw new Error(`dovecot did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    async resetUidValidity() {
      // dovecot keeps UIDVALIDITY in dovecot-uidlist; removing the maildir's index and uidlist makes
      // it assign a new one, like a restored or migrated mailbox.
      const box = path.join(mail, user);
      for (const f of ['dovecot-uidlist', 'dovecot.index', 'dovecot.index.log', 'dovecot.index.cache'])
        await rm(path.join(box, f), { force: true });
      await new Promise((r) => setTimeout(r, 1100)); // UIDVALIDITY is a timestamp; make sure it differs
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** An IMAP client logged in to the test mailbox as a mail client would be (not yet connected). */
export function imapClient(dovecot: Pick<Dovecot, 'host' | 'port' | 'user' | 'password'>): ImapFlow {
  return new ImapFlow({
    host: dovecot.host,
    port: dovecot.port,
    secure: false,
    auth: { user: dovecot.user, pass: dovecot.password },
    logger: false,
  });
}
