-- Microsoft Teams (DESIGN §5.4), owned by the teams module.
--
-- teams_integrations: one Teams bot per tenant. Activities arrive on one endpoint for every tenant
-- and are routed by the token's audience, the bot's app id, so an app id belongs to one tenant of the
-- installation. That rule cannot be a unique index (unique keys lead with the tenant, DESIGN §3.5):
-- the integration route claims an app id under an advisory lock on it, checks that no other tenant
-- holds it, and writes, in one transaction. The app password is sealed (AES-256-GCM).
CREATE TABLE teams_integrations (
  tenant_id            uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  app_id               text NOT NULL CHECK (char_length(app_id) BETWEEN 1 AND 200),
  app_password         bytea NOT NULL,
  -- Null: the public Bot Framework endpoints (a simulator or a national cloud sets them).
  token_url            text,
  openid_metadata_url  text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id)
);
-- The activity endpoint finds the integration by app id, across tenants (system scope).
CREATE INDEX teams_integrations_app_idx ON teams_integrations (app_id);

-- teams_conversation_references: where the bot can reach someone, captured from every valid
-- activity, one row per (Teams user, conversation) and refreshed by each new activity (the
-- serviceUrl may move). A proactive send that fails for good marks the conversation's rows stale
-- until a new activity arrives. The person is not stored: it is found through the identities
-- (teams: the user id, entra: the object id) when needed, so linking an unmapped identity later or
-- merging people needs no change here.
CREATE TABLE teams_conversation_references (
  tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id                 uuid NOT NULL,
  -- from.id of the activity ("29:...").
  user_id            text NOT NULL CHECK (char_length(user_id) <= 512),
  -- from.aadObjectId: the Entra object id, when Teams gives it.
  aad_object_id      text CHECK (char_length(aad_object_id) <= 200),
  conversation_id    text NOT NULL CHECK (char_length(conversation_id) <= 1024),
  conversation_type  text NOT NULL CHECK (conversation_type IN ('personal', 'groupChat', 'channel')),
  service_url        text NOT NULL CHECK (char_length(service_url) <= 2048),
  -- The Entra (Microsoft 365) tenant of the conversation.
  entra_tenant_id    text CHECK (char_length(entra_tenant_id) <= 200),
  channel_id         text NOT NULL DEFAULT 'msteams',
  last_activity_at   timestamptz NOT NULL,
  stale_at           timestamptz,
  stale_reason       text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, user_id, conversation_id)
);
CREATE INDEX teams_references_conversation_idx
  ON teams_conversation_references (tenant_id, conversation_id, last_activity_at DESC);
CREATE INDEX teams_references_aad_idx
  ON teams_conversation_references (tenant_id, aad_object_id) WHERE aad_object_id IS NOT NULL;

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['teams_integrations', 'teams_conversation_references'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_tenant_id() OR system_scope()) '
                   'WITH CHECK (tenant_id = current_tenant_id() OR system_scope())', t);
  END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE, DELETE ON teams_integrations TO relaydesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON teams_conversation_references TO relaydesk_app;
