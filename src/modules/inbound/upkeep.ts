// Subscription upkeep (DESIGN §5.2): mailboxes stay connected by themselves.
//
// Schedulers (any number) claim due mailboxes across tenants (health.ts claimDueMailboxes: SKIP
// LOCKED, a lease and a claim id) and enqueue one renewal job per claim in the same transaction.
// A renewal acts only while its claim is the mailbox's current one, so each mailbox is renewed once
// per due time; a renewal that died with its worker is run again by the queue and finishes the job
// (an orphaned Graph subscription it may have made expires on its own, and its notifications are
// refused: they name a subscription that is not the mailbox's).
//
// Graph: PATCH the subscription to the longest expiry; on 404 make a new one (the provider runs the
// validation handshake against our webhook) and delete the stale one; reauthorize when asked. Gmail:
// users.watch again (a watch lasts 7 days; renewed daily). The subscription is persisted in the
// transaction that records the result in the mailbox's health. A refused credential ends in
// needs_reauth at once (no retries); a Retry-After is honoured to the second; other failures are
// retried with exponential backoff and jitter, the mailbox degraded and, after N, in error.
//
// Reconciliation finds mail a webhook missed (Graph delta on the folder, Gmail history, IMAP UIDs),
// after every new subscription, after a `missed` lifecycle notification and on a schedule. What it
// finds goes through the normal pointer queue; a message already recorded is not recorded again
// (and message keys make any overlap with a webhook harmless).
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../platform/clock.ts';
import type { Pool } from '../../platform/db/pool.ts';
import { withSystemRead, withSystemTx, withTenant } from '../../platform/db/tx.ts';
import type { Logger } from '../../platform/logging.ts';
import { AuthExpired, NotFound, ProviderError, RateLimited } from '../../platform/provider-errors.ts';
import type { JobQueue } from '../../platform/queue/queue.ts';
import type { JobContext } from '../../platform/queue/registry.ts';
import type { Config, UpkeepConfig } from '../../platform/config.ts';
import {
  claimDueMailboxes,
  claimDueReconciles,
  claimMailbox,
  claimReconcile,
  extendClaim,
  type FailureKind,
  flagLifecycle,
  type HealthStatus,
  markRenewing,
  pendingFlag,
  recordReconciled,
  recordRenewalFailed,
  recordRenewed,
  releaseReconcile,
  type RenewalResult,
  upkeepState,
} from './health.ts';
import {
  type MailboxLifecyclePayload,
  mailboxReconcileJob,
  mailboxRenewJob,
  type MailboxRenewPayload,
  processInboundJob,
} from './job-refs.ts';
import { getMailbox, type Mailbox, mailboxState, setMailboxState } from './mailboxes.ts';
import { gmailClientFor, graphClientFor, providerUser } from './providers/clients.ts';
import { reconcileImapMailbox } from './providers/imap/reconcile.ts';
import { syncGmailHistory } from './gmail-sync.ts';
import { recordProviderMessages, unrecordedMessages } from './records.ts';

export interface UpkeepDeps {
  pool: Pool;
  secretKey: Buffer;
  clock: Clock;
  logger: Logger;
  /** Where providers reach this install (RELAYDESK_PUBLIC_URL); no subscription can be made without it. */
  publicUrl: string | undefined;
  upkeep: UpkeepConfig;
  /** The install's OAuth app registrations (the secret of a mailbox connected with one of them). */
  oauth?: Config['oauth'] | undefined;
}

/** Enqueues a job, in a transaction when given one (JobContext.send and JobQueue.send both fit). */
type Send = JobContext['send'];

/** How long a renewal's claim keeps other schedulers off: longer than any provider call it makes. */
export const RENEW_LEASE_SECONDS = 300;
const RECONCILE_LEASE_SECONDS = 900;
/** Mailboxes claimed per statement of a scheduler pass. */
const CLAIM_BATCH = 500;

/**
 * One scheduler pass: claims every mailbox due for renewal and every reconciliation due, and
 * enqueues their jobs in the claiming transactions. Returns how many of each.
 */
