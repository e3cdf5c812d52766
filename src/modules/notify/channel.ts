// The one interface every notification channel implements (Teams, Slack, webhooks). Email is the
// outbound module's transport and goes through its send job. The notify module decides who hears of
// what and writes the ledger rows; a channel adapter only finds destinations and sends one attempt.
// Adapters live in their own modules (teams, slack, webhooks) and are handed to the notify module by
// the composition root (src/app.ts), so the notify module never imports them.
import type { SystemTx, TenantTx } from '../../platform/db/tx.ts';
import type { AnyEventType } from '../events/events.ts';
import type { DeliveryError } from '../outbound/transports.ts';

export const ADAPTER_CHANNELS = ['teams', 'slack', 'webhook'] as const;
export type AdapterChannel = (typeof ADAPTER_CHANNELS)[number];

/** What a notification says, channel-neutral; each adapter renders it (Adaptive Card, Block Kit, JSON). */
export interface NotificationContent {
  /** The event it is about (a webhook's `type`). */
  eventId: string;
  type: AnyEventType;
  occurredAt: string;
  urgent: boolean;
  /** One line, plain text: "T-12 breached its first-response SLA". */
  title: string;
  /** A few lines of plain text. */
  text: string;
  ticket: NotificationTicket | null;
  /** The event's own data (webhook `data` carries it with `ticket`). */
  data: Record<string, unknown>;
}

export interface NotificationTicket {
  id: string;
  /** "T-12" */
  number: string;
  subject: string;
  status: string;
  priority: string;
  requester: { id: string; name: string; email: string | null } | null;
  assignee: { id: string; name: string } | null;
  /** The most urgent running SLA clock, if any. */
  sla: { metric: string; dueAt: string | null; state: 'running' | 'paused' | 'breached' } | null;
}

export interface ChannelSend {
  tenantId: string;
  /** The ledger row of this attempt. */
  deliveryId: string;
  attempt: number;
  /** The same for every attempt of one notification to one destination (a webhook's `webhook-id`). */
  notificationId: string;
  /** As the adapter gave it (personDestination, subscribers) or as a rule names it. */
  destination: string;
  idempotencyKey: string;
  content: NotificationContent;
  signal?: AbortSignal | undefined;
  /** `pace` already ran for this attempt (the deliver job calls it before marking the attempt sending). */
  paced?: boolean | undefined;
}

export interface ChannelSent {
  providerMessageId: string | null;
  /** Short, for the ledger (≤ 1024 characters). */
  providerResponse: string | null;
  requestId: string | null;
}

/** What became of one attempt of a batch: sent, or the error `send` would have thrown. */
export type ChannelOutcome = { ok: true; sent: ChannelSent } | { ok: false; error: unknown };

export interface ChannelAdapter {
  readonly channel: AdapterChannel;
  /** Where a person is reached on this channel (their conversation, Slack user), if anywhere. */
  personDestination(tx: TenantTx, personId: string): Promise<string | undefined>;
  /** Destinations that take events by their own subscription regardless of rules (webhook endpoints). */
  subscribers?(tx: TenantTx, type: AnyEventType): Promise<string[]>;
  /**
   * The same across tenants, as pairs `tenant|type`: of these tenants and event types, which have a
   * subscriber (the dispatcher's check before it makes a fan-out job). Given with `subscribers`.
   */
  subscribedAmong?(sys: SystemTx, tenantIds: string[], types: AnyEventType[]): Promise<Set<string>>;
  /** Whether a rule's fixed destination exists in the tenant (checked when the rule is saved). */
  destinationExists(tx: TenantTx, destination: string): Promise<boolean>;
  /**
   * Waits for the destination's turn under the provider's rate limits (per channel or
   * conversation), before the attempt is marked `sending`: a process that stops while waiting has
   * sent nothing, and its attempt is sent again rather than left `unknown`. May throw a `throttled`
   * DeliveryError when the wait would be too long. `send` paces by itself unless told it ran.
   */
  pace?(input: ChannelSend): Promise<void>;
  /**
   * Sends one attempt. Throws a DeliveryError classified by the taxonomy (throttled, auth,
   * not_found, invalid_recipient, transient, permanent); anything else counts as transient.
   */
  send(input: ChannelSend): Promise<ChannelSent>;
  /**
   * `send` for the attempts of a batch of deliver jobs (of any tenants), sharing what they can (one
   * read of their destinations); the outcomes in the order of the inputs. Unpaced channels only.
   */
  sendMany?(inputs: ChannelSend[]): Promise<ChannelOutcome[]>;
  /** Seconds before the next attempt after a retryable failure of `attempt`, or undefined to give up. */
  retryDelaySeconds(attempt: number, retryAfterSeconds: number | undefined): number | undefined;
  /**
   * Whether sending again after an unknown outcome (the process stopped mid-send) cannot deliver
   * twice, because the receiver de-duplicates by notificationId (webhooks). Otherwise such an
   * attempt is marked `unknown` for review.
   */
  readonly resendIsSafe: boolean;
  /** After a failure that will not pass: mark the destination (a stale Teams reference, a disabled endpoint). */
  onTerminalFailure?(tenantId: string, destination: string, error: DeliveryError): Promise<void>;
  /** After a success (a webhook endpoint's failing streak ends). */
  onSuccess?(tenantId: string, destination: string): Promise<void>;
}
