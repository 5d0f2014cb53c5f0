-- Drop the account columns of the session and token tables.
--
-- squawk-ignore-file ban-drop-column
-- A rollback drops only the columns its own migration added. It runs in
-- development and in the round-trip test, never in a deploy: deploys roll
-- forward.
SET lock_timeout = '5s';
SET statement_timeout = '10s';

DROP TRIGGER password_reset_tokens_fill_account_id ON password_reset_tokens;
DROP TRIGGER refresh_tokens_fill_account_id ON refresh_tokens;
DROP TRIGGER auth_sessions_fill_account_id ON auth_sessions;
DROP FUNCTION fill_account_id_from_session();
DROP FUNCTION fill_account_id_from_user();

ALTER TABLE password_reset_tokens DROP COLUMN account_id;
ALTER TABLE refresh_tokens DROP COLUMN account_id;
ALTER TABLE auth_sessions DROP COLUMN account_id;
DROP FUNCTION bastion_account_id();
