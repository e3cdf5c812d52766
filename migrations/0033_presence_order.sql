-- Presence in the order a page meant it (tickets module). A page's requests can reach the server out
-- of order: the 'viewing' a page sent a moment before it closed could arrive after its leave and
-- stand until it expired. A page may now name itself (`page`) and number its presence requests
-- (`seq`). Its leave then keeps a marker (state 'left', expiring like a heartbeat) instead of
-- deleting the row, and a request of the same page numbered before the row's is ignored. Requests
-- without them behave as before.
ALTER TABLE ticket_presence ADD COLUMN page text, ADD COLUMN seq bigint;
ALTER TABLE ticket_presence DROP CONSTRAINT ticket_presence_state_check;
ALTER TABLE ticket_presence ADD CONSTRAINT ticket_presence_state_check
  CHECK (state IN ('viewing', 'replying', 'left'));
