-- SLA clocks as stored state: one row per ticket, metric and cycle, written by the scheduler each
-- time it evaluates the ticket. The clocks are still computed from the ticket's timeline (status
-- history and public messages); this row is what the last evaluation found — target, business
-- seconds used as of computed_at, paused-since, due and next wake-up — and the configuration it was
-- computed under, so the next evaluation can tell a recompute (priority, policy or calendar changed)
-- from a clock that simply ran, and a clock that disappeared (cancelled).
CREATE TABLE sla_clocks (
  tenant_id            uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  ticket_id            uuid NOT NULL,
  metric               text NOT NULL CHECK (metric IN ('first_response', 'next_response', 'resolution')),
  cycle                integer NOT NULL,
  status               text NOT NULL CHECK (status IN ('active', 'paused', 'breached', 'fulfilled', 'cancelled')),
  -- What it was computed under. No foreign keys: deleting a policy must not be blocked by its clocks.
  policy_id            uuid,
  policy_updated_at    timestamptz,
  calendar_id          uuid,
  calendar_updated_at  timestamptz,
  priority             text NOT NULL,
  started_at           timestamptz NOT NULL,
  target_seconds       integer NOT NULL,
  -- Business seconds used as of computed_at.
  used_seconds         integer NOT NULL,
  -- When the clock stopped running (a pausing status); NULL while it runs or once fulfilled.
  paused_since         timestamptz,
  -- When the target is (or was) reached; NULL while paused before reaching it.
  due_at               timestamptz,
  -- The next threshold or escalation level still to come; NULL when none (paused, fulfilled).
  next_wake_at         timestamptz,
  breached_at          timestamptz,
  fulfilled_at         timestamptz,
  cancelled_at         timestamptz,
  computed_at          timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, ticket_id, metric, cycle),
  FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE
);
-- Configuration changes wake the tickets whose clocks still run (all of a tenant's, or a calendar's).
CREATE INDEX sla_clocks_open_idx ON sla_clocks (tenant_id, calendar_id)
  WHERE status NOT IN ('fulfilled', 'cancelled');

ALTER TABLE sla_clocks ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sla_clocks USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());

-- A clock's lifecycle events (started, paused, resumed, fulfilled) are derived from the timeline with
-- the instant they happened; this key makes each one impossible to record twice, however often the
-- ticket is evaluated and whatever crashes happen in between.
CREATE UNIQUE INDEX sla_events_once_idx ON sla_events (tenant_id, ticket_id, metric, cycle, type, at)
  WHERE type IN ('started', 'paused', 'resumed', 'fulfilled');
