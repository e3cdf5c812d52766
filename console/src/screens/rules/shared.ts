// What the notification-rule screens share: the rule as the API gives it, and words for its parts.
import type { Body, Json } from '../../api/types.ts';

export type Rule = Json<'/api/v1/notification-rules/{id}', 'get'>;
export type RuleBody = Body<'/api/v1/notification-rules', 'post'>;
export type RuleEvent = Rule['event'];
export type RuleChannel = Rule['channel'];
export type Recipient = Rule['recipients'][number];
export type FallbackChannel = Rule['fallback'][number];

export const EVENT_LABELS: Record<RuleEvent, string> = {
  'ticket.created': 'A ticket is created',
  'ticket.assigned': 'A ticket is assigned',
  'ticket.customer_replied': 'The customer replies',
  'ticket.status_changed': "A ticket's status changes",
  'sla.threshold': 'An SLA warning threshold is reached',
  'sla.breached': 'An SLA target is breached',
  'sla.escalated': 'An SLA escalation fires',
  'mailbox.health_changed': "A mailbox's health changes",
  'delivery.failed': 'A delivery fails for good',
};
export const CHANNEL_LABELS: Record<RuleChannel, string> = {
  preferred: "Each person's preferred channel",
  email: 'Email',
  teams: 'Microsoft Teams',
  slack: 'Slack',
  webhook: 'Webhook',
};
export const FALLBACKS: FallbackChannel[] = ['teams', 'slack', 'email'];
export const ROLES = ['admin', 'agent', 'viewer'] as const;

/** The body that stores `rule` again, with some fields changed. */
export const bodyOf = (rule: Rule, change: Partial<RuleBody> = {}): RuleBody => ({
  event: rule.event,
  recipients: rule.recipients,
  channel: rule.channel,
  destination: rule.destination,
  fallback: rule.fallback,
  conditions: rule.conditions,
  enabled: rule.enabled,
  ...change,
});