export async function runUpkeepPass(
  deps: UpkeepDeps,
  queue: JobQueue,
): Promise<{ renewals: number; reconciles: number }> {
  let renewals = 0;
  for (;;) {
    const claimed = await withSystemTx(deps.pool, async (sys) => {
      const due = await claimDueMailboxes(sys, {
        now: deps.clock.now(),
        lookAheadSeconds: deps.upkeep.lookAheadSeconds,
        maxAgeSeconds: deps.upkeep.maxAgeSeconds,
        leaseSeconds: RENEW_LEASE_SECONDS,
        limit: CLAIM_BATCH,
      });
      if (due.length > 0)
        await queue.sendMany(
          mailboxRenewJob,
          due.map((d) => ({ tenantId: d.tenantId, mailboxId: d.mailboxId, claimId: d.claimId })),
          { tx: sys },
        );
      return due.length;
    });
    renewals += claimed;
    if (claimed < CLAIM_BATCH) break;
  }
  let reconciles = 0;
  for (;;) {
    const claimed = await withSystemTx(deps.pool, async (sys) => {
      const due = await claimDueReconciles(sys, {
        now: deps.clock.now(),
        intervalSeconds: deps.upkeep.reconcileIntervalSeconds,
        leaseSeconds: RECONCILE_LEASE_SECONDS,
        limit: CLAIM_BATCH,
      });
      if (due.length > 0) await queue.sendMany(mailboxReconcileJob, due, { tx: sys });
      return due.length;
    });
    reconciles += claimed;
    if (claimed < CLAIM_BATCH) break;
  }
  return { renewals, reconciles };
}

/** Runs a pass at start and then every interval, in scheduler processes; returns its stop. */
export function startUpkeepScheduler(deps: UpkeepDeps, queue: JobQueue): () => Promise<void> {
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    running = runUpkeepPass(deps, queue)
      .then((n) => {
        if (n.renewals > 0 || n.reconciles > 0)
          deps.logger.info(n, 'mailbox upkeep: renewals and reconciliations enqueued');
      })
      .catch((err: unknown) =>
        deps.logger.warn({ err }, 'mailbox upkeep pass failed; the next one tries again'),
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, deps.upkeep.intervalSeconds * 1000);
      });
  };
  tick();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}

/** Start-up: Graph and Gmail mailboxes cannot be subscribed without the public URL; say so once. */
export async function warnWithoutPublicUrl(
  pool: Pool,
  config: { publicUrl?: string | undefined },
  logger: Logger,
): Promise<void> {
  if (config.publicUrl) return;
  const { rows } = await withSystemRead(pool, (sys) =>
    sys.query<{ graph: number; gmail: number }>(
      `SELECT count(*) FILTER (WHERE kind = 'graph')::int AS graph, count(*) FILTER (WHERE kind = 'gmail')::int AS gmail
         FROM mailboxes`,
    ),
  );
  const { graph, gmail } = rows[0]!;
  if (graph + gmail > 0)
    logger.warn(
      { graphMailboxes: graph, gmailMailboxes: gmail },
      'RELAYDESK_PUBLIC_URL is not set: Graph mailboxes cannot be subscribed (they receive no mail until it is), ' +
        'and OAuth connections and Gmail push endpoints have no address to name',
    );
}

/** Why a mailbox cannot be subscribed at all (said in its health), or undefined. */
function unsubscribable(deps: UpkeepDeps, mailbox: Mailbox): string | undefined {
  if (mailbox.kind === 'graph' && !deps.publicUrl)
    return 'RELAYDESK_PUBLIC_URL is not set: Graph cannot be told where to send notifications';
  if (mailbox.kind === 'gmail' && typeof mailbox.settings.gmail['topic'] !== 'string')
    return 'settings.gmail.topic is not set: Gmail cannot be told which Pub/Sub topic to push to';
  if (!mailbox.hasCredentials) return 'the mailbox has no credentials';
  return undefined;
}

interface Renewed {
  result: Exclude<RenewalResult, 'failed'>;
  subscriptionId: string;
  clientState: string | null;
  expiresAt: Date;
}

/** The Graph resource of a mailbox's folder. */
function graphResource(mailbox: Mailbox): string {
  const folder = String(mailbox.settings.graph['folder'] ?? 'Inbox');
  return `users/${providerUser(mailbox, 'graph')}/mailFolders('${folder.replace(/'/g, "''")}')/messages`;
}

