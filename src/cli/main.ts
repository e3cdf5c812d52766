// The `relaydesk` command. Thin: parses arguments, finds the database the way `start` does, calls the
// same service functions as the HTTP API, prints. Errors print one line on stderr and exit non-zero.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { registerDeliveryCommands } from './deliveries.ts';
import { CliError, wholeNumber } from './cli-error.ts';
import { EXIT_BAD_INPUT, EXIT_CODE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK } from './exit-codes.ts';
import { listenProblem } from './listen-errors.ts';
import { registerMailboxCommands } from './mailbox.ts';
import { registerSlaCommands } from './sla.ts';
import { registerUserCommands } from './user.ts';
import type * as Runtime from './runtime.ts';
import type { Logger } from '../platform/logging.ts';
import type { JobQueue } from '../platform/queue/queue.ts';
import { TOKEN_ROLES, type TokenRole } from '../modules/tokens/permissions.ts';
import { type Config, ConfigError, type ConfigOverrides, loadConfig, ROLES } from '../platform/config.ts';
import { AppError } from '../platform/errors.ts';
import { isUuid } from '../platform/ids.ts';
import { initialAdminTokenPath } from '../platform/initial-admin-token.ts';

// What commands run on (the database, the queue, the services) is loaded when a command needs it,
// not when the CLI starts: `relaydesk sla …` and `--help` then start in a fraction of the time.
let loaded: typeof Runtime | undefined;
const runtime = async (): Promise<typeof Runtime> => (loaded ??= await import('./runtime.ts'));

interface GlobalOptions {
  data?: string;
  logLevel?: string;
  dbWait?: string;
  publicUrl?: string;
}

const program = new Command()
  .name('relaydesk')
  .description('Relaydesk: a self-hostable, multi-tenant service-desk engine')
  .option('--data <dir>', 'data directory (default: $RELAYDESK_DATA_DIR or ./.relaydesk)')
  .option(
    '--log-level <level>',
    'log level (default: $LOG_LEVEL or info; commands other than start log warnings only)',
  )
  .option(
    '--db-wait <seconds>',
    'how long to wait for DATABASE_URL to answer (default: $RELAYDESK_DB_WAIT_SECONDS, or 30 for start and 5 for other commands)',
  )
  .option(
    '--public-url <url>',
    'the address providers and browsers reach this install at (default: $RELAYDESK_PUBLIC_URL): Graph notifications, OAuth redirects',
  )
  .showHelpAfterError()
  .exitOverride();

function configFor(command: Command, overrides: ConfigOverrides = {}): Config {
  const globals = command.optsWithGlobals<GlobalOptions>();
  return loadConfig(process.env, {
    dataDir: globals.data,
    logLevel: globals.logLevel,
    dbWaitSeconds: globals.dbWait,
    publicUrl: globals.publicUrl,
    ...overrides,
  });
}

/** Runs `fn` with a migrated database: DATABASE_URL, the running server's embedded PostgreSQL, or one started for this command. */
async function withDatabase<T>(
  command: Command,
  fn: (ctx: {
    db: Awaited<ReturnType<typeof Runtime.openDatabase>>;
    logger: Logger;
    config: Config;
    rt: typeof Runtime;
  }) => Promise<T>,
): Promise<T> {
  const rt = await runtime();
  const globals = command.optsWithGlobals<GlobalOptions>();
  const config = configFor(command, { logLevel: globals.logLevel ?? 'warn' });
  const logger = rt.createLogger(config.logLevel, process.stderr as never, config.logFormat);
  const db = await rt.openDatabase(config, logger, { purpose: 'cli', poolSize: 4 });
  try {
    await rt.migrateAll(db);
    return await fn({ db, logger, config, rt });
  } finally {
    await db.close();
  }
}

