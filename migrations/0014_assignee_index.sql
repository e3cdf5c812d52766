-- Tickets are mostly created unassigned, and every unassigned ticket of a tenant went into the same
-- (tenant, NULL) end of this index: one more index insertion per created ticket, on a page that all
-- concurrent creations of the tenant take turns to lock. The index only ever serves
-- `assignee_id = $x` (the list filter, person merges), which implies NOT NULL, so it holds just
-- the assigned tickets.
DROP INDEX IF EXISTS tickets_assignee_idx;
CREATE INDEX tickets_assignee_idx ON tickets (tenant_id, assignee_id, created_at DESC, id DESC)
  WHERE assignee_id IS NOT NULL;
