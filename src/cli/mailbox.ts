// `relaydesk mailbox`: create, list, show, test and renew mailboxes from the command line, through
// the same operations as the API (mailboxes.ts, probe.ts, upkeep.ts). Its writes (create, renew,
// connect) are in the audit trail as the API's are (audit.ts); `test` changes nothing and is not. A mailbox is named by its id
// or its address, in the tenant given with --tenant, or in the only tenant when there is one.
import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import type * as Runtime from './runtime.ts';
import type { MailboxKind } from '../modules/inbound/mailboxes.ts';
import type { renewNow, UpkeepDeps } from '../modules/inbound/upkeep.ts';
import type { Config } from '../platform/config.ts';
import type { Logger } from '../platform/logging.ts';
import type { JobContext } from '../platform/queue/registry.ts';
import { CliError } from './cli-error.ts';
import { EXIT_BAD_INPUT, EXIT_FAILED } from './exit-codes.ts';
import { mailboxDetail, mailboxRows, type MailboxWithHealth } from './mailbox-format.ts';

/** mailboxes.ts MAILBOX_KINDS, spelled out so that parsing the arguments loads no module. */
const KINDS = ['imap', 'graph', 'gmail', 'mime'] as const satisfies readonly MailboxKind[];

type Db = Awaited<ReturnType<typeof Runtime.openDatabase>>;
interface Ctx {
  db: Db;
  logger: Logger;
  config: Config;
  rt: typeof Runtime;
}
export type WithDatabase = <T>(command: Command, fn: (ctx: Ctx) => Promise<T>) => Promise<T>;

export const tenantOption = (): Option =>
  new Option('--tenant <id>', 'tenant id or name (default: the only tenant, when there is one)');

/** The tenant named, or the only one; several and none named is bad input. */
export async function chooseTenant(
  ctx: Ctx,
  given: string | undefined,
): Promise<{ id: string; name: string }> {
  if (given !== undefined) return ctx.rt.findTenant(ctx.db.pool, given);
  const all = await ctx.rt.listTenants(ctx.db.pool);
  if (all.length === 1) return all[0]!;
  throw new CliError(
    all.length === 0
      ? 'there is no tenant yet: create one with `relaydesk tenant create <name>` (or run `relaydesk start` once)'
      : `there are ${all.length} tenants: pass --tenant <id|name> (relaydesk tenant list)`,
    EXIT_BAD_INPUT,
  );
}

/** The mailbox by id or address in the tenant, with its health; a clear line when it is not there. */
async function mailboxIn(ctx: Ctx, tenant: { id: string; name: string }, idOrAddress: string) {
  return ctx.rt.withTenantRead(ctx.db.pool, tenant.id, async (tx) => {
    const mailbox = await ctx.rt.findMailbox(tx, idOrAddress).catch((err: unknown) => {
      if ((err as { code?: string }).code === 'not_found')
        throw new CliError(
          `no mailbox ${idOrAddress} in tenant ${tenant.name} (${tenant.id}); relaydesk mailbox list shows them`,
          EXIT_BAD_INPUT,
        );
      throw err;
    });
    return { ...mailbox, health: await ctx.rt.getHealth(tx, mailbox.id) } satisfies MailboxWithHealth;
  });
}

