-- What kind of failure a mailbox is in (auth, rate_limited, transient, permanent): a label an
-- operator can count by (the failure reason itself is the provider's words, one per mailbox).
ALTER TABLE mailbox_health ADD COLUMN failure_kind text
  CHECK (failure_kind IN ('auth', 'rate_limited', 'transient', 'permanent'));
