-- SLA thresholds that fired (each once per ticket, metric, cycle and percentage: the primary key
-- makes a second firing impossible, whatever crashes and restarts happen) and the wake-up list the
-- scheduler works from.
CREATE TABLE sla_threshold_fires (
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  ticket_id  uuid NOT NULL,
  metric     text NOT NULL,
  cycle      integer NOT NULL,
  percent    integer NOT NULL,
  due_at     timestamptz NOT NULL,
  fired_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, ticket_id, metric, cycle, percent),
  FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE
);

-- When the scheduler should look at a ticket's clocks next (a threshold comes due, or something changed).
CREATE TABLE sla_wakeups (
  tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  ticket_id     uuid NOT NULL,
  next_wake_at  timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, ticket_id),
  FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sla_wakeups_due_idx ON sla_wakeups (next_wake_at);

ALTER TABLE sla_threshold_fires ENABLE ROW LEVEL SECURITY;
ALTER TABLE sla_wakeups ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sla_threshold_fires USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());
CREATE POLICY tenant_isolation ON sla_wakeups USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());