/** A JSON object from an option's text, or bad input naming the option. */
function jsonObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${what} is not valid JSON: ${(err as Error).message}`, EXIT_BAD_INPUT);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new CliError(`${what} must be a JSON object`, EXIT_BAD_INPUT);
  return value as Record<string, unknown>;
}

async function credentialsFrom(options: {
  credentials?: string;
  credentialsFile?: string;
}): Promise<Record<string, unknown> | undefined> {
  if (options.credentials !== undefined && options.credentialsFile !== undefined)
    throw new CliError('pass --credentials or --credentials-file, not both', EXIT_BAD_INPUT);
  if (options.credentials !== undefined) return jsonObject(options.credentials, '--credentials');
  if (options.credentialsFile === undefined) return undefined;
  const file = options.credentialsFile;
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new CliError(`cannot read ${file}: ${err.code ?? err.message}`, EXIT_BAD_INPUT);
  });
  return jsonObject(text, file);
}

/**
 * Runs `fn` with upkeep's dependencies and a way to enqueue jobs. The queues are made as `start`
 * makes them: a renewal enqueues a reconciliation (or its own retry), and a database that no
 * `relaydesk start` has run on yet has no queue to take it.
 */
async function withUpkeep<T>(
  ctx: Ctx,
  fn: (
    deps: UpkeepDeps,
    send: Parameters<typeof renewNow>[3],
    upkeep: { renewNow: typeof renewNow },
  ) => Promise<T>,
): Promise<T> {
  const { db, logger, config, rt } = ctx;
  const secretKey = await rt.resolveSecretKey(config);
  const deps: UpkeepDeps = {
    pool: db.pool,
    secretKey,
    clock: rt.systemClock,
    logger,
    publicUrl: config.publicUrl,
    upkeep: config.upkeep,
    // The secret of a mailbox connected with the install's app registration is not stored with it.
    oauth: config.oauth,
  };
  // Loaded here, not with every command: upkeep brings the providers' clients.
  const upkeep = await import('../modules/inbound/upkeep.ts');
  return withJobQueue(ctx, (send) => fn(deps, send, upkeep));
}

/**
 * Runs `fn` with a way to enqueue jobs (in a transaction of the caller's, when it passes one). The
 * queues are made as `start` makes them, so that this works on a database no server has run on.
 * The registry lives with the server's composition; its handlers are never run here.
 */
export async function withJobQueue<T>(ctx: Ctx, fn: (send: JobContext['send']) => Promise<T>): Promise<T> {
  const { db, logger, config, rt } = ctx;
  const secretKey = await rt.resolveSecretKey(config);
  const { defaultRegistry } = await import('../app.ts');
  const queue = new rt.JobQueue({
    connectionString: db.url,
    listen: !db.pooled,
    logger,
    registry: defaultRegistry({
      pool: db.pool,
      secretKey,
      logger,
      clock: rt.systemClock,
      jobLeaseSeconds: config.jobLeaseSeconds,
    }),
    supervise: false,
    schedule: false,
    poolSize: 2,
  });
  await queue.start();
  try {
    await queue.ensureQueues();
    return await fn((job, payload, options) => queue.send(job, payload, options ?? {}));
  } finally {
    await queue.stop({ graceful: false });
  }
}

const json = (value: unknown) => JSON.stringify(value, null, 2);

export function registerMailboxCommands(
  program: Command,
  withDatabase: WithDatabase,
  out: (line: string) => void,
): void {
  const mailbox = program
    .command('mailbox')
    .description('create, list, inspect, test and renew mailboxes (where mail comes from)');

  mailbox
    .command('create')
    .description(
      'create a mailbox; a Graph or Gmail mailbox given credentials is subscribed at once. Prints its id and health',
    )
    .addOption(new Option('--kind <kind>', 'imap, graph, gmail or mime').choices(KINDS).makeOptionMandatory())
    .requiredOption('--address <address>', 'the address mail arrives at')
    .option('--display-name <name>', 'a name for people to read')
    .option('--settings <json>', 'settings as a JSON object, e.g. \'{"imap":{"host":"imap.example.org"}}\'')
    .option('--credentials <json>', 'credentials as a JSON object (stored encrypted, never shown)')
    .option(
      '--credentials-file <path>',
      'a file holding the credentials JSON (keeps them out of shell history)',
    )
    .addOption(tenantOption())
    .action(
      async (
        options: {
          kind: MailboxKind;
          address: string;
          displayName?: string;
          settings?: string;
          credentials?: string;
          credentialsFile?: string;
          tenant?: string;
        },
        command: Command,
      ) => {
        const settings =
          options.settings === undefined ? undefined : jsonObject(options.settings, '--settings');
        const credentials = await credentialsFrom(options);
        await withDatabase(command, async (ctx) => {
          const { db, logger, config, rt } = ctx;
          const tenant = await chooseTenant(ctx, options.tenant);
          const secretKey = await rt.resolveSecretKey(config);
          // What POST /mailboxes would be sent; the audit trail hashes it with every credential's
          // value redacted, as that route does.
          const body = {
            kind: options.kind,
            address: options.address,
            ...(options.displayName === undefined ? {} : { displayName: options.displayName }),
            ...(settings === undefined ? {} : { settings }),
            ...(credentials === undefined ? {} : { credentials }),
          };
          const created = await rt.auditedCliWrite(
            { pool: db.pool, logger },
            {
              tenantId: tenant.id,
              action: 'mailboxes.create',
              targetType: 'mailboxes',
              targetOf: (m) => m.id,
              payload: body,
              redact: rt.MAILBOX_AUDIT_REDACT,
              write: async () => {
                rt.assertProviderEndpoints(settings, config.providerOrigins);
                const made = await rt.withTenant(db.pool, tenant.id, (tx) =>
                  rt.createMailbox(tx, secretKey, body),
                );
                // As the API does: subscribed now, and the health says whether that worked (upkeep
                // retries what may pass; the mailbox exists either way, so this is no failure).
                if (
                  (made.kind === 'graph' || made.kind === 'gmail') &&
                  rt.connectedWith(made.kind, credentials)
                )
                  await withUpkeep(ctx, (deps, send, upkeep) =>
                    upkeep.renewNow(deps, tenant.id, made.id, send),
                  );
                return made;
              },
            },
          );
          const { health } = await mailboxIn(ctx, tenant, created.id);
          out(`mailbox\t${created.id}`);
          out(`health\t${health.status}`);
          if (health.failureReason) out(`reason\t${health.failureReason}`);
          if (health.expiresAt) out(`expires\t${health.expiresAt}`);
        });
      },
    );

  mailbox
    .command('list')
    .description(
      'the mailboxes of the tenant with their health: id, kind, address, status, expiry, last message, last error',
    )
    .addOption(tenantOption())
    .option('--json', 'print JSON (the mailboxes with their health, as the API answers them)')
    .action(async (options: { tenant?: string; json?: boolean }, command: Command) => {
      await withDatabase(command, async (ctx) => {
        const tenant = await chooseTenant(ctx, options.tenant);
        const all = await ctx.rt.withTenantRead(ctx.db.pool, tenant.id, async (tx) => {
          const mailboxes = [];
          let cursor: string | undefined;
          do {
            const page = await ctx.rt.listMailboxes(tx, { limit: 200, ...(cursor ? { cursor } : {}) });
            mailboxes.push(...page.items);
            cursor = page.nextCursor ?? undefined;
          } while (cursor);
          const health = await ctx.rt.healthOf(
            tx,
            mailboxes.map((m) => m.id),
          );
          return mailboxes.map((m) => ({ ...m, health: health.get(m.id)! }));
        });
        if (options.json) return out(json(all));
        if (all.length === 0) {
          process.stderr.write(`tenant ${tenant.name} has no mailbox\n`);
          return;
        }
        for (const line of mailboxRows(all, ctx.rt.systemClock.now())) out(line);
      });
    });

  mailbox
    .command('show <idOrAddress>')
    .description('a mailbox (settings; never its credentials) and its whole health')
    .addOption(tenantOption())
    .option('--json', 'print JSON (the mailbox with its health, as the API answers it)')
    .action(async (idOrAddress: string, options: { tenant?: string; json?: boolean }, command: Command) => {
      await withDatabase(command, async (ctx) => {
        const found = await mailboxIn(ctx, await chooseTenant(ctx, options.tenant), idOrAddress);
        if (options.json) return out(json(found));
        for (const line of mailboxDetail(found, ctx.rt.systemClock.now())) out(line);
      });
    });

  mailbox
    .command('test <idOrAddress>')
    .description(
      "check, step by step, what receiving the mailbox's mail needs (reach the provider, log in or get a token, read the folder); exit 1 when a step fails",
    )
    .addOption(tenantOption())
    .action(async (idOrAddress: string, options: { tenant?: string }, command: Command) => {
      const ok = await withDatabase(command, async (ctx) => {
        const tenant = await chooseTenant(ctx, options.tenant);
        const found = await mailboxIn(ctx, tenant, idOrAddress);
        const { testMailbox } = await import('../modules/inbound/probe.ts');
        const secretKey = await ctx.rt.resolveSecretKey(ctx.config);
        const result = await testMailbox(
          {
            pool: ctx.db.pool,
            secretKey,
            clock: ctx.rt.systemClock,
            logger: ctx.logger,
            publicUrl: ctx.config.publicUrl,
            upkeep: ctx.config.upkeep,
            oauth: ctx.config.oauth,
          },
          tenant.id,
          found,
        );
        for (const s of result.steps) out(`${s.ok ? '✓' : '✗'} ${s.step}: ${s.message}`);
        return result.ok;
      });
      if (!ok) throw new CliError('the mailbox failed its test', EXIT_FAILED);
    });

  mailbox
    .command('renew <idOrAddress>')
    .description(
      'renew the Graph subscription or Gmail watch now (or make one), here, and print the result; exit 1 when it failed',
    )
    .addOption(tenantOption())
    .action(async (idOrAddress: string, options: { tenant?: string }, command: Command) => {
      const failed = await withDatabase(command, async (ctx) => {
        const tenant = await chooseTenant(ctx, options.tenant);
        const found = await mailboxIn(ctx, tenant, idOrAddress);
        // Recorded as POST /mailboxes/:id/renew (no body) is; here the renewal's result is known, so
        // one that failed is recorded as failed, and one another renewal holds as the API's conflict.
        const outcome = await ctx.rt.auditedCliWrite(
          { pool: ctx.db.pool, logger: ctx.logger },
          {
            tenantId: tenant.id,
            action: 'mailboxes.renew',
            targetType: 'mailboxes',
            targetId: found.id,
            payload: null,
            failedIf: (o) =>
              !o
                ? { errorCode: 'conflict' }
                : o.result === 'failed' || o.status === 'skipped'
                  ? { errorCode: null }
                  : undefined,
            write: () => {
              if (found.kind !== 'graph' && found.kind !== 'gmail')
                throw new CliError(
                  `${found.address} is a ${found.kind} mailbox: it has no subscription to renew`,
                  EXIT_BAD_INPUT,
                );
              if (ctx.rt.isNotConnected(found.health))
                throw new CliError(
                  `${found.address} is not connected yet: connect it (in the console, or POST /api/v1/mailboxes/:id/connect) before renewing`,
                  EXIT_BAD_INPUT,
                );
              return withUpkeep(ctx, (deps, send, upkeep) =>
                upkeep.renewNow(deps, tenant.id, found.id, send),
              );
            },
          },
        );
        if (!outcome)
          throw new CliError(
            'another renewal of this mailbox is running (a renewal holds it for at most 5 minutes); ' +
              '`relaydesk mailbox show` will show its result',
            EXIT_FAILED,
          );
        const { health } = await mailboxIn(ctx, tenant, found.id);
        out(`status\t${outcome.status}`);
        if (outcome.result) out(`result\t${outcome.result}`);
        if (outcome.reason) out(`reason\t${outcome.reason}`);
        if (health.expiresAt) out(`expires\t${health.expiresAt}`);
        return outcome.result === 'failed' || outcome.status === 'skipped';
      });
      if (failed) throw new CliError('the renewal failed', EXIT_FAILED);
    });

  mailbox
    .command('connect <idOrAddress>')
    .description(
      'connect a Graph or Gmail mailbox by OAuth: print the authorization URL to open in a browser (single use, 10 minutes); needs RELAYDESK_PUBLIC_URL and the app registration',
    )
    .addOption(tenantOption())
    .action(async (idOrAddress: string, options: { tenant?: string }, command: Command) => {
      await withDatabase(command, async (ctx) => {
        const tenant = await chooseTenant(ctx, options.tenant);
        const found = await mailboxIn(ctx, tenant, idOrAddress);
        const { startConnection } = await import('../modules/inbound/oauth.ts');
        const { withTenant } = await import('../platform/db/tx.ts');
        const secretKey = await ctx.rt.resolveSecretKey(ctx.config);
        // Recorded as POST /mailboxes/:id/connect without a body is (the URL's state is not hashed).
        const started = await ctx.rt.auditedCliWrite(
          { pool: ctx.db.pool, logger: ctx.logger },
          {
            tenantId: tenant.id,
            action: 'mailboxes.connect',
            targetType: 'mailboxes',
            targetId: found.id,
            payload: null,
            write: () =>
              withTenant(ctx.db.pool, tenant.id, (tx) =>
                startConnection(
                  {
                    pool: ctx.db.pool,
                    secretKey,
                    clock: ctx.rt.systemClock,
                    publicUrl: ctx.config.publicUrl,
                    oauth: ctx.config.oauth,
                  },
                  tx,
                  { mailboxId: found.id, requestedBy: null },
                ),
              ),
          },
        );
        out(`open this URL in a browser and sign in as ${found.address} (until ${started.expiresAt}):`);
        out(started.authorizationUrl);
      });
    });
}
