-- Connecting a mailbox by OAuth (authorization code with PKCE): one row per authorization request
-- handed out by POST /mailboxes/{id}/connect, read back by the public callback, which knows only the
-- `state` the provider returns. The state itself is never stored, only its SHA-256 (a leaked table
-- cannot finish anyone's connection); the PKCE code verifier is sealed with the secret key. A state
-- is single use (used_at is set in the transaction that stores the tokens) and expires after 10
-- minutes. Owned by the inbound module.
CREATE TABLE oauth_states (
  tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id            uuid NOT NULL,
  mailbox_id    uuid NOT NULL,
  state_hash    bytea NOT NULL,
  -- The PKCE code_verifier, sealed (AES-256-GCM).
  code_verifier bytea NOT NULL,
  -- The app registration the authorization URL named (the token exchange must use the same).
  client_id     text NOT NULL,
  redirect_uri  text NOT NULL,
  -- Who asked (the person behind the API token), for the record.
  requested_by  uuid,
  created_at    timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL,
  used_at       timestamptz,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, mailbox_id) REFERENCES mailboxes (tenant_id, id) ON DELETE CASCADE
);
-- The callback finds a state by its hash alone, across tenants (system scope). Not a unique index:
-- unique keys lead with the tenant (DESIGN §3.5), and 32 random bytes do not collide anyway.
CREATE INDEX oauth_states_hash_idx ON oauth_states (state_hash);
CREATE INDEX oauth_states_mailbox_idx ON oauth_states (tenant_id, mailbox_id);

ALTER TABLE oauth_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE oauth_states FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oauth_states USING (tenant_id = current_tenant_id() OR system_scope())
  WITH CHECK (tenant_id = current_tenant_id() OR system_scope());
GRANT SELECT, INSERT, UPDATE, DELETE ON oauth_states TO relaydesk_app;
