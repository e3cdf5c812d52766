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

/**
 * The provider client, or the failed step that says why there can be none: credentials that name no
 * refresh token (a mailbox still to be connected) or no app registration to use it with.
 */
async function clientOrStep<C>(make: () => Promise<C>): Promise<C | ProbeResult> {
  try {
    return await make();
  } catch (err) {
    if (!(err instanceof ProviderError)) throw err;
    return { ok: false, steps: [{ step: 'credentials', ok: false, message: err.message }] };
  }
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
    const client = await clientOrStep(() => graphClientFor(deps, tenantId, mailbox));
    if ('steps' in client) return client;
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
  const client = await clientOrStep(() => gmailClientFor(deps, tenantId, mailbox));
  if ('steps' in client) return client;
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
