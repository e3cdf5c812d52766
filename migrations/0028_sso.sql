-- Single sign-on to the console with OpenID Connect (issue 14). Owned by the sso module; goes with
-- its tenant.
--
-- sso_providers: at most one provider of each kind per tenant (Microsoft Entra ID, Google, any other
-- OpenID provider): the issuer, the client registered with it and its secret, sealed with the secret
-- key (AES-256-GCM) and never answered. `allowed_domains`: when not empty, only people whose
-- verified email is in one of these domains may sign in through it.
CREATE TABLE sso_providers (
  tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  provider         text NOT NULL CHECK (provider IN ('entra', 'google', 'oidc')),
  issuer           text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 500),
  client_id        text NOT NULL CHECK (length(client_id) BETWEEN 1 AND 500),
  client_secret    bytea NOT NULL,
  enabled          boolean NOT NULL,
  allowed_domains  text[] NOT NULL,
  -- What the sign-in page calls it (null: the kind's own name).
  label            text CHECK (length(label) BETWEEN 1 AND 60),
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, provider)
);

-- sso_login_states: one row per sign-in started at /auth/oidc/{provider}/start, read back by the
-- public callback, which knows only the `state` the provider returns. As with oauth_states (0018),
-- the state itself is never stored, only its SHA-256; the PKCE code verifier and the nonce are
-- sealed. A state is single use (used_at is set before the code is redeemed) and expires after 10
-- minutes. The issuer and client id the authorization URL named are kept: the callback refuses the
-- state when the provider's settings changed in between.
CREATE TABLE sso_login_states (
  tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id             uuid NOT NULL,
  provider       text NOT NULL,
  state_hash     bytea NOT NULL,
  code_verifier  bytea NOT NULL,
  nonce          bytea NOT NULL,
  issuer         text NOT NULL,
  client_id      text NOT NULL,
  redirect_uri   text NOT NULL,
  -- Where the console goes after signing in: a path under /console, checked when the row was made.
  return_to      text NOT NULL,
  created_at     timestamptz NOT NULL,
  expires_at     timestamptz NOT NULL,
  used_at        timestamptz,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, provider) REFERENCES sso_providers (tenant_id, provider) ON DELETE CASCADE
);
-- The callback finds a state by its hash alone, across tenants (system scope); not unique, as with
-- oauth_states: unique keys lead with the tenant, and 32 random bytes do not collide anyway.
CREATE INDEX sso_login_states_hash_idx ON sso_login_states (state_hash);
-- Starting a sign-in removes the tenant's long-expired states.
CREATE INDEX sso_login_states_expiry_idx ON sso_login_states (tenant_id, expires_at);

ALTER TABLE sso_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_providers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sso_providers USING (tenant_id = current_tenant_id() OR system_scope())
  WITH CHECK (tenant_id = current_tenant_id() OR system_scope());
GRANT SELECT, INSERT, UPDATE, DELETE ON sso_providers TO relaydesk_app;

ALTER TABLE sso_login_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_login_states FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sso_login_states USING (tenant_id = current_tenant_id() OR system_scope())
  WITH CHECK (tenant_id = current_tenant_id() OR system_scope());
GRANT SELECT, INSERT, UPDATE, DELETE ON sso_login_states TO relaydesk_app;