async function renewGraph(deps: UpkeepDeps, tenantId: string, mailbox: Mailbox): Promise<Renewed> {
  const state = await withTenant(deps.pool, tenantId, (tx) => upkeepState(tx, mailbox.id));
  const client = await graphClientFor(deps, tenantId, mailbox);
  const expiresAt = new Date(deps.clock.now().getTime() + deps.upkeep.graphSubscriptionMinutes * 60_000);
  const expiration = expiresAt.toISOString();
  if (state.subscriptionId && state.pending !== 'recreate') {
    try {
      let result: Renewed['result'] = 'renewed';
      if (state.pending === 'reauthorize') {
        await client.reauthorizeSubscription(state.subscriptionId);
        result = 'reauthorized';
      }
      const renewed = await client.renewSubscription(state.subscriptionId, expiration);
      return {
        result,
        subscriptionId: state.subscriptionId,
        clientState: state.clientState,
        expiresAt: new Date(renewed.expirationDateTime),
      };
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
      deps.logger.info({ mailboxId: mailbox.id }, 'graph subscription gone (404): making a new one');
    }
  }
  // A new subscription. Until it exists, mail does not flow: the health says so.
  await withTenant(deps.pool, tenantId, (tx) =>
    markRenewing(
      tx,
      mailbox.id,
      state.subscriptionId ? 'recreating the subscription' : 'creating the subscription',
    ),
  );
  const clientState = randomBytes(32).toString('base64url');
  const url = `${deps.publicUrl}/hooks/graph/${mailbox.id}`;
  const created = await client.createSubscription({
    resource: graphResource(mailbox),
    notificationUrl: url,
    lifecycleNotificationUrl: url,
    clientState,
    expirationDateTime: expiration,
  });
  if (state.subscriptionId) {
    // The stale one, where it still exists: its notifications would be refused anyway.
    await client.deleteSubscription(state.subscriptionId).catch(() => undefined);
  }
  return {
    result: state.subscriptionId ? 'recreated' : 'created',
    subscriptionId: created.id,
    clientState,
    expiresAt: new Date(created.expirationDateTime),
  };
}

async function renewGmail(deps: UpkeepDeps, tenantId: string, mailbox: Mailbox): Promise<Renewed> {
  const state = await withTenant(deps.pool, tenantId, (tx) => upkeepState(tx, mailbox.id));
  const client = await gmailClientFor(deps, tenantId, mailbox);
  const topic = String(mailbox.settings.gmail['topic']);
  const watch = await client.watch(providerUser(mailbox, 'gmail'), topic);
  // A first watch starts the history the pushes are read from.
  await withTenant(deps.pool, tenantId, async (tx) => {
    const gmail = await mailboxState(tx, mailbox.id, 'gmail');
    if (gmail['historyId'] === undefined)
      await setMailboxState(tx, mailbox.id, 'gmail', { historyId: watch.historyId });
  });
  return {
    result: state.subscriptionId ? 'renewed' : 'created',
    subscriptionId: topic,
    clientState: null,
    expiresAt: watch.expiration,
  };
}

/** Deletes a Graph subscription a superseded renewal made (best effort: it would expire anyway). */
async function dropSubscription(
  deps: UpkeepDeps,
  tenantId: string,
  mailbox: Mailbox,
  id: string,
): Promise<void> {
  if (mailbox.kind !== 'graph') return;
  try {
    await (await graphClientFor(deps, tenantId, mailbox)).deleteSubscription(id);
  } catch (err) {
    deps.logger.info(
      { err, tenantId, mailboxId: mailbox.id },
      "a superseded renewal's subscription could not be deleted; it expires",
    );
  }
}

/**
 * Backoff after the n-th consecutive failure: 5 s doubling to 15 min, with ±20 % jitter. A
 * provider's 5xx usually passes within seconds; four failures in a row come back within about 75 s,
 * and a provider that stays down is asked at most every 15 minutes per mailbox.
 */
