-- What the operator console needs beyond the API it had: full-text search over tickets, presence on
-- a ticket (collision detection), canned replies, and a change feed for live updates.

-- Full-text search over ticket subjects and message text (tickets module). The 'simple' text search
-- configuration lower-cases words and drops nothing: mail arrives in many languages, and a stemmer
-- or stop-word list chosen for one of them would lose words of the others (an English stemmer turns
-- German "Drucker" into nothing it should, and "die" is a stop word in English only). Expression
-- indexes, not stored columns: the tables are not rewritten. A message is indexed by its first
-- 100,000 characters, which keeps every tsvector far below PostgreSQL's 1 MB limit (a longer body
-- must never make an insert fail). Queries repeat these expressions exactly, or the index is unused.
CREATE INDEX tickets_subject_search_idx ON tickets USING gin (to_tsvector('simple'::regconfig, subject));
CREATE INDEX ticket_messages_search_idx ON ticket_messages
  USING gin (to_tsvector('simple'::regconfig, left(body_text, 100000)));

-- What a search string means: every word must occur (AND), the last one also as a prefix when it has
-- three characters or more (the word being typed). Words are split as to_tsvector splits them, so an
-- address or a ticket tag matches as a whole. Anything a user types is a valid search (never a tsquery
-- syntax error): the words go through plainto_tsquery, which takes any text.
CREATE FUNCTION ticket_search_query(search text) RETURNS tsquery
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
  SELECT CASE
           WHEN numnode(q.last) = 0 THEN q.head
           WHEN char_length(q.last_word) < 3 THEN q.head && q.last
           ELSE q.head && (q.last::text || ':*')::tsquery
         END
    FROM (SELECT plainto_tsquery('simple', w.head) AS head, plainto_tsquery('simple', w.last_word) AS last,
                 w.last_word
            FROM (SELECT coalesce(substring(search FROM '^(.*\s)\S+\s*$'), '') AS head,
                         coalesce(substring(search FROM '(\S+)\s*$'), '') AS last_word) w) q
$$;

