// A test of a mailbox, step by step, in plain words: what receiving its mail needs (reach the
// provider, get a token or log in, read the folder). Changes nothing.
import { ProviderError } from '../../platform/provider-errors.ts';
import { withTenantRead } from '../../platform/db/tx.ts';
import { type Mailbox, mailboxCredentials } from './mailboxes.ts';
import { probeImapMailbox } from './providers/imap/probe.ts';
import { gmailClientFor, graphClientFor, providerUser } from './providers/clients.ts';
import type { UpkeepDeps } from './upkeep.ts';

export interface ProbeStep {
  step: string;
  ok: boolean;
  message: string;
}

export interface ProbeResult {
  ok: boolean;
  steps: ProbeStep[];
}

/** Runs the steps in order, stopping at the first that fails. */
async function steps(list: [string, () => Promise<string>][]): Promise<ProbeResult> {
  const done: ProbeStep[] = [];
  for (const [step, run] of list) {
    try {
      done.push({ step, ok: true, message: await run() });
    } catch (err) {
      const message =
        err instanceof ProviderError
          ? `${err.constructor.name === 'AuthExpired' ? 'refused: ' : ''}${err.message}`
          : ((err as Error)?.message ?? String(err));
      done.push({ step, ok: false, message });
      return { ok: false, steps: done };
    }
  }
  return { ok: true, steps: done };
}

export async function testMailbox(
  deps: UpkeepDeps,
  tenantId: string,
  mailbox: Mailbox,
): Promise<ProbeResult> {
  if (mailbox.kind === 'mime')
    return {
      ok: true,
      steps: [{ step: 'source', ok: true, message: 'raw MIME uploads need no connection' }],
    };
  if (mailbox.kind === 'imap') {
    const credentials = await withTenantRead(deps.pool, tenantId, (tx) =>
      mailboxCredentials(tx, deps.secretKey, mailbox.id),
    );
    return probeImapMailbox(mailbox, String(credentials?.['password'] ?? ''));
  }
  if (!mailbox.hasCredentials)
    return {
      ok: false,
      steps: [
        {
          step: 'credentials',
          ok: false,
          message: 'the mailbox has no credentials: connect it or give them',
        },
      ],
    };
  if (mailbox.kind === 'graph') {
    const client = await graphClientFor(deps, tenantId, mailbox);
    const user = providerUser(mailbox, 'graph');
    const folder = String(mailbox.settings.graph['folder'] ?? 'Inbox');
    return steps([
      [
        'token',
        async () => {
          await client.token();
          return 'a token was issued';
        },
      ],
      [
        'read',
        async () => {
          await client.deltaPage({ user, folder, since: deps.clock.now() });
          return `the folder ${folder} of ${user} can be read`;
        },
      ],
    ]);
  }
  const client = await gmailClientFor(deps, tenantId, mailbox);
  const user = providerUser(mailbox, 'gmail');
  return steps([
    [
      'token',
      async () => {
        await client.token();
        return 'a token was issued';
      },
    ],
    [
      'read',
      async () => `the mailbox ${user} can be read (history id ${await client.profileHistoryId(user)})`,
    ],
  ]);
}
