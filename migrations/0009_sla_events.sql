-- What the SLA engine did, per ticket (threshold, breached, escalation), and the notifications its
-- escalations asked for, kept until the notification capability delivers them.
CREATE TABLE sla_events (
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id          uuid NOT NULL,
  ticket_id   uuid NOT NULL,
  metric      text NOT NULL,
  cycle       integer NOT NULL,
  type        text NOT NULL CHECK (type IN ('started', 'paused', 'resumed', 'threshold', 'breached', 'escalation',
                'fulfilled', 'recomputed', 'cancelled')),
  at          timestamptz NOT NULL,
  data        jsonb NOT NULL DEFAULT '{}'::jsonb,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sla_events_ticket_idx ON sla_events (tenant_id, ticket_id, at, id);

CREATE TABLE pending_notifications (
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id          uuid NOT NULL,
  ticket_id   uuid NOT NULL,
  recipient   jsonb NOT NULL,
  reason      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE sla_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE pending_notifications ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sla_events USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());
CREATE POLICY tenant_isolation ON pending_notifications USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());