-- The tickets of the current tenant (app.tenant_id) whose subject or any message matches a search.
-- Why a SECURITY DEFINER function: row-level security (forced on every tenant table, 0016) lets an
-- index serve only conditions whose functions are LEAKPROOF, and the text-search match (@@) is not,
-- so under the policy PostgreSQL would compute the tsvector of every message of the tenant instead.
-- The function runs as relaydesk_search, a role that may read these two tables only, owns nothing
-- else and bypasses the policy, and it applies the policy's rule itself: the current tenant's rows,
-- tenant first, nothing without a tenant scope. Creating such a role takes a superuser (the
-- embedded cluster's); a migration run by another owner leaves the function its own, which gives
-- the same answers without the indexes (the README says how to grant them).
-- ROWS 100: most searches match few tickets, and with the default estimate (1000) the planner would
-- rather walk all the tenant's tickets by date, probing each, than join the few matches. The
-- statement is planned at each call with the tenant and the words as they are (EXECUTE ... USING),
-- so the statistics of the text indexes choose the plan, not a generic guess. No parallel workers:
-- starting them costs more than this work on a small machine.
CREATE FUNCTION ticket_search_hits(search text) RETURNS TABLE (ticket_id uuid)
  LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER ROWS 100
  SET search_path = pg_catalog, public SET max_parallel_workers_per_gather = 0 AS $$
DECLARE
  tenant uuid := public.current_tenant_id();
  q tsquery := public.ticket_search_query(search);
BEGIN
  IF tenant IS NULL OR numnode(q) = 0 THEN
    RETURN;
  END IF;
  RETURN QUERY EXECUTE
    'SELECT m.ticket_id FROM public.ticket_messages m
      WHERE m.tenant_id = $1 AND to_tsvector(''simple''::regconfig, left(m.body_text, 100000)) @@ $2
     UNION
     SELECT t.id FROM public.tickets t
      WHERE t.tenant_id = $1 AND to_tsvector(''simple''::regconfig, t.subject) @@ $2'
    USING tenant, q;
END
$$;
REVOKE ALL ON FUNCTION ticket_search_hits(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ticket_search_hits(text) TO relaydesk_app;
DO $$
BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'relaydesk_search') THEN
    CREATE ROLE relaydesk_search NOLOGIN BYPASSRLS;
  END IF;
  GRANT USAGE ON SCHEMA public TO relaydesk_search;
  GRANT SELECT ON tickets, ticket_messages TO relaydesk_search;
  ALTER FUNCTION ticket_search_hits(text) OWNER TO relaydesk_search;
END
$$;

-- The inbox's mailbox filter: the tickets whose mail came in through a mailbox.
CREATE INDEX inbound_messages_ticket_idx ON inbound_messages (tenant_id, ticket_id, mailbox_id)
  WHERE ticket_id IS NOT NULL;

-- Who has a ticket open right now (tickets module): one row per person and ticket, kept alive by the
-- console's heartbeat and ignored once expired (expired rows are deleted by the next heartbeat on
-- the ticket). Not history: nothing else reads it.
CREATE TABLE ticket_presence (
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  ticket_id   uuid NOT NULL,
  person_id   uuid NOT NULL,
  state       text NOT NULL CHECK (state IN ('viewing', 'replying')),
  updated_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, ticket_id, person_id),
  FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, person_id) REFERENCES people (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ticket_presence_person_idx ON ticket_presence (tenant_id, person_id);

-- Canned replies (outbound module, beside the mail templates): Liquid text an agent inserts by its
-- shortcut. The shortcut is unique per tenant, case-insensitively.
CREATE TABLE canned_replies (
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id          uuid NOT NULL,
  shortcut    text NOT NULL,
  title       text NOT NULL,
  body        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX canned_replies_shortcut_key ON canned_replies (tenant_id, lower(shortcut));
CREATE INDEX canned_replies_list_idx ON canned_replies (tenant_id, created_at DESC, id DESC);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['ticket_presence', 'canned_replies'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_tenant_id() OR system_scope()) '
                   'WITH CHECK (tenant_id = current_tenant_id() OR system_scope())', t);
  END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE, DELETE ON ticket_presence TO relaydesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON canned_replies TO relaydesk_app;

-- The change feed of GET /stream (live module). Statement triggers announce at commit what changed,
-- on one channel, one NOTIFY per statement whatever its number of rows (a rolled-back change
-- announces nothing). A payload names at most 40 rows, about 4 KB, far below NOTIFY's 8000 bytes;
-- a statement that changed more names only the tenants concerned ("reload"), at most 100 a payload.
-- Payload: {"k": kind, "r": [[tenant, id, number-or-status, change], ...]} or {"k": kind, "t": [tenant, ...]}.
CREATE FUNCTION stream_announce(kind text, items jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE chunk jsonb;
BEGIN
  IF items IS NULL OR jsonb_array_length(items) = 0 THEN
    RETURN;
  END IF;
  IF jsonb_array_length(items) <= 40 THEN
    PERFORM pg_notify('relaydesk_stream', jsonb_build_object('k', kind, 'r', items)::text);
    RETURN;
  END IF;
  FOR chunk IN
    SELECT jsonb_agg(d.tenant) FROM (
      SELECT x.tenant, (row_number() OVER (ORDER BY x.tenant) - 1) / 100 AS page
        FROM (SELECT DISTINCT i->>0 AS tenant FROM jsonb_array_elements(items) i) x) d
     GROUP BY d.page
  LOOP
    PERFORM pg_notify('relaydesk_stream', jsonb_build_object('k', kind, 't', chunk)::text);
  END LOOP;
END
$$;

CREATE FUNCTION stream_tickets_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM stream_announce('ticket',
    (SELECT jsonb_agg(jsonb_build_array(n.tenant_id, n.id, n.number, 'created')) FROM new_rows n));
  RETURN NULL;
END
$$;
CREATE TRIGGER tickets_stream_insert AFTER INSERT ON tickets REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION stream_tickets_created();

CREATE FUNCTION stream_tickets_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM stream_announce('ticket',
    (SELECT jsonb_agg(jsonb_build_array(n.tenant_id, n.id, n.number,
              CASE WHEN n.deleted_at IS NOT NULL AND o.deleted_at IS NULL THEN 'deleted' ELSE 'updated' END))
       FROM new_rows n JOIN old_rows o ON o.tenant_id = n.tenant_id AND o.id = n.id));
  RETURN NULL;
END
$$;
CREATE TRIGGER tickets_stream_update AFTER UPDATE ON tickets REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION stream_tickets_updated();

CREATE FUNCTION stream_messages_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM stream_announce('ticket',
    (SELECT jsonb_agg(jsonb_build_array(x.tenant_id, x.ticket_id, t.number, 'message'))
       FROM (SELECT DISTINCT tenant_id, ticket_id FROM new_rows) x
       JOIN tickets t ON t.tenant_id = x.tenant_id AND t.id = x.ticket_id));
  RETURN NULL;
END
$$;
CREATE TRIGGER ticket_messages_stream_insert AFTER INSERT ON ticket_messages REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION stream_messages_created();

-- Presence: a heartbeat that changes nothing but the expiry announces nothing.
CREATE FUNCTION stream_presence_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM stream_announce('presence',
      (SELECT jsonb_agg(DISTINCT jsonb_build_array(n.tenant_id, n.ticket_id, NULL, 'presence')) FROM new_rows n));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM stream_announce('presence',
      (SELECT jsonb_agg(DISTINCT jsonb_build_array(o.tenant_id, o.ticket_id, NULL, 'presence')) FROM old_rows o));
  ELSE
    PERFORM stream_announce('presence',
      (SELECT jsonb_agg(DISTINCT jsonb_build_array(n.tenant_id, n.ticket_id, NULL, 'presence'))
         FROM new_rows n JOIN old_rows o
           ON o.tenant_id = n.tenant_id AND o.ticket_id = n.ticket_id AND o.person_id = n.person_id
        WHERE o.state <> n.state));
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER ticket_presence_stream_insert AFTER INSERT ON ticket_presence REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION stream_presence_changed();
CREATE TRIGGER ticket_presence_stream_update AFTER UPDATE ON ticket_presence
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION stream_presence_changed();
CREATE TRIGGER ticket_presence_stream_delete AFTER DELETE ON ticket_presence REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION stream_presence_changed();

-- Mailbox health: every change of status is a row of mailbox_health_events (inbound module).
CREATE FUNCTION stream_mailbox_health() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM stream_announce('mailbox',
    (SELECT jsonb_agg(jsonb_build_array(n.tenant_id, n.mailbox_id, n.to_status, n.from_status)) FROM new_rows n));
  RETURN NULL;
END
$$;
CREATE TRIGGER mailbox_health_events_stream_insert AFTER INSERT ON mailbox_health_events
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION stream_mailbox_health();