async function withQueue<T>(command: Command, fn: (queue: JobQueue) => Promise<T>): Promise<T> {
  return withDatabase(command, async ({ db, logger, rt }) => {
    const queue = new rt.JobQueue({
      connectionString: db.url,
      listen: !db.pooled,
      logger,
      registry: new rt.JobRegistry(),
      supervise: false,
      schedule: false,
      poolSize: 2,
    });
    await queue.start();
    try {
      return await fn(queue);
    } finally {
      await queue.stop({ graceful: false });
    }
  });
}

const out = (line: string) => process.stdout.write(`${line}\n`);

/** Files named, and the files inside directories named (sorted; hidden files skipped). */
async function collectMailFiles(paths: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    const info = await stat(p).catch(() => undefined);
    if (!info) throw new CliError(`${p}: no such file or directory`, EXIT_BAD_INPUT);
    if (info.isDirectory()) {
      for (const name of (await readdir(p)).sort()) {
        if (name.startsWith('.')) continue;
        const full = path.join(p, name);
        if ((await stat(full)).isFile() && /\.(eml|box|msg|mbox|txt)$|^[^.]+$/i.test(name)) files.push(full);
      }
    } else files.push(p);
  }
  return files;
}

/**
 * ` --data <dir>` when this command was given one (and runs on the embedded PostgreSQL), for a
 * command line printed to be run next: without it, that command would use another install.
 */
function dataOption(command: Command, config: Config): string {
  if (config.databaseUrl || command.optsWithGlobals<{ data?: string }>().data === undefined) return '';
  return ` --data ${/^[\w./@:+-]+$/.test(config.dataDir) ? config.dataDir : JSON.stringify(config.dataDir)}`;
}

program
  .command('start')
  .description('run Relaydesk (HTTP API, workers and scheduler; or one role) until Ctrl-C / SIGTERM')
  // Not commander's .choices(): a wrong role is then one of the configuration's problems, all listed at once.
  .option('--role <role>', `which part to run: ${ROLES.join(', ')} (default: $RELAYDESK_ROLE or all)`)
  .option('--port <n>', 'HTTP port (default: $PORT or 8080)')
  .option('--host <h>', 'HTTP host (default: $HOST or 127.0.0.1)')
  .option(
    '--smtp-port <n>',
    'also take mail in over SMTP on this port (default: $RELAYDESK_SMTP_PORT, or none)',
  )
  .action(
    async (options: { role?: string; port?: string; host?: string; smtpPort?: string }, command: Command) => {
      const config = configFor(command, {
        role: options.role,
        port: options.port,
        host: options.host,
        smtpPort: options.smtpPort,
      });
      const rt = await runtime();
      const { startRelaydesk } = await import('../app.ts');
      const logger = rt.createLogger(config.logLevel, undefined, config.logFormat);
      const started = Date.now();
      const running = await startRelaydesk({ config, logger }).catch((err: unknown) => {
        const problem = listenProblem(err, config.host, config.port);
        throw problem ? new CliError(problem, EXIT_BAD_INPUT) : err;
      });
      let signals = 0;
      const shutdown = (signal: string) => {
        signals++;
        if (signals > 1) {
          logger.warn({ signal }, 'second signal: exiting now');
          process.exit(EXIT_INTERRUPTED);
        }
        logger.info({ signal }, 'shutting down');
        running.stop().then(
          () => {
            logger.info('stopped');
            process.exit(EXIT_OK);
          },
          (err) => {
            logger.error({ err }, 'shutdown failed');
            process.exit(EXIT_FAILED);
          },
        );
      };
      process.on('SIGINT', () => shutdown('SIGINT'));
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      logger.info(
        {
          role: config.role,
          url: running.url,
          database: config.databaseUrl ? 'external' : 'embedded',
          ms: Date.now() - started,
        },
        'relaydesk is ready',
      );
      // One line for the person at the terminal on every start, whatever the log format.
      const lines = [
        running.url
          ? `Relaydesk is running at ${running.url}`
          : `Relaydesk is running (role ${config.role}, no HTTP server)`,
      ];
      if (running.url) lines.push(`The console is at ${running.url}/console/`);
      const token = running.unshownAdminToken;
      if (token) {
        lines.push(
          running.bootstrap
            ? `Created tenant "default" (${running.bootstrap.tenant.id}) and its admin API token:`
            : 'The admin API token of tenant "default", created by an earlier start that stopped before showing it:',
          '',
          `    ${token}`,
          '',
          `It is shown once; it is also in ${initialAdminTokenPath(config.dataDir)} (mode 0600).`,
          `Try: curl -H "Authorization: Bearer ${token}" ${running.url}/api/v1/me`,
          'To sign in to the console, invite yourself (it prints a link that sets your password):',
          `    npx relaydesk${config.publicUrl ? '' : ` --public-url ${running.url}`}${dataOption(command, config)} user invite --tenant default --email you@example.com --role admin`,
          '',
        );
      }
      process.stdout.write(`${lines.join('\n')}\n`, () => {
        if (token)
          running
            .adminTokenShown()
            .catch((err) => logger.warn({ err }, 'recording the token as shown failed'));
      });
    },
  );

