-- Outbound mail and the delivery ledger (DESIGN §5.4), owned by the outbound module.
--
-- deliveries: one row per attempt to deliver something somewhere (an agent's reply by email, an
-- acknowledgement, later notifications). The row written in the transaction of its cause, status
-- `queued`, is the outbox: it holds everything the send needs (recipients, subject, threading
-- headers), its job carries only its id. The table is range-partitioned by month on created_at:
-- partitions are made ahead by the scheduler and retention drops whole partitions. A partitioned
-- table's unique keys must include the partition key, so attempts are keyed
-- (tenant_id, created_at, id) and the idempotency of sends lives in delivery_keys.
CREATE TABLE deliveries (
  tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  created_at         timestamptz NOT NULL DEFAULT now(),
  id                 uuid NOT NULL,
  channel            text NOT NULL CHECK (channel IN ('email', 'teams', 'slack', 'webhook')),
  -- What is delivered: an agent's reply, an acknowledgement of a new ticket.
  purpose            text NOT NULL CHECK (purpose IN ('reply', 'acknowledgement', 'notification')),
  destination        text NOT NULL,
  attempt            integer NOT NULL CHECK (attempt >= 1),
  -- The attempt this one follows (a retry), if any.
  previous_id        uuid,
  status             text NOT NULL
                       CHECK (status IN ('queued', 'skipped', 'sent', 'delivered', 'bounced', 'failed', 'unknown')),
  skip_reason        text,
  retryable          boolean,
  error_code         text CHECK (error_code IN ('throttled', 'auth', 'not_found', 'invalid_recipient', 'transient', 'permanent')),
  error_message      text CHECK (char_length(error_message) <= 1024),
  ticket_id          uuid,
  ticket_message_id  uuid,
  mailbox_id         uuid,
  rfc_message_id     text,
  provider_message_id text,
  provider_response  text CHECK (char_length(provider_response) <= 1024),
  request_id         text,
  idempotency_key    text NOT NULL,
  -- What the send needs: recipients {to, cc, bcc}, subject, inReplyTo, references, automatic.
  payload            jsonb NOT NULL DEFAULT '{}'::jsonb,
  started_at         timestamptz,
  sent_at            timestamptz,
  finished_at        timestamptz,
  duration_ms        integer,
  PRIMARY KEY (tenant_id, created_at, id)
) PARTITION BY RANGE (created_at);
CREATE INDEX deliveries_id_idx ON deliveries (tenant_id, id);
CREATE INDEX deliveries_message_idx ON deliveries (tenant_id, ticket_message_id, created_at DESC) WHERE ticket_message_id IS NOT NULL;
CREATE INDEX deliveries_ticket_idx ON deliveries (tenant_id, ticket_id, created_at DESC) WHERE ticket_id IS NOT NULL;
CREATE INDEX deliveries_rfc_idx ON deliveries (tenant_id, rfc_message_id) WHERE rfc_message_id IS NOT NULL;
-- The per-recipient cap of automatic mail counts recent acknowledgements to one address.
CREATE INDEX deliveries_automatic_idx ON deliveries (tenant_id, destination, created_at)
  WHERE purpose = 'acknowledgement' AND status IN ('queued', 'sent', 'delivered', 'bounced', 'unknown');

-- The idempotency keys of attempts, reserved before the send: sha256(message|tenant|channel|
-- destination|attempt). `reserved` then `sending` (committed just before the provider is called)
-- then `done`; a run that finds `sending` cannot know whether the send happened and asks the
-- provider, or marks the attempt unknown, rather than sending twice.
CREATE TABLE delivery_keys (
  tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  idempotency_key     text NOT NULL,
  delivery_id         uuid NOT NULL,
  state               text NOT NULL CHECK (state IN ('reserved', 'sending', 'done')),
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX delivery_keys_age_idx ON delivery_keys (created_at);

-- Mail templates per tenant (acknowledgements, signatures), Liquid syntax, text and HTML.
CREATE TABLE mail_templates (
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id          uuid NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('acknowledgement', 'signature')),
  name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  subject     text NOT NULL DEFAULT '',
  body_text   text NOT NULL,
  body_html   text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX mail_templates_name_idx ON mail_templates (tenant_id, kind, lower(name));

-- Partitions of the ledger, made and dropped by the scheduler through these two functions: the
-- application role owns no table and cannot run DDL, so they run as their owner (SECURITY DEFINER,
-- with a fixed search_path), and do nothing but that.
CREATE FUNCTION ensure_delivery_partitions(around timestamptz, months_ahead integer)
  RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  first_month timestamp := date_trunc('month', around AT TIME ZONE 'UTC');
  m timestamp;
  name text;
  made integer := 0;
BEGIN
  IF months_ahead < 0 OR months_ahead > 24 THEN RAISE EXCEPTION 'months_ahead must be 0..24'; END IF;
  PERFORM pg_advisory_xact_lock(hashtext('relaydesk.deliveries.partitions'));
  FOR i IN 0..months_ahead LOOP
    m := first_month + make_interval(months => i);
    name := 'deliveries_' || to_char(m, 'YYYY_MM');
    IF to_regclass(name) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF deliveries FOR VALUES FROM (%L) TO (%L)', name,
                     (m AT TIME ZONE 'UTC'), ((m + interval '1 month') AT TIME ZONE 'UTC'));
      EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_tenant_id() OR system_scope()) '
                     'WITH CHECK (tenant_id = current_tenant_id() OR system_scope())', name);
      EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', name);
      EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', name);
      made := made + 1;
    END IF;
  END LOOP;
  RETURN made;
END
$$;

-- Drops the partitions whose whole month ended before `before`; answers how many. Never this
-- month's or last month's, whatever it is asked: the role it runs for may not delete rows at all.
CREATE FUNCTION drop_delivery_partitions(before timestamptz)
  RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  p record;
  dropped integer := 0;
BEGIN
  before := least(before, (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month') AT TIME ZONE 'UTC');
  PERFORM pg_advisory_xact_lock(hashtext('relaydesk.deliveries.partitions'));
  FOR p IN
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'deliveries'::regclass AND c.relname ~ '^deliveries_[0-9]{4}_[0-9]{2}$'
  LOOP
    IF (to_timestamp(substr(p.relname, 12), 'YYYY_MM')::timestamp + interval '1 month') AT TIME ZONE 'UTC' <= before THEN
      EXECUTE format('DROP TABLE %I', p.relname);
      dropped := dropped + 1;
    END IF;
  END LOOP;
  RETURN dropped;
END
$$;
REVOKE ALL ON FUNCTION ensure_delivery_partitions(timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION drop_delivery_partitions(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ensure_delivery_partitions(timestamptz, integer) TO relaydesk_app;
GRANT EXECUTE ON FUNCTION drop_delivery_partitions(timestamptz) TO relaydesk_app;

-- The month before this one (mail queued just before a clock change), this one and three ahead.
SELECT ensure_delivery_partitions(now() - interval '1 month', 4);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['deliveries', 'delivery_keys', 'mail_templates'] LOOP
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_tenant_id() OR system_scope()) '
                   'WITH CHECK (tenant_id = current_tenant_id() OR system_scope())', t);
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
  END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE ON deliveries TO relaydesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON delivery_keys TO relaydesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON mail_templates TO relaydesk_app;
