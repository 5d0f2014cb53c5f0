-- Drop the stored idempotent responses.
--
-- squawk-ignore-file ban-drop-table
-- A rollback drops only the table its own migration created. It runs in
-- development and in the round-trip test, never in a deploy.
SET lock_timeout = '5s';
SET statement_timeout = '10s';

DROP TABLE idempotency_keys;