program
  .command('migrate')
  .description('apply pending database migrations and install the queue schema')
  .action(async (_options: unknown, command: Command) => {
    await withDatabase(command, async ({ db, rt }) => {
      const { applied } = await rt.migrationStatus(db.pool);
      out(`database is at migration ${applied}`);
    });
  });

const tenant = program.command('tenant').description('manage tenants');
tenant
  .command('create <name>')
  .description('create a tenant; prints its id and a new admin API token (shown once)')
  .action(async (name: string, _options: unknown, command: Command) => {
    await withDatabase(command, async ({ db, logger, rt }) => {
      // Recorded in the tenant made (a tenant not made, a name taken, has no trail to be in).
      const created = await rt.auditedCliWrite(
        { pool: db.pool, logger },
        {
          tenantId: (c) => c.tenant.id,
          action: 'tenants.create',
          targetType: 'tenants',
          targetOf: (c) => c.tenant.id,
          // The name as asked; never the admin token made with the tenant.
          payload: { name },
          write: () => rt.createTenant(db.pool, { name }),
        },
      );
      out(`tenant\t${created.tenant.id}\t${created.tenant.name}`);
      out(`token\t${created.adminToken.token}`);
    });
  });
tenant
  .command('list')
  .description('list tenants: id and name, one per line')
  .action(async (_options: unknown, command: Command) => {
    await withDatabase(command, async ({ db, rt }) => {
      for (const t of await rt.listTenants(db.pool)) out(`${t.id}\t${t.name}`);
    });
  });
tenant
  .command('delete <id>')
  .description('delete a tenant and every row it owns')
  .option('--yes', 'confirm the deletion')
  .action(async (id: string, options: { yes?: boolean }, command: Command) => {
    if (!options.yes)
      throw new CliError(
        "refusing to delete without --yes (this removes all of the tenant's data)",
        EXIT_BAD_INPUT,
      );
    await withDatabase(command, async ({ db, logger, rt }) => {
      const t = await rt.findTenant(db.pool, id);
      // The tenant's audit trail is deleted with it (its rows cascade) and there is no trail outside
      // the tenants: a deletion that worked leaves no event; one that failed is recorded in the tenant.
      await rt.auditedCliWrite(
        { pool: db.pool, logger },
        {
          tenantId: t.id,
          removesTenant: true,
          action: 'tenants.delete',
          targetType: 'tenants',
          targetId: t.id,
          payload: null,
          write: () => rt.deleteTenant(db.pool, t.id),
        },
      );
      out(`deleted tenant ${t.id} (${t.name})`);
    });
  });

