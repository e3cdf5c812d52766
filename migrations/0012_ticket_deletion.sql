-- Deleting a ticket marks it (deleted_at) instead of removing its rows: it disappears from the API
-- (404, left out of lists), its SLA clocks are cancelled with `cancelled` events that outlive the
-- deletion, and mail that replies to it opens a new ticket. The rows stay for audit and for the
-- message keys that keep a redelivered message from being processed twice.
ALTER TABLE tickets ADD COLUMN deleted_at timestamptz;
ALTER TABLE tickets ADD COLUMN deleted_by uuid;
