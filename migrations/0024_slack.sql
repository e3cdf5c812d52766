-- Slack (issue 13): one Slack workspace per tenant, reached with a bot token. The token is sealed
-- with the secret key (AES-256-GCM) and never leaves the server; `token_hint` is what the API shows
-- of it ("xoxb-…abcd"). What auth.test answered when the token was saved is kept for display. Owned
-- by the slack module; goes with its tenant.
CREATE TABLE slack_integrations (
  tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  bot_token     bytea NOT NULL,
  token_hint    text NOT NULL,
  api_base_url  text NOT NULL,
  team_id       text,
  team_name     text,
  bot_user_id   text,
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL,
  PRIMARY KEY (tenant_id)
);

ALTER TABLE slack_integrations ENABLE ROW LEVEL SECURITY;
ALTER TABLE slack_integrations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON slack_integrations USING (tenant_id = current_tenant_id() OR system_scope())
  WITH CHECK (tenant_id = current_tenant_id() OR system_scope());
GRANT SELECT, INSERT, UPDATE, DELETE ON slack_integrations TO relaydesk_app;
