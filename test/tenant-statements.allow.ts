// Statements of the application role that may break the tenant rule (test/tenant-statements.ts),
// grouped by the reason they may. Each is named by its libpg_query fingerprint (the statement's
// shape: it changes when the statement does, which brings it back for review), beside the
// statement's beginning and where it lives, for the reader. On Citus these run on every shard
// (docs/scale-out.md). Keep it short: where a statement can name its tenant, fix the statement.
export interface Allowance {
  reason: string;
  /** fingerprint → the statement's beginning and its file. */
  statements: Record<string, string>;
}

export const ALLOWED: Allowance[] = [
  {
    reason:
      'Finds the tenant from a secret or an address before any tenant is known: the request, callback or mail carries no tenant id. One row by a unique key.',
    statements: {
      '3c2ec2281e3e9c71':
        'SELECT t.tenant_id, ... FROM api_tokens t JOIN people p ... WHERE t.token_hash = $1 (tokens/service.ts)',
      '523b386df62770df':
        'SELECT s.tenant_id, ... FROM console_sessions s ... WHERE s.secret_hash = $1 (sessions/sessions.ts)',
      '9fbc56c2154ba29a':
        'SELECT tenant_id, id, person_id FROM sign_in_tokens WHERE token_hash = $1 (sessions/links.ts)',
      '62cfb7aebac9fb60': 'SELECT tenant_id, ... FROM oauth_states WHERE state_hash = $1 (inbound/oauth.ts)',
      '19dc69b7610ba1ef': 'SELECT tenant_id, ... FROM sso_login_states WHERE state_hash = $1 (sso/states.ts)',
      '584eb352dcf51b1f':
        'SELECT e.tenant_id, ... FROM person_emails e ... WHERE e.address_normalized = $1 (sessions/sign-in.ts: the tenants an address may sign in to)',
      '95ed37f4727422d4':
        'SELECT e.tenant_id, e.person_id FROM person_emails e ... WHERE e.address_normalized = $1 (sessions/accounts.ts)',
      faaa932e4e7b9acc:
        'SELECT tenant_id, ... FROM teams_integrations WHERE app_id = $1 (teams/integrations.ts: a Bot Framework activity names the app only)',
      '7fd08ae554225fa2':
        'SELECT tenant_id, ... FROM mailboxes WHERE id = $1 (inbound/hooks.ts: a provider webhook names its mailbox)',
      c6c13582f0919778:
        'SELECT m.tenant_id, ... FROM mailboxes m LEFT JOIN mailbox_health h ... WHERE m.id = $1 (inbound/hooks.ts)',
      fc5117d1cc661ec4:
        'SELECT tenant_id, ... FROM mailboxes WHERE address_normalized = ANY($1) (inbound/smtp-ingress.ts: the recipients of SMTP mail)',
    },
  },
  {
    reason:
      'The operator revokes a token at the command line by its id or its preview alone (`relaydesk token revoke`, first run by src/cli/audit.test.ts): the command names no tenant, the token says which; the revocation then runs in that tenant.',
    statements: {
      fa5707d516daaf8f:
        'SELECT tenant_id, id FROM api_tokens WHERE id = $1 (tokens/service.ts findTokenForRevocation)',
      '45109b2c87c91ed2':
        'SELECT tenant_id, id FROM api_tokens WHERE preview = $1 AND revoked_at IS NULL (tokens/service.ts findTokenForRevocation)',
    },
  },
  {
    reason: 'A Teams app id belongs to one tenant only: saving it checks that no other tenant has it.',
    statements: {
      '1286b53e3e3adc87':
        'SELECT 1 FROM teams_integrations WHERE app_id = $1 AND tenant_id <> $2 (teams/integrations.ts)',
    },
  },
  {
    reason:
      'Platform work claims what is due across all tenants (FOR UPDATE SKIP LOCKED), then works on each claimed row in its tenant.',
    statements: {
      '48e5c785023dd024':
        'SELECT tenant_id, ticket_id FROM ticket_wakeups WHERE next_wake_at <= ... (tickets/wakeups.ts: the SLA scheduler)',
      b8a81c36e7430e53:
        'UPDATE ticket_wakeups w SET next_wake_at = ... FROM unnest(tenants, tickets) (tickets/wakeups.ts: the claimed rows pushed back)',
      '3989dcf469e0c13b':
        'DELETE FROM ticket_wakeups w USING unnest(tenants, tickets) (tickets/wakeups.ts: the claimed rows done with)',
      '6d432da6fbbbff13':
        'UPDATE events e SET dispatched_at = now() FROM (SELECT ... FROM events WHERE dispatched_at IS NULL ...) (events/events.ts claimUndispatched)',
      '871759565495ced6':
        'UPDATE events e SET fanned_out_at = now() FROM unnest(tenants, ids) (events/events.ts markFannedOutClaimed: claimed events nobody listens to)',
      '249c7317a788d6cd':
        'WITH due AS (SELECT ... FROM mailbox_health h JOIN mailboxes m ...) UPDATE mailbox_health ... claim_id (inbound/health.ts: upkeep)',
      '693205dbc5d53f20':
        'WITH due AS (SELECT ... FROM mailbox_health h JOIN mailboxes m ...) UPDATE mailbox_health ... reconcile_claimed_until (inbound/health.ts)',
      '9887310850fb1dd3':
        "SELECT tenant_id, id, ... FROM mailboxes WHERE kind = 'imap' (inbound/providers/imap/listener.ts: one listener per mailbox)",
    },
  },
  {
    reason:
      'A batch of send jobs is platform work across tenants (outbound mail, notifications): one statement per step serves every job of the batch, each row named by its tenant and id together (joined with the pairs of the batch).',
    statements: {
      '483242dfc1664ccc':
        'SELECT d.tenant_id, ... FROM deliveries d JOIN unnest(tenants, ids) ... (outbound/ledger.ts queuedRows)',
      d0b168973608f7f9:
        'UPDATE deliveries d SET started_at = ... FROM unnest(...) (outbound/ledger.ts markManySending)',
      '04cb97176fd78ab3':
        "UPDATE delivery_keys k SET state = 'sending' ... FROM unnest(...) (outbound/ledger.ts markManySending)",
      '0f89cf6dccd8db21':
        "UPDATE deliveries d SET status = 'sent' ... FROM unnest(...) (outbound/ledger.ts recordManySent)",
      '8e3952747ad2663b':
        "UPDATE delivery_keys k SET state = 'done' ... FROM unnest(...) (outbound/ledger.ts recordManySent)",
      '25d55e3a4b573578':
        'SELECT m.tenant_id, ... FROM mailboxes m JOIN unnest(tenants, ids) ... (inbound/mailboxes.ts mailboxesAcrossTenants)',
      a6faf38c62d7f73d:
        'SELECT e.tenant_id, ... FROM webhook_endpoints e JOIN unnest(tenants, ids) ... (webhooks/endpoints.ts endpointsForSendAcrossTenants)',
      '96b3cfbaf25c8109':
        'SELECT DISTINCT a.tenant_id, a.message_id FROM attachments a JOIN unnest(tenants, ids) ... (tickets/messages.ts messagesWithAttachmentsAcrossTenants)',
    },
  },
  {
    reason:
      'The event dispatcher asks, for the events it claimed across tenants (up to 500), which of their tenants listen to their types, in one statement per kind of listener: an event nobody listens to gets no fan-out job.',
    statements: {
      '54412b1a0096b083':
        'SELECT DISTINCT tenant_id, event FROM notification_rules WHERE tenant_id = ANY($1) ... (notify/rules.ts tenantsWithRules)',
      '71a1c3c904313150':
        'SELECT tenant_id, events FROM webhook_endpoints WHERE tenant_id = ANY($1) ... (webhooks/endpoints.ts subscribedAmong)',
    },
  },
  {
    reason: 'Retention across all tenants: rows past their age go whatever their tenant.',
    statements: {
      df0460815de2f474: 'DELETE FROM delivery_keys WHERE created_at < $1 (outbound/ledger.ts)',
      '639427bd15c3a3df': 'DELETE FROM unmapped_identities WHERE last_seen_at < ... (people/unmapped.ts)',
      '15b19c1b7bfe5315':
        'DELETE FROM ticket_presence WHERE expires_at <= $1 (tickets/presence.ts expirePresence)',
    },
  },
  {
    reason:
      'Counts over the whole installation, summed over every tenant: the Prometheus gauges (/metrics), and the start-up warning that mailboxes need RELAYDESK_PUBLIC_URL.',
    statements: {
      f53f17451a4e31cd:
        "SELECT count(*) FILTER (WHERE kind = $1) ... FROM mailboxes (inbound/upkeep.ts: warnWithoutPublicUrl, once at a process's start)",
      d0b5c8c5db7d27a7: 'SELECT status, count(*) FROM mailbox_health GROUP BY status (inbound/health.ts)',
      fc21b777cd8a29f4:
        'SELECT m.kind, h.last_renewal_result, count(*) ... FROM mailbox_health h JOIN mailboxes m ... (inbound/health.ts)',
      f0b7b51d7c702cf6: 'SELECT m.kind, h.failure_kind, sum(h.consecutive_failures) ... (inbound/health.ts)',
      d0b5890b736b2043:
        'SELECT coalesce(sum(recovered_by_last_reconcile), 0) FROM mailbox_health (inbound/health.ts)',
    },
  },
  {
    reason:
      'Tests of row-level security: a statement that forgets its tenant filter, on purpose, must see only its own tenant (or nothing, in no scope).',
    statements: {
      '80fc37cd44fffb7c': 'SELECT subject FROM tickets (platform/db/tx.test.ts)',
      '128275a2136621a0': 'SELECT id FROM people (platform/db/tx.test.ts)',
      '092e98fe0ec50e2e':
        'SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM people) (platform/db/tx.test.ts)',
      e2904f78fe8a610c: 'SELECT count(*) FROM message_keys (modules/inbound/inbound.test.ts)',
    },
  },
];
