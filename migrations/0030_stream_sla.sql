-- What the SLA engine records on a ticket (a clock started, paused or resumed, a threshold reached,
-- a breach, an escalation) reaches GET /stream as a change of the ticket ("sla"), so an open inbox
-- or ticket shows an SLA breach as it happens, without reloading. Same feed and payload as the
-- ticket triggers of 0029: one NOTIFY per statement, naming each ticket once.
CREATE FUNCTION stream_sla_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM stream_announce('ticket',
    (SELECT jsonb_agg(jsonb_build_array(x.tenant_id, x.ticket_id, t.number, 'sla'))
       FROM (SELECT DISTINCT tenant_id, ticket_id FROM new_rows) x
       JOIN tickets t ON t.tenant_id = x.tenant_id AND t.id = x.ticket_id));
  RETURN NULL;
END
$$;
CREATE TRIGGER sla_events_stream_insert AFTER INSERT ON sla_events REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION stream_sla_events();
