-- Core schema: tenants, people, tokens, tickets, messages, status history.
--
-- Rules every tenant table follows (DESIGN §3.5, checked by src/platform/db/schema.test.ts):
--   * tenant_id is the first column of the primary key and of every unique key and foreign key,
--     so the schema can be distributed by tenant_id (Citus) without rewriting it;
--   * tenant_id references tenants ON DELETE CASCADE, so deleting a tenant removes all of its rows
--     in one statement (the NO ACTION keys between tenant tables are checked after the cascade);
--   * row-level security is enabled, with one policy pinning rows to the tenant that the transaction
--     set in app.tenant_id. Tenant transactions run as relaydesk_app, which is not the owner and so is
--     always subject to it; platform transactions (token lookup, tenant admin) run as the owner
--     (see src/platform/db/tx.ts).

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'relaydesk_app') THEN
    CREATE ROLE relaydesk_app NOLOGIN;
  END IF;
  -- The login role must be able to SET ROLE to it (a superuser can already).
  BEGIN
    EXECUTE format('GRANT relaydesk_app TO %I', current_user);
  EXCEPTION WHEN OTHERS THEN
    NULL;
  END;
END
$$;

CREATE FUNCTION current_tenant_id() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;

CREATE TABLE tenants (
  id          uuid PRIMARY KEY,
  name        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenants_name_key ON tenants (lower(name));

-- Per-tenant ticket numbers (T-1, T-2, ...). One row per tenant; the UPDATE that takes a number
-- holds its row lock only until the creating transaction commits, so numbers have no gaps.
CREATE TABLE ticket_counters (
  tenant_id    uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  last_number  bigint NOT NULL DEFAULT 0
);

CREATE TABLE people (
  tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id                 uuid NOT NULL,
  display_name       text NOT NULL,
  kind               text NOT NULL CHECK (kind IN ('agent', 'contact')),
  status             text NOT NULL DEFAULT 'active' CHECK (status IN ('invited', 'active', 'suspended')),
  time_zone          text,
  preferred_channel  text CHECK (preferred_channel IN ('email', 'teams', 'slack', 'webhook')),
  metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX people_list_idx ON people (tenant_id, created_at DESC, id DESC);

-- Email addresses of a person, stored as entered and matched on the normalised form.
CREATE TABLE person_emails (
  tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  address_normalized  text NOT NULL,
  address             text NOT NULL,
  person_id           uuid NOT NULL,
  is_primary          boolean NOT NULL DEFAULT false,
  created_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, address_normalized),
  FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX person_emails_person_idx ON person_emails (tenant_id, person_id);
CREATE UNIQUE INDEX person_emails_one_primary ON person_emails (tenant_id, person_id) WHERE is_primary;

-- API tokens: only the SHA-256 of the token is stored, with the last four characters as a preview.
-- Lookup by hash happens before the tenant is known, hence the plain index on token_hash; the
-- unique key still leads with tenant_id.
CREATE TABLE api_tokens (
  tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id            uuid NOT NULL,
  person_id     uuid NOT NULL,
  token_hash    bytea NOT NULL,
  preview       text NOT NULL,
  role          text NOT NULL CHECK (role IN ('admin', 'agent', 'viewer', 'integration')),
  label         text NOT NULL DEFAULT '',
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz,
  revoked_at    timestamptz,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, token_hash),
  FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX api_tokens_hash_idx ON api_tokens (token_hash);
CREATE INDEX api_tokens_person_idx ON api_tokens (tenant_id, person_id);

CREATE TABLE tickets (
  tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id            uuid NOT NULL,
  number        bigint NOT NULL,
  subject       text NOT NULL,
  status        text NOT NULL DEFAULT 'new'
                CHECK (status IN ('new', 'open', 'pending', 'on_hold', 'solved', 'closed')),
  priority      text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
  requester_id  uuid NOT NULL,
  assignee_id   uuid,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, number),
  FOREIGN KEY (tenant_id, requester_id) REFERENCES people (tenant_id, id),
  FOREIGN KEY (tenant_id, assignee_id) REFERENCES people (tenant_id, id)
);
CREATE INDEX tickets_list_idx ON tickets (tenant_id, created_at DESC, id DESC);
CREATE INDEX tickets_status_idx ON tickets (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX tickets_requester_idx ON tickets (tenant_id, requester_id, created_at DESC, id DESC);
CREATE INDEX tickets_assignee_idx ON tickets (tenant_id, assignee_id, created_at DESC, id DESC);

CREATE TABLE ticket_messages (
  tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id              uuid NOT NULL,
  ticket_id       uuid NOT NULL,
  author_id       uuid NOT NULL,
  visibility      text NOT NULL CHECK (visibility IN ('public', 'internal')),
  direction       text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  body_text       text NOT NULL,
  body_html       text,
  rfc_message_id  text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, author_id) REFERENCES people (tenant_id, id)
);
CREATE INDEX ticket_messages_ticket_idx ON ticket_messages (tenant_id, ticket_id, created_at, id);
CREATE INDEX ticket_messages_author_idx ON ticket_messages (tenant_id, author_id);

-- Every status transition, in order, with its time: the SLA engine replays this to pause and
-- resume clocks, so it is append-only.
CREATE TABLE ticket_status_history (
  tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  ticket_id    uuid NOT NULL,
  seq          bigint GENERATED ALWAYS AS IDENTITY,
  from_status  text,
  to_status    text NOT NULL,
  changed_at   timestamptz NOT NULL DEFAULT now(),
  changed_by   uuid,
  PRIMARY KEY (tenant_id, ticket_id, seq),
  FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE
);

-- Row-level security on every tenant table (tenants itself is scoped by its id).
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants USING (id = current_tenant_id());

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['ticket_counters', 'people', 'person_emails', 'api_tokens', 'tickets',
                           'ticket_messages', 'ticket_status_history']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_tenant_id()) '
                   'WITH CHECK (tenant_id = current_tenant_id())', t);
  END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO relaydesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO relaydesk_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO relaydesk_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO relaydesk_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO relaydesk_app;
