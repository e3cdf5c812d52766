-- Notifications (DESIGN §5.4), part one: what happened and who wants to hear of it.
--
-- events (owned by the events module): one row per thing worth telling someone about, written in
-- the transaction of its cause by whichever module caused it (tickets, inbound, SLA, upkeep,
-- outbound). A dispatcher claims undispatched rows and hands each to a `notify.fanout` job in the
-- claiming transaction; the job turns it into ledger rows by the tenant's rules and marks it fanned
-- out in the same transaction, so a crash at any point loses nothing and fans out nothing twice.
CREATE TABLE events (
  tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id             uuid NOT NULL,
  type           text NOT NULL CHECK (type IN ('ticket.created', 'ticket.assigned', 'ticket.customer_replied',
                   'ticket.status_changed', 'sla.threshold', 'sla.breached', 'sla.escalated',
                   'mailbox.health_changed', 'delivery.failed', 'notification.test')),
  occurred_at    timestamptz NOT NULL DEFAULT now(),
  ticket_id      uuid,
  mailbox_id     uuid,
  -- Who caused it (a person), when a person did.
  actor_id       uuid,
  -- Passes quiet hours (an SLA breach).
  urgent         boolean NOT NULL DEFAULT false,
  data           jsonb NOT NULL DEFAULT '{}'::jsonb,
  dispatched_at  timestamptz,
  fanned_out_at  timestamptz,
  PRIMARY KEY (tenant_id, id)
);
-- The dispatcher's work list, across tenants (system scope).
CREATE INDEX events_undispatched_idx ON events (occurred_at) WHERE dispatched_at IS NULL;
CREATE INDEX events_ticket_idx ON events (tenant_id, ticket_id, occurred_at) WHERE ticket_id IS NOT NULL;
CREATE INDEX events_age_idx ON events (tenant_id, occurred_at);

-- Rules per tenant (owned by the notify module): event → recipients → channel.
CREATE TABLE notification_rules (
  tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id           uuid NOT NULL,
  event        text NOT NULL,
  -- [{type: assignee|requester|watchers|role|person, role?, personId?}]
  recipients   jsonb NOT NULL DEFAULT '[]'::jsonb,
  channel      text NOT NULL CHECK (channel IN ('preferred', 'teams', 'slack', 'email', 'webhook')),
  -- A fixed destination on the channel: a Teams conversation id, a Slack channel id, a webhook endpoint id.
  destination  text,
  fallback     text[] NOT NULL DEFAULT '{}',
  conditions   jsonb NOT NULL DEFAULT '{}'::jsonb,
  enabled      boolean NOT NULL DEFAULT true,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX notification_rules_event_idx ON notification_rules (tenant_id, event) WHERE enabled;

-- A person's notification settings beside their preferred channel and time zone (people module):
-- {fallback: [channels], quietHours: {start: "HH:MM", end: "HH:MM"}}.
ALTER TABLE people ADD COLUMN notification_settings jsonb NOT NULL DEFAULT '{}'::jsonb;

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['events', 'notification_rules'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_tenant_id() OR system_scope()) '
                   'WITH CHECK (tenant_id = current_tenant_id() OR system_scope())', t);
  END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE, DELETE ON events TO relaydesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_rules TO relaydesk_app;

-- What an agent may do when acting as a person rather than through a token (from Teams, later the
-- console): the permissions of a token role. Contacts have none. Agents start as `agent`; whoever
-- holds an admin token today is an admin.
ALTER TABLE people ADD COLUMN role text CHECK (role IN ('admin', 'agent', 'viewer'));
UPDATE people SET role = 'agent' WHERE kind = 'agent';
UPDATE people p SET role = 'admin'
 WHERE p.kind = 'agent' AND EXISTS (SELECT 1 FROM api_tokens t WHERE t.tenant_id = p.tenant_id AND t.person_id = p.id
                                      AND t.role = 'admin' AND t.revoked_at IS NULL);
ALTER TABLE people ADD CONSTRAINT people_role_kind CHECK ((kind = 'agent') = (role IS NOT NULL));
-- "All admins" is asked at every fan-out to a role.
CREATE INDEX people_role_idx ON people (tenant_id, role) WHERE role IS NOT NULL;

-- The ledger keeps which notification an attempt delivers: its attempts (retries, replays) share it,
-- and it is part of their idempotency keys (two notifications about one ticket to one person are two
-- deliveries).
ALTER TABLE deliveries ADD COLUMN notification_id uuid;
CREATE INDEX deliveries_notification_idx ON deliveries (tenant_id, notification_id) WHERE notification_id IS NOT NULL;

-- The defaults every tenant starts with (new tenants get them when created).
INSERT INTO notification_rules (tenant_id, id, event, recipients, channel)
SELECT t.id, gen_random_uuid(), d.event, d.recipients::jsonb, 'preferred'
  FROM tenants t
 CROSS JOIN (VALUES ('ticket.customer_replied', '[{"type":"assignee"}]'),
                    ('sla.breached', '[{"type":"assignee"}]'),
                    ('ticket.assigned', '[{"type":"assignee"}]'),
                    ('mailbox.health_changed', '[{"type":"role","role":"admin"}]')) AS d (event, recipients);

-- SLA escalations asked for notifications that waited in pending_notifications for this capability:
-- they become events (fanned out like any other) and the table is retired.
-- Their reason reads "sla <metric> at <percent>%"; those of tickets since closed or deleted, or older
-- than a day, are not worth telling now and are kept as already fanned out.
INSERT INTO events (tenant_id, id, type, occurred_at, ticket_id, data, urgent, dispatched_at, fanned_out_at)
SELECT p.tenant_id, p.id, 'sla.escalated', p.created_at, p.ticket_id,
       jsonb_build_object('notify', jsonb_build_array(p.recipient), 'reason', p.reason,
                          'metric', substring(p.reason FROM '^sla (\S+) at'),
                          'percent', substring(p.reason FROM 'at (\d+)%')::integer),
       coalesce(substring(p.reason FROM 'at (\d+)%')::integer >= 100, false),
       CASE WHEN stale THEN now() END, CASE WHEN stale THEN now() END
  FROM pending_notifications p
  JOIN tickets t ON t.tenant_id = p.tenant_id AND t.id = p.ticket_id,
       LATERAL (SELECT t.deleted_at IS NOT NULL OR t.status IN ('solved', 'closed')
                       OR p.created_at < now() - interval '1 day' AS stale) s;
DROP TABLE pending_notifications;

-- Every statement that records events announces them at commit, so the dispatcher need not wait for
-- its next poll (one NOTIFY per statement, whatever the number of rows).
CREATE FUNCTION announce_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Not for a statement that recorded nothing (a creation whose requester was refused).
  IF EXISTS (SELECT 1 FROM recorded) THEN
    PERFORM pg_notify('relaydesk_events', '');
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER events_announce AFTER INSERT ON events REFERENCING NEW TABLE AS recorded
  FOR EACH STATEMENT EXECUTE FUNCTION announce_events();
