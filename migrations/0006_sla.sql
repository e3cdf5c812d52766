-- SLA configuration: business calendars and policies (the clocks follow).

CREATE TABLE calendars (
  tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id          uuid NOT NULL,
  name        text NOT NULL,
  spec        jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX calendars_list_idx ON calendars (tenant_id, created_at DESC, id DESC);

CREATE TABLE sla_policies (
  tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id              uuid NOT NULL,
  name            text NOT NULL,
  -- The first matching policy by position wins.
  position        integer NOT NULL,
  conditions      jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- NULL: calendar time (every instant counts).
  calendar_id     uuid,
  targets         jsonb NOT NULL,
  pause_statuses  jsonb NOT NULL,
  thresholds      integer[] NOT NULL,
  escalations     jsonb NOT NULL DEFAULT '[]'::jsonb,
  reopen          text NOT NULL DEFAULT 'continue' CHECK (reopen IN ('continue', 'restart')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, calendar_id) REFERENCES calendars (tenant_id, id)
);
CREATE INDEX sla_policies_order_idx ON sla_policies (tenant_id, position, created_at, id);

ALTER TABLE calendars ENABLE ROW LEVEL SECURITY;
ALTER TABLE sla_policies ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON calendars USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());
CREATE POLICY tenant_isolation ON sla_policies USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());
