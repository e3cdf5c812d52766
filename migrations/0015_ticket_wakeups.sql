-- Wake-ups belong to the tickets module: every ticket change writes one in its own transaction, and
-- the SLA scheduler claims and reschedules them through the tickets module's operations
-- (src/modules/tickets/wakeups.ts). The name says so now.
ALTER TABLE sla_wakeups RENAME TO ticket_wakeups;
ALTER INDEX sla_wakeups_pkey RENAME TO ticket_wakeups_pkey;
ALTER INDEX sla_wakeups_due_idx RENAME TO ticket_wakeups_due_idx;

-- Ticket numbers come from this row, updated by the statement that creates the ticket. Numbers are
-- unique and increasing; a creation that rolls back rolls its increment back with it.
COMMENT ON TABLE ticket_counters IS 'Last ticket number per tenant; updated in the creating transaction';
