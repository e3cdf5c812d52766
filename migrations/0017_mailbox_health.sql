-- Subscription upkeep (DESIGN §5.2): one health row per mailbox, beside it in the inbound module.
-- The row carries what keeps mail flowing (the provider subscription or watch: its id, expiry and
-- clientState, persisted in the transaction that records the renewal's result) and what an operator
-- reads to know whether it flows (status, last renewal and its result, failures, last notification,
-- last message, last reconcile). Upkeep claims due rows across tenants with FOR UPDATE SKIP LOCKED
-- and leases them (claimed_until) while a renewal runs, so any number of schedulers renew each
-- mailbox once per due time, and a renewal that died with its process comes back after its lease.
CREATE TABLE mailbox_health (
  tenant_id            uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  mailbox_id           uuid NOT NULL,
  status               text NOT NULL DEFAULT 'healthy'
                         CHECK (status IN ('healthy', 'renewing', 'degraded', 'error', 'needs_reauth', 'disabled')),
  subscription_id      text,
  client_state         text,
  expires_at           timestamptz,
  -- A lifecycle notification asked for this (reauthorize, or recreate the subscription) at once.
  pending              text CHECK (pending IN ('reauthorize', 'recreate')),
  -- Not before: a failure's backoff, or a provider's Retry-After.
  not_before           timestamptz,
  -- The renewal claim in flight: its id travels in the renewal job, which acts only while it holds it.
  claim_id             uuid,
  claimed_until        timestamptz,
  last_renewal_at      timestamptz,
  last_renewal_result  text CHECK (last_renewal_result IN ('created', 'renewed', 'reauthorized', 'recreated', 'failed')),
  failure_reason       text,
  consecutive_failures integer NOT NULL DEFAULT 0,
  last_notification_at timestamptz,
  last_message_at      timestamptz,
  last_reconcile_at    timestamptz,
  recovered_by_last_reconcile integer,
  -- When the scheduled reconciliation is next due, and a reconciliation in flight.
  reconcile_next_at    timestamptz,
  reconcile_claimed_until timestamptz,
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, mailbox_id),
  FOREIGN KEY (tenant_id, mailbox_id) REFERENCES mailboxes (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX mailbox_health_expiry_idx ON mailbox_health (expires_at);

-- Every change of status, for the notification capability to tell admins (mailbox.health_changed).
CREATE TABLE mailbox_health_events (
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id          uuid NOT NULL,
  mailbox_id  uuid NOT NULL,
  from_status text NOT NULL,
  to_status   text NOT NULL,
  reason      text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, mailbox_id) REFERENCES mailboxes (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX mailbox_health_events_mailbox_idx ON mailbox_health_events (tenant_id, mailbox_id, created_at DESC);

-- Reconciliation asks whether a provider's message was already recorded for the mailbox.
CREATE INDEX inbound_messages_pointer_idx ON inbound_messages (tenant_id, mailbox_id, (pointer->>'messageId'))
  WHERE pointer ? 'messageId';

-- Existing mailboxes: their Graph subscription moves here; the rest starts from what is known.
INSERT INTO mailbox_health (tenant_id, mailbox_id, subscription_id, client_state, last_notification_at)
SELECT tenant_id, id, state->'graph'->>'subscriptionId', state->'graph'->>'clientState',
       coalesce(state->'graph'->>'lastNotificationAt', state->'gmail'->>'lastNotificationAt')::timestamptz
  FROM mailboxes;
UPDATE mailboxes SET state = jsonb_set(state, '{graph}', (state->'graph') - 'subscriptionId' - 'clientState' - 'lastNotificationAt')
 WHERE state ? 'graph';

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['mailbox_health', 'mailbox_health_events'] LOOP
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_tenant_id() OR system_scope()) '
                   'WITH CHECK (tenant_id = current_tenant_id() OR system_scope())', t);
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
  END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE, DELETE ON mailbox_health TO relaydesk_app;
GRANT SELECT, INSERT ON mailbox_health_events TO relaydesk_app;
