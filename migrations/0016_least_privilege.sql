-- Least privilege. Relaydesk's processes log in as relaydesk_app: not a superuser, without
-- BYPASSRLS, owning no tenant table, with only the grants below. These migrations run as the owning
-- role (the embedded cluster's superuser, or DATABASE_MIGRATION_URL's role). Row-level security is
-- forced on every tenant table, so that even the tables' owner is subject to it.
--
-- Two scopes, both transaction-local settings that only src/platform/db/tx.ts sets:
--   app.tenant_id = <uuid>   one tenant's rows (withTenant and its statement-at-a-time forms);
--   app.system = on          every tenant's rows, for the few operations that span tenants by design
--                            (token lookup by hash, tenant administration, the SLA scheduler's
--                            claim, the IMAP listeners' scan, a webhook finding its mailbox).
-- A statement with neither sees and changes nothing.

CREATE FUNCTION system_scope() RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT coalesce(current_setting('app.system', true), '') = 'on' $$;

DO $$
DECLARE t text;
BEGIN
  FOR t IN
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
  LOOP
    EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %I', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_tenant_id() OR system_scope()) '
                   'WITH CHECK (tenant_id = current_tenant_id() OR system_scope())', t);
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
  END LOOP;
END
$$;

DROP POLICY tenant_isolation ON tenants;
CREATE POLICY tenant_isolation ON tenants USING (id = current_tenant_id() OR system_scope())
  WITH CHECK (id = current_tenant_id() OR system_scope());
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;

-- Nothing for everyone else; the application role gets exactly its reads and writes.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM relaydesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO relaydesk_app;
-- The migrations' own bookkeeping: the application reads it (readiness), only migrations write it.
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM relaydesk_app;
-- Identity events are appended, never changed (0002).
REVOKE UPDATE, DELETE ON identity_events FROM relaydesk_app;

-- The job queue (pg-boss) keeps its own schema and maintains it as it runs (partitions per queue,
-- index rebuilds): it belongs to the application role, which the queue runs as. Its tables hold
-- job payloads, which are ids only (DESIGN §3.8), no tenant table.
DO $$
DECLARE r record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pgboss') THEN
    CREATE SCHEMA pgboss AUTHORIZATION relaydesk_app;
    RETURN;
  END IF;
  ALTER SCHEMA pgboss OWNER TO relaydesk_app;
  FOR r IN
    SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'pgboss' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  LOOP
    EXECUTE format('ALTER %s pgboss.%I OWNER TO relaydesk_app',
                   CASE r.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
                   r.relname);
  END LOOP;
  FOR r IN
    SELECT p.oid::regprocedure AS fn FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'pgboss'
  LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO relaydesk_app', r.fn);
  END LOOP;
  FOR r IN
    SELECT t.oid::regtype AS ty FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'pgboss' AND t.typtype IN ('e', 'c', 'd') AND t.typrelid = 0
  LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO relaydesk_app', r.ty);
  END LOOP;
END
$$;