function backoffSeconds(failures: number): number {
  const base = Math.min(900, 5 * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

function failureKind(err: unknown): FailureKind {
  if (err instanceof AuthExpired) return 'auth';
  if (err instanceof RateLimited) return 'rate_limited';
  if (err instanceof ProviderError) return err.constructor.name === 'Permanent' ? 'permanent' : 'transient';
  return 'transient';
}

export interface RenewOutcome {
  status: HealthStatus | 'skipped';
  result?: RenewalResult;
  reason?: string;
}

/**
 * The renewal job: renews (or makes) the mailbox's subscription while it holds the claim, records
 * the result in its health, and comes back itself after a Retry-After or a backoff.
 */
export async function renewMailbox(
  deps: UpkeepDeps,
  payload: MailboxRenewPayload,
  send: Send,
): Promise<RenewOutcome> {
  const { tenantId, mailboxId, claimId } = payload;
  const { mailbox, state } = await withTenant(deps.pool, tenantId, async (tx) => ({
    mailbox: await getMailbox(tx, mailboxId),
    state: await upkeepState(tx, mailboxId),
  }));
  if (state.claimId !== claimId) return { status: 'skipped', reason: 'claim superseded' };
  const now = () => deps.clock.now();
  const cannot = unsubscribable(deps, mailbox);
  if (cannot) {
    const status = await withTenant(deps.pool, tenantId, (tx) =>
      recordRenewalFailed(tx, mailboxId, {
        kind: 'permanent',
        reason: cannot,
        now: now(),
        retryAt: new Date(now().getTime() + deps.upkeep.intervalSeconds * 1000),
        errorAfter: 1,
        keepClaim: false,
        claimId,
      }),
    );
    if (!status) return { status: 'skipped', reason: 'claim superseded' };
    return { status, result: 'failed', reason: cannot };
  }
  try {
    const renewed =
      mailbox.kind === 'graph'
        ? await renewGraph(deps, tenantId, mailbox)
        : await renewGmail(deps, tenantId, mailbox);
    const recorded = await withTenant(deps.pool, tenantId, async (tx) => {
      // Only while the claim is still ours: a later claim, or new credentials, superseded it.
      if (
        !(await recordRenewed(tx, mailboxId, { ...renewed, now: now(), claimId, pendingRead: state.pending }))
      )
        return false;
      // A new subscription: whatever arrived while there was none is looked for now.
      if (
        (renewed.result === 'created' || renewed.result === 'recreated') &&
        (await claimReconcile(tx, mailboxId, now(), RECONCILE_LEASE_SECONDS, true))
      )
        await send(mailboxReconcileJob, { tenantId, mailboxId }, { tx });
      return true;
    });
    if (!recorded) {
      // The subscription this renewal made is nobody's: take it back (the one recorded stays).
      if (renewed.result === 'created' || renewed.result === 'recreated')
        await dropSubscription(deps, tenantId, mailbox, renewed.subscriptionId);
      return { status: 'skipped', reason: 'claim superseded while renewing' };
    }
    // A lifecycle notification that came while this renewal ran waits for another: now.
    if (await withTenant(deps.pool, tenantId, (tx) => pendingFlag(tx, mailboxId)))
      await enqueueRenewal(deps, tenantId, mailboxId, send);
    return { status: 'healthy', result: renewed.result };
  } catch (err) {
    const kind = failureKind(err);
    const reason = (err as Error)?.message ?? String(err);
    const waitSeconds =
      err instanceof RateLimited ? err.retryAfterSeconds : backoffSeconds(state.consecutiveFailures + 1);
    const retryAt = new Date(now().getTime() + waitSeconds * 1000);
    // A person must mend refused credentials or a refused request; anything else comes back itself.
    const retries = kind === 'rate_limited' || kind === 'transient';
    const status = await withTenant(deps.pool, tenantId, async (tx) => {
      const s = await recordRenewalFailed(tx, mailboxId, {
        kind,
        reason,
        now: now(),
        retryAt,
        errorAfter: deps.upkeep.errorAfter,
        keepClaim: retries,
        claimId,
      });
      if (!s) return undefined;
      if (
        retries &&
        (await extendClaim(tx, mailboxId, claimId, new Date(retryAt.getTime() + RENEW_LEASE_SECONDS * 1000)))
      )
        await send(mailboxRenewJob, payload, { tx, delaySeconds: waitSeconds });
      return s;
    });
    if (!status) return { status: 'skipped', reason: 'claim superseded while renewing' };
    deps.logger.warn(
      { mailboxId, tenantId, kind, reason, retryInSeconds: retries ? waitSeconds : null },
      'mailbox renewal failed',
    );
    return { status, result: 'failed', reason };
  }
}

/**
 * Renews a mailbox now (the API's renew, new credentials, a lifecycle notification): claims it and
 * runs the renewal in this process. Undefined when another renewal holds it.
 */
export async function renewNow(
  deps: UpkeepDeps,
  tenantId: string,
  mailboxId: string,
  send: Send,
): Promise<RenewOutcome | undefined> {
  const claimId = await withTenant(deps.pool, tenantId, (tx) =>
    claimMailbox(tx, mailboxId, deps.clock.now(), RENEW_LEASE_SECONDS),
  );
  if (!claimId) return undefined;
  return renewMailbox(deps, { tenantId, mailboxId, claimId }, send);
}

/**
 * Deletes a Graph mailbox's subscription at Graph before the mailbox goes (best effort, bounded: a
 * failure leaves it to expire; its notifications then find no mailbox). Nothing for other kinds.
 */
export async function unsubscribe(deps: UpkeepDeps, tenantId: string, mailboxId: string): Promise<void> {
  const { mailbox, state } = await withTenant(deps.pool, tenantId, async (tx) => ({
    mailbox: await getMailbox(tx, mailboxId),
    state: await upkeepState(tx, mailboxId),
  }));
  if (mailbox.kind !== 'graph' || !state.subscriptionId || !mailbox.hasCredentials) return;
  try {
    const client = await graphClientFor(deps, tenantId, {
      ...mailbox,
      settings: { ...mailbox.settings, graph: { ...mailbox.settings.graph, timeoutMs: 5_000 } },
    });
    await client.deleteSubscription(state.subscriptionId);
  } catch (err) {
    deps.logger.info(
      { err, tenantId, mailboxId },
      "the deleted mailbox's Graph subscription could not be deleted; it expires",
    );
  }
}

/** Enqueues a renewal now (claimed here); false while another holds the mailbox. */
export async function enqueueRenewal(
  deps: UpkeepDeps,
  tenantId: string,
  mailboxId: string,
  send: Send,
): Promise<boolean> {
  return withTenant(deps.pool, tenantId, async (tx) => {
    const claimId = await claimMailbox(tx, mailboxId, deps.clock.now(), RENEW_LEASE_SECONDS);
    if (!claimId) return false;
    await send(mailboxRenewJob, { tenantId, mailboxId, claimId }, { tx });
    return true;
  });
}

/**
 * Enqueues a reconciliation now; false while one runs (with `again`, it then runs once more when
 * that one ends).
 */
export async function enqueueReconcile(
  deps: UpkeepDeps,
  tenantId: string,
  mailboxId: string,
  send: Send,
  again = false,
): Promise<boolean> {
  return withTenant(deps.pool, tenantId, async (tx) => {
    if (!(await claimReconcile(tx, mailboxId, deps.clock.now(), RECONCILE_LEASE_SECONDS, again)))
      return false;
    await send(mailboxReconcileJob, { tenantId, mailboxId }, { tx });
    return true;
  });
}

/** A lifecycle notification (Graph): reauthorize or recreate at once, reconcile what was missed. */
export async function onLifecycle(
  deps: UpkeepDeps,
  payload: MailboxLifecyclePayload,
  send: Send,
): Promise<string> {
  const { tenantId, mailboxId, event } = payload;
  if (event === 'missed') {
    await enqueueReconcile(deps, tenantId, mailboxId, send, true);
    return 'reconcile';
  }
  const pending =
    event === 'reauthorizationRequired'
      ? 'reauthorize'
      : event === 'subscriptionRemoved'
        ? 'recreate'
        : undefined;
  if (!pending) return 'ignored';
  await withTenant(deps.pool, tenantId, (tx) => flagLifecycle(tx, mailboxId, pending));
  // Claimed by a renewal already: that one sees the flag (or the next pass does, the flag makes it due).
  await enqueueRenewal(deps, tenantId, mailboxId, send);
  return pending;
}

/** Records and enqueues provider messages (one inbound record and job each), with the new cursor. */
async function enqueueFound(
  deps: UpkeepDeps,
  tenantId: string,
  mailbox: Mailbox,
  ids: string[],
  send: Send,
  cursor: Record<string, unknown>,
): Promise<void> {
  await withTenant(deps.pool, tenantId, async (tx) => {
    for (const inboundId of await recordProviderMessages(tx, mailbox.id, 'graph', ids))
      await send(processInboundJob, { tenantId, inboundId }, { tx });
    await setMailboxState(tx, mailbox.id, 'graph', cursor);
  });
}

async function reconcileGraph(
  deps: UpkeepDeps,
  tenantId: string,
  mailbox: Mailbox,
  send: Send,
): Promise<number> {
  const client = await graphClientFor(deps, tenantId, mailbox);
  const stored = await withTenant(deps.pool, tenantId, (tx) => mailboxState(tx, mailbox.id, 'graph'));
  const since = new Date(
    Math.max(Date.parse(mailbox.createdAt), deps.clock.now().getTime() - 7 * 86_400_000),
  );
  const start = {
    user: providerUser(mailbox, 'graph'),
    folder: String(mailbox.settings.graph['folder'] ?? 'Inbox'),
    since,
  };
  let page: Awaited<ReturnType<typeof client.deltaPage>>;
  try {
    page = await client.deltaPage(
      typeof stored['deltaLink'] === 'string' ? { link: stored['deltaLink'] } : start,
    );
  } catch (err) {
    // A deltaLink Graph no longer knows (410): from the start again; recorded messages are skipped.
    if (!(err instanceof NotFound)) throw err;
    page = await client.deltaPage(start);
  }
  let recovered = 0;
  for (;;) {
    const ids = page.ids;
    const fresh = await withTenant(deps.pool, tenantId, (tx) => unrecordedMessages(tx, mailbox.id, ids));
    recovered += fresh.length;
    await enqueueFound(
      deps,
      tenantId,
      mailbox,
      fresh,
      send,
      page.deltaLink ? { deltaLink: page.deltaLink } : {},
    );
    if (!page.nextLink) break;
    page = await client.deltaPage({ link: page.nextLink });
  }
  return recovered;
}

async function reconcileGmail(
  deps: UpkeepDeps,
  tenantId: string,
  mailbox: Mailbox,
  send: Send,
): Promise<number> {
  // What a push would read, with nothing announced: the history since the stored id.
  return (await syncGmailHistory(deps, { tenantId, mailboxId: mailbox.id, historyId: '0' }, send)).enqueued;
}

/** The reconciliation job: finds what webhooks missed, records how much, gives the claim back. */
export async function reconcileMailbox(
  deps: UpkeepDeps,
  payload: { tenantId: string; mailboxId: string },
  send: Send,
): Promise<{ recovered: number } | { skipped: string }> {
  const { tenantId, mailboxId } = payload;
  const mailbox = await withTenant(deps.pool, tenantId, (tx) => getMailbox(tx, mailboxId));
  try {
    let recovered: number;
    if (mailbox.kind === 'graph') recovered = await reconcileGraph(deps, tenantId, mailbox, send);
    else if (mailbox.kind === 'gmail') recovered = await reconcileGmail(deps, tenantId, mailbox, send);
    else if (mailbox.kind === 'imap')
      // The listener's own scan, above the stored UID (it may run beside a listener: the UID advance is conditional).
      recovered = (await reconcileImapMailbox({ ...deps, send }, tenantId, mailboxId)).recovered;
    else {
      await withTenant(deps.pool, tenantId, (tx) => releaseReconcile(tx, mailboxId));
      return { skipped: `nothing to reconcile for a ${mailbox.kind} mailbox` };
    }
    await withTenant(deps.pool, tenantId, async (tx) => {
      // Asked for again while this one ran: once more, now.
      if (await recordReconciled(tx, mailboxId, deps.clock.now(), recovered))
        if (await claimReconcile(tx, mailboxId, deps.clock.now(), RECONCILE_LEASE_SECONDS))
          await send(mailboxReconcileJob, { tenantId, mailboxId }, { tx });
    });
    if (recovered > 0)
      deps.logger.info(
        { tenantId, mailboxId, recovered },
        'reconciliation recovered mail a notification missed',
      );
    return { recovered };
  } catch (err) {
    // A provider that asks to wait (429, or 503 with Retry-After) is asked again when it said, by a
    // job of its own that holds the claim until then: the queue's retry (60 s, growing) could come
    // sooner, and a scheduler's pass meanwhile could start another.
    if (err instanceof RateLimited) {
      const wait = err.retryAfterSeconds;
      await withTenant(deps.pool, tenantId, async (tx) => {
        await releaseReconcile(tx, mailboxId);
        if (await claimReconcile(tx, mailboxId, deps.clock.now(), wait + RECONCILE_LEASE_SECONDS))
          await send(mailboxReconcileJob, { tenantId, mailboxId }, { tx, delaySeconds: wait });
      });
      deps.logger.info(
        { tenantId, mailboxId, retryAfterSeconds: wait },
        'reconciliation throttled by the provider',
      );
      return { skipped: `throttled by the provider: again in ${wait} s` };
    }
    await withTenant(deps.pool, tenantId, (tx) => releaseReconcile(tx, mailboxId)).catch(() => undefined);
    throw err;
  }
}
