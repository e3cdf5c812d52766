-- Identity: external identities, the identity event log and unmapped-identity triage.

-- One row per (kind, external id) a channel knows a person by: entra, teams, slack, github, ...
CREATE TABLE person_identities (
  tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  kind         text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_-]{1,31}$'),
  external_id  text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 512),
  person_id    uuid NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, kind, external_id),
  FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX person_identities_person_idx ON person_identities (tenant_id, person_id);

-- Append-only history of every identity change. person_id has no foreign key on purpose: the
-- history of a merged or deleted person outlives it. Rows go only with their tenant.
CREATE TABLE identity_events (
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id          uuid NOT NULL,
  person_id   uuid NOT NULL,
  event_type  text NOT NULL CHECK (event_type IN ('identity_added', 'identity_removed', 'email_added',
                'email_removed', 'auto_merge', 'manual_merge', 'token_minted', 'token_revoked',
                'status_changed', 'profile_changed')),
  actor       text NOT NULL CHECK (actor ~ '^(person|token|system):.+$'),
  before      jsonb,
  after       jsonb,
  -- clock_timestamp, not now(): several events of one transaction keep their order.
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX identity_events_person_idx ON identity_events (tenant_id, person_id, created_at DESC, id DESC);

CREATE FUNCTION identity_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'identity_events is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER identity_events_no_update BEFORE UPDATE ON identity_events
  FOR EACH ROW EXECUTE FUNCTION identity_events_append_only();
-- The application role may add events, never change or remove them; deleting a tenant runs as the
-- owner and cascades.
REVOKE UPDATE, DELETE ON identity_events FROM relaydesk_app;

-- Identities seen by a channel but linked to nobody, for an operator to link or dismiss.
CREATE TABLE unmapped_identities (
  tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id                 uuid NOT NULL,
  kind               text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_-]{1,31}$'),
  external_id        text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 512),
  first_seen_at      timestamptz NOT NULL DEFAULT now(),
  last_seen_at       timestamptz NOT NULL DEFAULT now(),
  sightings          bigint NOT NULL DEFAULT 1,
  sample_event_type  text,
  sample_context     text CHECK (length(sample_context) <= 100),
  display_name       text,
  email              text,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, kind, external_id)
);
CREATE INDEX unmapped_identities_list_idx ON unmapped_identities (tenant_id, last_seen_at DESC, id DESC);

ALTER TABLE person_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE unmapped_identities ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON person_identities USING (tenant_id = current_tenant_id())
  WITH CHECK (tenant_id = current_tenant_id());
CREATE POLICY tenant_isolation ON identity_events USING (tenant_id = current_tenant_id())
  WITH CHECK (tenant_id = current_tenant_id());
CREATE POLICY tenant_isolation ON unmapped_identities USING (tenant_id = current_tenant_id())
  WITH CHECK (tenant_id = current_tenant_id());

-- Case-insensitive search on display names for people lists and triage suggestions.
CREATE INDEX people_display_name_idx ON people (tenant_id, lower(display_name));
