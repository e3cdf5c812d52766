-- Where the browser goes after connecting a mailbox by OAuth: a path of the console (the console
-- starts the connection and wants its person back on its mailboxes screen, not on a bare page).
-- NULL keeps the callback's own HTML page, for API clients that open the URL themselves. Only
-- paths under /console are ever stored (the route checks it; the constraint keeps it true).
ALTER TABLE oauth_states ADD COLUMN return_to text
  CHECK (return_to IS NULL OR (return_to ~ '^/console(/|$)' AND return_to !~ '//' AND length(return_to) <= 512));