const token = program.command('token').description('manage API tokens');
token
  .command('create')
  .description("mint an API token for the tenant's first agent (or --person); prints it once")
  .requiredOption('--tenant <id>', 'tenant id or name')
  .addOption(new Option('--role <role>', 'token role').choices([...TOKEN_ROLES]).makeOptionMandatory())
  .option('--label <label>', 'what the token is for', '')
  .option('--person <id>', "person the token acts as (default: the tenant's first agent)")
  .action(
    async (
      options: { tenant: string; role: TokenRole; label: string; person?: string },
      command: Command,
    ) => {
      await withDatabase(command, async ({ db, logger, rt }) => {
        const t = await rt.findTenant(db.pool, options.tenant);
        const minted = await rt.auditedCliWrite(
          { pool: db.pool, logger },
          {
            tenantId: t.id,
            action: 'tokens.create',
            targetType: 'tokens',
            targetOf: (m) => m.id,
            // As POST /tokens would be asked (never the token: it does not exist yet).
            payload: {
              role: options.role,
              label: options.label,
              ...(options.person === undefined ? {} : { personId: options.person }),
            },
            write: () =>
              rt.withTenant(db.pool, t.id, async (tx) => {
                // As POST /tokens does: a person of this tenant (else not_found), never the
                // database's own refusal of a malformed id or a missing row.
                if (options.person !== undefined && !isUuid(options.person))
                  throw new CliError(
                    `--person must be a person's id (UUID), got "${options.person}"`,
                    EXIT_BAD_INPUT,
                  );
                if (options.person !== undefined) await rt.getPerson(tx, options.person);
                const personId = options.person ?? (await rt.firstAgentId(tx));
                if (!personId)
                  throw new CliError(`tenant ${t.id} has no agent to own the token; pass --person`);
                return rt.mintToken(tx, {
                  personId,
                  role: options.role,
                  label: options.label,
                  actor: 'system:cli',
                });
              }),
          },
        );
        out(`${minted.id}\t${minted.role}\t${minted.token}`);
      });
    },
  );
token
  .command('revoke <previewOrId>')
  .description('revoke a token by id or by its 4-character preview')
  // A preview is base64url and may start with "-": take it as the argument, not as an option.
  .allowUnknownOption()
  .action(async (previewOrId: string, _options: unknown, command: Command) => {
    await withDatabase(command, async ({ db, logger, rt }) => {
      // A token not found (or a preview several share) names no tenant to record the attempt in.
      const found = await rt.findTokenForRevocation(db.pool, previewOrId);
      const revoked = await rt.auditedCliWrite(
        { pool: db.pool, logger },
        {
          tenantId: found.tenantId,
          action: 'tokens.delete',
          targetType: 'tokens',
          targetId: found.id,
          // As DELETE /tokens/:id is: no body.
          payload: null,
          write: () =>
            rt.withTenant(db.pool, found.tenantId, (tx) => rt.revokeToken(tx, found.id, 'system:cli')),
        },
      );
      out(`revoked ${revoked.id} (…${revoked.preview}) at ${revoked.revokedAt}`);
    });
  });

const people = program.command('people').description('find and merge people');
people
  .command('resolve')
  .description('print the id and name of the person with this email or external identity (exit 1 if none)')
  .requiredOption('--tenant <id>', 'tenant id or name')
  .option('--email <address>', 'an email address (primary or alias)')
  .option('--kind <kind>', 'identity kind, e.g. entra, slack, github')
  .option('--external-id <id>', 'the identity in that system')
  .action(
    async (
      options: { tenant: string; email?: string; kind?: string; externalId?: string },
      command: Command,
    ) => {
      const byIdentity = options.kind !== undefined && options.externalId !== undefined;
      if (byIdentity === (options.email !== undefined)) {
        throw new CliError('pass either --email, or --kind with --external-id', EXIT_BAD_INPUT);
      }
      await withDatabase(command, async ({ db, rt }) => {
        const t = await rt.findTenant(db.pool, options.tenant);
        const person = await rt.withTenant(db.pool, t.id, (tx) =>
          rt.resolvePerson(
            tx,
            byIdentity ? { kind: options.kind!, externalId: options.externalId! } : { email: options.email! },
          ),
        );
        if (!person) throw new CliError('no person has that identity or address', EXIT_FAILED);
        out(`${person.id}\t${person.displayName}${person.status === 'suspended' ? '\t(suspended)' : ''}`);
      });
    },
  );
