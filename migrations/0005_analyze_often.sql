-- Tables that grow in bursts get their planner statistics refreshed early: a plan chosen while a
-- table looked empty (a sort of every row instead of an index scan with LIMIT) made ticket lists and
-- inbound processing several times slower until autovacuum's default 10% threshold came round.
ALTER TABLE tickets SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 200);
ALTER TABLE ticket_messages SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 200);
ALTER TABLE people SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 200);
ALTER TABLE person_emails SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 200);
ALTER TABLE inbound_messages SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 200);
ALTER TABLE message_keys SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 200);
