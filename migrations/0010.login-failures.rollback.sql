-- Drop the per-client login failure counters.
--
-- squawk-ignore-file ban-drop-table
-- A rollback drops only the table its own migration created. It runs in
-- development and in the round-trip test, never in a deploy: deploys roll
-- forward.
SET lock_timeout = '5s';
SET statement_timeout = '10s';

DROP TABLE login_failures;
