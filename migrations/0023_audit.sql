-- The audit trail (DESIGN §5.4), owned by the audit module: one row per mutating action (an API
-- write, a Teams action), whoever did it and however it ended. Never the request itself: only the
-- SHA-256 of its RFC 8785 canonical JSON, which proves what was asked without keeping it.
CREATE TABLE audit_events (
  tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id            uuid NOT NULL,
  at            timestamptz NOT NULL DEFAULT now(),
  -- The person acting (null for the system or an unknown Teams user).
  actor_id      uuid,
  -- How they acted: 'token', 'teams', 'system'.
  actor_via     text NOT NULL,
  action        text NOT NULL CHECK (char_length(action) <= 200),
  target_type   text,
  target_id     text CHECK (char_length(target_id) <= 200),
  outcome       text NOT NULL CHECK (outcome IN ('success', 'unauthorised', 'unavailable', 'failed')),
  error_code    text,
  request_id    text,
  payload_hash  text NOT NULL CHECK (payload_hash ~ '^[0-9a-f]{64}$'),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_events_at_idx ON audit_events (tenant_id, at DESC, id DESC);
CREATE INDEX audit_events_target_idx ON audit_events (tenant_id, target_id, at DESC) WHERE target_id IS NOT NULL;
CREATE INDEX audit_events_actor_idx ON audit_events (tenant_id, actor_id, at DESC) WHERE actor_id IS NOT NULL;

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events USING (tenant_id = current_tenant_id() OR system_scope())
  WITH CHECK (tenant_id = current_tenant_id() OR system_scope());
-- Appended, never changed: the application may not update or delete audit rows (tenant deletion
-- cascades from tenants).
GRANT SELECT, INSERT ON audit_events TO relaydesk_app;
