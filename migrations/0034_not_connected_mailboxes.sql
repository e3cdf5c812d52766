-- Mailbox health of Graph and Gmail mailboxes never connected (inbound module). A mailbox made
-- without credentials carries no mail until someone connects it, and upkeep never claims it; it used
-- to start, and stay, 'healthy'. New ones start 'needs_reauth' with the reason below
-- (health.ts NOT_CONNECTED_REASON, which must stay the same text: connecting compares it to tell a
-- first connection from a mended one); this brings the ones made before in line.
UPDATE mailbox_health h
   SET status = 'needs_reauth',
       failure_reason = 'not connected yet: connect it (POST /api/v1/mailboxes/:id/connect, or Connect in the console) or give it credentials',
       updated_at = now()
  FROM mailboxes m
 WHERE m.tenant_id = h.tenant_id AND m.id = h.mailbox_id
   AND m.kind IN ('graph', 'gmail') AND m.credentials IS NULL
   AND h.status = 'healthy' AND h.subscription_id IS NULL;
