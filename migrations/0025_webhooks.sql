-- Signed webhooks (DESIGN §5.4), owned by the webhooks module: endpoints a tenant registers to take
-- events by their own subscription. Attempts go through the delivery ledger (channel `webhook`,
-- destination = the endpoint's id), like every other notification channel.
--
-- The signing secret (`whsec_…`) is sealed with the server's secret key and shown only in the answer
-- that made it. After a rotation the previous secret keeps signing beside the new one until
-- previous_secret_expires_at (24 hours), so a receiver can switch without refusing anything.
CREATE TABLE webhook_endpoints (
  tenant_id                  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id                         uuid NOT NULL,
  url                        text NOT NULL CHECK (char_length(url) <= 2048),
  description                text NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
  -- Event types (events.type) it takes.
  events                     text[] NOT NULL CHECK (cardinality(events) >= 1),
  enabled                    boolean NOT NULL DEFAULT true,
  -- Why it was turned off: `manual` (PATCH), `gone` (the receiver answered 410), `failing` (every
  -- attempt failed for five days).
  disabled_reason            text CHECK (disabled_reason IN ('manual', 'gone', 'failing')),
  disabled_at                timestamptz,
  secret                     bytea NOT NULL,
  previous_secret            bytea,
  previous_secret_expires_at timestamptz,
  secret_rotated_at          timestamptz,
  -- Since when every attempt has failed (null after a success).
  failing_since              timestamptz,
  created_at                 timestamptz NOT NULL,
  updated_at                 timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id),
  CHECK (enabled = (disabled_reason IS NULL)),
  CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX webhook_endpoints_created_idx ON webhook_endpoints (tenant_id, created_at DESC, id DESC);

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_endpoints USING (tenant_id = current_tenant_id() OR system_scope())
  WITH CHECK (tenant_id = current_tenant_id() OR system_scope());
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints TO relaydesk_app;

-- The deliveries of one endpoint (GET /webhook-endpoints/{id}/deliveries, replays).
CREATE INDEX deliveries_destination_idx ON deliveries (tenant_id, channel, destination, created_at DESC)
  WHERE channel <> 'email';
