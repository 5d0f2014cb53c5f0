-- Drop the identity tables.
--
-- squawk-ignore-file ban-drop-table
-- A rollback drops only the tables its own migration created. It runs in
-- development and in the round-trip test, never in a deploy: deploys roll
-- forward.
SET lock_timeout = '5s';
SET statement_timeout = '10s';

DROP TABLE audit_events;
DROP TABLE password_reset_tokens;
DROP TABLE refresh_tokens;
DROP TABLE auth_sessions;
DROP TABLE signing_keys;
