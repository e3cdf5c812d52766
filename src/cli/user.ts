// `relaydesk user`: invite an agent to the console and reset a password from the command line,
// through the same operations as the API (sessions/accounts.ts). Each prints the single-use link
// (the first agent of a new install has no admin in the console to invite them) and mails it when
// the tenant has a mailbox to send from. Both are in the audit trail (audit.ts), never their links.
import { type Command, Option } from 'commander';
import type { Config } from '../platform/config.ts';
import { CliError } from './cli-error.ts';
import { EXIT_BAD_INPUT } from './exit-codes.ts';
import { type WithDatabase, withJobQueue } from './mailbox.ts';

/** people/service.ts PERSON_ROLES, spelled out so that parsing the arguments loads no module. */
const ROLES = ['agent', 'admin', 'viewer'] as const;

/** Where links lead: RELAYDESK_PUBLIC_URL, else this machine's address of the server. */
export function linkBase(config: Pick<Config, 'publicUrl' | 'host' | 'port'>): string {
  if (config.publicUrl) return config.publicUrl;
  const host = ['0.0.0.0', '::', ''].includes(config.host)
    ? 'localhost'
    : config.host.includes(':')
      ? `[${config.host}]`
      : config.host;
  return `http://${host}:${config.port}`;
}

export function registerUserCommands(
  program: Command,
  withDatabase: WithDatabase,
  out: (line: string) => void,
): void {
  const user = program
    .command('user')
    .description(
      'invite agents to the console and reset their passwords (prints the link; mails it when it can)',
    );

  user
    .command('invite')
    .description(
      'invite the agent with this address to the console (created, status invited, when new): prints a link good for 7 days',
    )
    .requiredOption('--tenant <name|id>', 'tenant name or id')
    .requiredOption('--email <address>', "the agent's email address (they sign in with it)")
    .option('--name <display name>', 'the name of a new agent (default: the part before @)')
    .addOption(new Option('--role <role>', 'the role of a new agent (default agent)').choices([...ROLES]))
    .action(
      async (
        options: { tenant: string; email: string; name?: string; role?: (typeof ROLES)[number] },
        command: Command,
      ) => {
        await withDatabase(command, async (ctx) => {
          const { db, logger, rt, config } = ctx;
          const tenant = await rt.findTenant(db.pool, options.tenant);
          const secretKey = await rt.resolveSecretKey(config);
          // As POST /people/:id/invitation, on the person invited (made when new); the hash is of
          // what was asked (the address, and the name and role of a new agent), never the link.
          const invitation = await rt.auditedCliWrite(
            { pool: db.pool, logger },
            {
              tenantId: tenant.id,
              action: 'people.invitation.create',
              targetType: 'people',
              targetOf: (i) => i.personId,
              payload: {
                email: options.email,
                ...(options.name === undefined ? {} : { displayName: options.name }),
                ...(options.role === undefined ? {} : { role: options.role }),
              },
              write: () =>
                withJobQueue(ctx, (send) =>
                  rt.withTenant(db.pool, tenant.id, (tx) =>
                    rt.inviteByEmail(tx, {
                      email: options.email,
                      displayName: options.name,
                      role: options.role,
                      baseUrl: linkBase(config),
                      now: rt.systemClock.now(),
                      mail: { messageIdKey: rt.messageIdKey(secretKey), send },
                    }),
                  ),
                ),
            },
          );
          out(invitation.link);
          out(
            invitation.mailed
              ? `mail queued to ${options.email.trim()} (\`relaydesk deliveries list\` shows whether it went); the link works once, until ${invitation.expiresAt.toISOString()}`
              : `not mailed (the tenant has no mailbox to send from): hand the link over; it works once, until ${invitation.expiresAt.toISOString()}`,
          );
        });
      },
    );

  user
    .command('reset-password')
    .description('print a link that sets a new password for the agent with this address (good for an hour)')
    .requiredOption('--tenant <name|id>', 'tenant name or id')
    .requiredOption('--email <address>', "the agent's email address")
    .action(async (options: { tenant: string; email: string }, command: Command) => {
      if (options.email.trim() === '') throw new CliError('--email must not be empty', EXIT_BAD_INPUT);
      await withDatabase(command, async (ctx) => {
        const { db, logger, rt, config } = ctx;
        const tenant = await rt.findTenant(db.pool, options.tenant);
        const secretKey = await rt.resolveSecretKey(config);
        // Named as POST /password-reset would be (which, asked without a token, records nothing),
        // on the person whose link it is; the hash is of {email} as that route's body says it.
        const reset = await rt.auditedCliWrite(
          { pool: db.pool, logger },
          {
            tenantId: tenant.id,
            action: 'password_reset.create',
            targetType: 'people',
            targetOf: (r) => r.personId,
            payload: { email: options.email },
            write: () =>
              withJobQueue(ctx, (send) =>
                rt.withTenant(db.pool, tenant.id, (tx) =>
                  rt.resetByEmail(tx, {
                    email: options.email,
                    baseUrl: linkBase(config),
                    now: rt.systemClock.now(),
                    mail: { messageIdKey: rt.messageIdKey(secretKey), send },
                  }),
                ),
              ),
          },
        );
        out(reset.link);
        out(
          reset.mailed
            ? `mail queued to ${options.email.trim()} (\`relaydesk deliveries list\` shows whether it went); the link works once, until ${reset.expiresAt.toISOString()}`
            : `not mailed (the tenant has no mailbox to send from): hand the link over; it works once, until ${reset.expiresAt.toISOString()}`,
        );
      });
    });
}
