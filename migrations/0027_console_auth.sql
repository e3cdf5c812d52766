-- Console sign-in (DESIGN §5.6), owned by the sessions module: how agents prove who they are
-- (password, TOTP, recovery codes), the sessions their browsers hold, the single-use links that
-- invite them or reset a password, and each tenant's rules for all of it. Secrets are never stored
-- as given: passwords as scrypt hashes, session secrets, link tokens and recovery codes as SHA-256
-- (they are 32 or 10 random characters, beyond guessing), TOTP secrets sealed with the secret key.
-- Times are written from the service's clock (not now()), so that tests can move it.

-- One row per tenant that changed a default; no row means the defaults below.
CREATE TABLE auth_settings (
  tenant_id              uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  require_totp           boolean NOT NULL DEFAULT false,
  idle_timeout_minutes   integer NOT NULL DEFAULT 480 CHECK (idle_timeout_minutes BETWEEN 5 AND 10080),
  absolute_timeout_hours integer NOT NULL DEFAULT 168 CHECK (absolute_timeout_hours BETWEEN 1 AND 2160),
  password_sign_in       boolean NOT NULL DEFAULT true,
  updated_at             timestamptz NOT NULL,
  PRIMARY KEY (tenant_id)
);

-- What an agent signs in with. A row exists once a password, a second factor or a failed attempt
-- needs recording.
CREATE TABLE person_credentials (
  tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  person_id           uuid NOT NULL,
  -- scrypt$N=...,r=...,p=...$<salt>$<hash> (base64), parameters with the hash so they can grow.
  password_hash       text,
  password_changed_at timestamptz,
  -- Consecutive failed attempts (password or code) and the lock they caused; cleared on success.
  failed_attempts     integer NOT NULL DEFAULT 0,
  locked_until        timestamptz,
  -- The TOTP secret (sealed), once confirmed; a second one while an enrolment waits for its code.
  totp_secret         bytea,
  totp_enabled_at     timestamptz,
  totp_pending_secret bytea,
  -- The time step of the last code taken: a code is good once (RFC 6238 §5.2).
  totp_last_step      bigint,
  updated_at          timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, person_id),
  FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id) ON DELETE CASCADE,
  CHECK ((totp_secret IS NULL) = (totp_enabled_at IS NULL))
);

-- Ten single-use codes for when the authenticator is lost; a new set replaces the old.
CREATE TABLE recovery_codes (
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  person_id  uuid NOT NULL,
  code_hash  bytea NOT NULL,
  created_at timestamptz NOT NULL,
  used_at    timestamptz,
  PRIMARY KEY (tenant_id, person_id, code_hash),
  FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id) ON DELETE CASCADE
);

-- A signed-in browser. The cookie holds the secret; only its SHA-256 is here. Expiry is computed
-- from created_at and last_seen_at with the tenant's current timeouts, so a shorter timeout applies
-- to sessions already running.
CREATE TABLE console_sessions (
  tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id           uuid NOT NULL,
  person_id    uuid NOT NULL,
  secret_hash  bytea NOT NULL,
  -- Sent back by the console in X-CSRF-Token on every write; not a secret at rest (GET /session shows it).
  csrf_token   text NOT NULL,
  method       text NOT NULL CHECK (method IN ('password', 'oidc')),
  created_at   timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id) ON DELETE CASCADE
);
-- Every request finds its session by the secret's hash alone, across tenants (system scope); not
-- unique, as unique keys lead with the tenant, and 32 random bytes do not collide.
CREATE INDEX console_sessions_secret_idx ON console_sessions (secret_hash);
CREATE INDEX console_sessions_person_idx ON console_sessions (tenant_id, person_id);

-- Single-use links: an invitation (7 days) or a password reset (1 hour).
CREATE TABLE sign_in_tokens (
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id         uuid NOT NULL,
  person_id  uuid NOT NULL,
  purpose    text NOT NULL CHECK (purpose IN ('invitation', 'password_reset')),
  token_hash bytea NOT NULL,
  -- Who asked (an admin for an invitation; null for a reset or the CLI).
  created_by uuid,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at    timestamptz,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sign_in_tokens_hash_idx ON sign_in_tokens (token_hash);
CREATE INDEX sign_in_tokens_person_idx ON sign_in_tokens (tenant_id, person_id, purpose);

-- Sign-in looks an address up across tenants (an agent may work for several), before any tenant
-- is known.
CREATE INDEX person_emails_address_idx ON person_emails (address_normalized);

-- A suspended person is out at once: every request already checks the person's status, and this
-- removes their sessions and unused links too, so that lifting the suspension brings none back.
-- However the suspension is made (the API, the CLI, a merge), it runs in the same transaction.
CREATE FUNCTION end_sessions_of_suspended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM console_sessions WHERE tenant_id = NEW.tenant_id AND person_id = NEW.id;
  DELETE FROM sign_in_tokens WHERE tenant_id = NEW.tenant_id AND person_id = NEW.id AND used_at IS NULL;
  RETURN NULL;
END
$$;
CREATE TRIGGER people_suspended_end_sessions AFTER UPDATE OF status ON people
  FOR EACH ROW WHEN (NEW.status = 'suspended' AND OLD.status IS DISTINCT FROM 'suspended')
  EXECUTE FUNCTION end_sessions_of_suspended();

ALTER TABLE auth_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON auth_settings USING (tenant_id = current_tenant_id() OR system_scope())
  WITH CHECK (tenant_id = current_tenant_id() OR system_scope());
GRANT SELECT, INSERT, UPDATE, DELETE ON auth_settings TO relaydesk_app;

ALTER TABLE person_credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE person_credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON person_credentials USING (tenant_id = current_tenant_id() OR system_scope())
  WITH CHECK (tenant_id = current_tenant_id() OR system_scope());
GRANT SELECT, INSERT, UPDATE, DELETE ON person_credentials TO relaydesk_app;

ALTER TABLE recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE recovery_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON recovery_codes USING (tenant_id = current_tenant_id() OR system_scope())
  WITH CHECK (tenant_id = current_tenant_id() OR system_scope());
GRANT SELECT, INSERT, UPDATE, DELETE ON recovery_codes TO relaydesk_app;

ALTER TABLE console_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE console_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON console_sessions USING (tenant_id = current_tenant_id() OR system_scope())
  WITH CHECK (tenant_id = current_tenant_id() OR system_scope());
GRANT SELECT, INSERT, UPDATE, DELETE ON console_sessions TO relaydesk_app;

ALTER TABLE sign_in_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE sign_in_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sign_in_tokens USING (tenant_id = current_tenant_id() OR system_scope())
  WITH CHECK (tenant_id = current_tenant_id() OR system_scope());
GRANT SELECT, INSERT, UPDATE, DELETE ON sign_in_tokens TO relaydesk_app;
