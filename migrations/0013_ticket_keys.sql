-- Two more foreign keys that only cost: each is a query per inserted row (ticket creation ran seven,
-- half of its statement's time), and the first also a lock on the tenant's one row shared by every
-- concurrent writer (see 0011).
--
-- tickets → tenants: a ticket's tenant is already held by its requester key — (tenant_id,
-- requester_id) references people, whose tenant_id references tenants — so this key checked nothing
-- the other does not. Deleting a tenant removes its tickets explicitly (deleteTenant), before the
-- people they reference.
--
-- sla_wakeups → tickets: a wake-up is a scheduler queue entry, written in the same transaction as
-- the ticket change it follows; tickets are never removed but with their tenant (deleteTenant
-- removes wake-ups first), and the scheduler drops a wake-up whose ticket it cannot find.
ALTER TABLE tickets DROP CONSTRAINT IF EXISTS tickets_tenant_id_fkey;
ALTER TABLE sla_wakeups DROP CONSTRAINT IF EXISTS sla_wakeups_tenant_id_ticket_id_fkey;