people
  .command('merge <sourceId> <targetId>')
  .description(
    'merge the source person into the target (emails, identities, tokens, tickets, messages) and remove the source',
  )
  .requiredOption('--tenant <id>', 'tenant id or name')
  .action(async (sourceId: string, targetId: string, options: { tenant: string }, command: Command) => {
    await withDatabase(command, async ({ db, logger, rt }) => {
      const t = await rt.findTenant(db.pool, options.tenant);
      const merged = await rt.auditedCliWrite(
        { pool: db.pool, logger },
        {
          tenantId: t.id,
          action: 'people.merge',
          targetType: 'people',
          targetId,
          // As POST /people/:targetId/merge would be asked.
          payload: { sourceId },
          write: () =>
            rt.withTenant(db.pool, t.id, (tx) =>
              rt.mergePeople(tx, { sourceId, targetId, actor: 'system:cli' }),
            ),
        },
      );
      out(`${merged.id}\t${merged.displayName}\t${merged.emails.map((e) => e.address).join(',')}`);
    });
  });

program
  .command('ingest <paths...>')
  .description(
    'put .eml files (or directories of them) through the inbound pipeline; one line per file: file, outcome, ticket or reason',
  )
  .requiredOption('--tenant <id>', 'tenant id or name')
  .requiredOption('--mailbox <id|address>', 'the mailbox the mail arrived at')
  .action(async (paths: string[], options: { tenant: string; mailbox: string }, command: Command) => {
    const files = await collectMailFiles(paths);
    if (files.length === 0) throw new CliError('no files to ingest', EXIT_BAD_INPUT);
    let failed = 0;
    await withDatabase(command, async ({ db, logger, config, rt }) => {
      const t = await rt.findTenant(db.pool, options.tenant);
      const mailbox = await rt.withTenant(db.pool, t.id, (tx) => rt.findMailbox(tx, options.mailbox));
      const secretKey = await rt.resolveSecretKey(config);
      const queue = new rt.JobQueue({
        connectionString: db.url,
        listen: !db.pooled,
        logger,
        registry: new rt.JobRegistry(),
        supervise: false,
        schedule: false,
        poolSize: 2,
      });
      await queue.start();
      try {
        const deps = {
          pool: db.pool,
          messageIdKey: rt.messageIdKey(secretKey),
          secretKey,
          logger,
          clock: rt.systemClock,
        };
        for (const file of files) {
          try {
            const raw = await readFile(file);
            // Recorded as POST /mailboxes/:id/messages records the same message: on the mailbox, hashing
            // the message's type, size and SHA-256 (never its bytes, nor the file's local path).
            const outcome = await rt.auditedCliWrite(
              { pool: db.pool, logger },
              {
                tenantId: t.id,
                action: 'mailboxes.messages.create',
                targetType: 'mailboxes',
                targetId: mailbox.id,
                payload: rt.rawBodyPayload('message/rfc822', raw),
                // What this command reports as failed (quarantined) is recorded so, without a code.
                failedIf: (o) => (o.status === 'quarantined' ? { errorCode: null } : undefined),
                // Processed here; a running worker may pick the job up too, and the message key makes that harmless.
                write: () => rt.ingestRawMessage(deps, queue, { tenantId: t.id, mailboxId: mailbox.id, raw }),
              },
            );
            const detail = outcome.ticketNumber ?? outcome.reason ?? '';
            const shown = outcome.status === 'quarantined' ? 'failed' : outcome.status;
            if (shown === 'failed') failed++;
            out(
              `${file}\t${shown}\t${outcome.status === 'quarantined' ? `quarantined: ${outcome.reason}` : detail}`,
            );
          } catch (err) {
            failed++;
            out(`${file}\tfailed\t${(err as Error).message.replace(/\s+/g, ' ').slice(0, 200)}`);
          }
        }
      } finally {
        await queue.stop({ graceful: false });
      }
    });
    if (failed > 0) throw new CliError(`${failed} of ${files.length} files failed`, EXIT_FAILED);
  });

