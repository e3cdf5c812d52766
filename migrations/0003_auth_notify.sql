-- API processes cache token lookups; these triggers tell every process to drop its cache the moment
-- a token is revoked, moved or deleted, or its person is suspended, merged or deleted (the
-- notification is delivered on commit). Column lists keep last_used_at writes from firing them.
CREATE FUNCTION notify_auth_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('relaydesk_auth', TG_TABLE_NAME);
  RETURN NULL;
END
$$;

CREATE TRIGGER api_tokens_auth_change AFTER UPDATE OF revoked_at, person_id, role, token_hash OR DELETE
  ON api_tokens FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_change();
CREATE TRIGGER people_auth_change AFTER UPDATE OF status OR DELETE
  ON people FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_change();
CREATE TRIGGER tenants_auth_change AFTER DELETE
  ON tenants FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_change();
