-- Each ticket's SLA summary as of the scheduler's last look (within a second of any change or
-- threshold), for list filters and sorting: breached, at_risk, paused or active, and the next due time.
CREATE TABLE sla_ticket_state (
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  ticket_id   uuid NOT NULL,
  state       text NOT NULL CHECK (state IN ('active', 'at_risk', 'breached', 'paused', 'fulfilled')),
  next_due_at timestamptz,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, ticket_id),
  FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sla_ticket_state_idx ON sla_ticket_state (tenant_id, state, next_due_at);
ALTER TABLE sla_ticket_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sla_ticket_state USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());
