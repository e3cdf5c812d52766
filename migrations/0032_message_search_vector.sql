-- Search keeps each message's words (tickets module). A search for a word that is in most of the
-- mail cannot be served by the text index: the index hands back every match (tens of thousands of
-- messages on a large tenant) before the 50 newest are picked. The list instead tests its newest
-- tickets one by one (listTickets), which needs a message's words at hand, not parsed again from its
-- text for each search. A generated column holds them (the same expression the index had, so every
-- search finds what it found), and the index now indexes the column, so each message is parsed once.
ALTER TABLE ticket_messages ADD COLUMN search_vector tsvector
  GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, left(body_text, 100000))) STORED;
DROP INDEX ticket_messages_search_idx;
CREATE INDEX ticket_messages_search_idx ON ticket_messages USING gin (search_vector);

-- The index's function, reading the column. Replacing it takes its owner (relaydesk_search where a
-- superuser made it so) or a member of that role: the README's grants make the schema owner one.
CREATE OR REPLACE FUNCTION ticket_search_hits(search text) RETURNS TABLE (ticket_id uuid)
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
      WHERE m.tenant_id = $1 AND m.search_vector @@ $2
     UNION
     SELECT t.id FROM public.tickets t
      WHERE t.tenant_id = $1 AND to_tsvector(''simple''::regconfig, t.subject) @@ $2'
    USING tenant, q;
END
$$;
