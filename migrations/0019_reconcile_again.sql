-- A reconciliation asked for while one runs (a subscription recreated, a `missed` notification)
-- must not be lost: the running one may have read the folder before the mail it is asked about
-- arrived. It is noted here and run again as soon as the running one ends.
ALTER TABLE mailbox_health ADD COLUMN reconcile_again boolean NOT NULL DEFAULT false;