const queue = program.command('queue').description('inspect the job queue');
queue
  .command('stats')
  .description('depth, active jobs, oldest waiting job and dead-letter count per queue')
  .action(async (_options: unknown, command: Command) => {
    await withQueue(command, async (q) => {
      out('queue\tready\tdeferred\tactive\toldest_s\tdead_letter');
      for (const s of await q.stats())
        out(`${s.queue}\t${s.ready}\t${s.deferred}\t${s.active}\t${s.oldestAgeSeconds}\t${s.deadLettered}`);
    });
  });
const dlq = queue.command('dlq').description('dead-letter queues');
/** The --queue given, refused when no queue has that name (as the API answers 404 for it). */
async function knownQueue(q: JobQueue, name: string | undefined): Promise<{ queue?: string }> {
  if (name === undefined) return {};
  const names = await q.queueNames();
  if (!names.includes(name))
    throw new CliError(
      `no queue named "${name.slice(0, 100)}" (queues: ${names.join(', ')})`,
      EXIT_BAD_INPUT,
    );
  return { queue: name };
}
dlq
  .command('list')
  .description('jobs in the dead-letter queues, oldest first')
  .option('--queue <q>', 'only this queue')
  .option('--limit <n>', 'at most this many (1-1000)', '100')
  .action(async (options: { queue?: string; limit: string }, command: Command) => {
    const limit = wholeNumber(options.limit, '--limit', 1, 1000);
    await withQueue(command, async (q) => {
      const entries = await q.deadLetters({ ...(await knownQueue(q, options.queue)), limit });
      for (const e of entries)
        out(`${e.id}\t${e.queue}\t${e.createdAt}\t${JSON.stringify(e.payload)}\t${JSON.stringify(e.error)}`);
      if (entries.length === 0) process.stderr.write('no dead-lettered jobs\n');
    });
  });
dlq
  .command('redrive')
  .description('move dead-lettered jobs back to their queue to run again')
  .option('--queue <q>', 'only this queue')
  .action(async (options: { queue?: string }, command: Command) => {
    await withQueue(command, async (q) => {
      out(`redriven ${await q.redrive(await knownQueue(q, options.queue))}`);
    });
  });

registerMailboxCommands(program, withDatabase, out);
registerDeliveryCommands(program, withDatabase, out);
registerSlaCommands(program);
registerUserCommands(program, withDatabase, out);
program
  .command('demo')
  .description(
    'run Relaydesk with the simulators (Graph, Gmail, SMTP, Teams Bot Framework, Slack, a webhook receiver), send sample mail through every ingress path, answer by email, notify and act from Teams, print the outcome',
  )
  // Not $PORT: that is the quick start's server, which may be running beside the demo.
  .option('--port <n>', 'HTTP port (default: a free port)')
  .action(async (options: { port?: string }, command: Command) => {
    const globals = command.optsWithGlobals<{ data?: string; logLevel?: string }>();
    const config = configFor(command, {
      // Not $RELAYDESK_DATA_DIR either: that is the server's, and the demo keeps its own.
      dataDir: globals.data ?? './.relaydesk-demo',
      logLevel: globals.logLevel ?? 'warn',
      port: options.port ?? 0,
    });
    const { runDemo } = await import('./demo.ts');
    await runDemo(config, out).catch((err: unknown) => {
      const problem = listenProblem(err, config.host, config.port);
      throw problem ? new CliError(problem, EXIT_BAD_INPUT) : err;
    });
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? EXIT_OK : EXIT_BAD_INPUT);
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`relaydesk: ${err.message}\n`);
    process.exit(EXIT_BAD_INPUT);
  }
  if (err instanceof CliError) {
    process.stderr.write(`relaydesk: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  if (err instanceof AppError) {
    process.stderr.write(`relaydesk: ${err.message} (${err.code})\n`);
    process.exit(EXIT_CODE[err.code]);
  }
  process.stderr.write(`relaydesk: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(EXIT_FAILED);
}
