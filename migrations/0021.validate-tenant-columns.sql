-- Validate the account columns' foreign keys and NOT NULL checks. VALIDATE
-- takes a SHARE UPDATE EXCLUSIVE lock, so reads and writes go on meanwhile.
-- depends: 0020.tenant-columns
SET lock_timeout = '5s';
SET statement_timeout = '10s';

ALTER TABLE auth_sessions VALIDATE CONSTRAINT auth_sessions_account_id_fkey;
ALTER TABLE auth_sessions VALIDATE CONSTRAINT auth_sessions_account_id_not_null;
ALTER TABLE refresh_tokens VALIDATE CONSTRAINT refresh_tokens_account_id_fkey;
ALTER TABLE refresh_tokens VALIDATE CONSTRAINT refresh_tokens_account_id_not_null;
ALTER TABLE password_reset_tokens
    VALIDATE CONSTRAINT password_reset_tokens_account_id_fkey;
ALTER TABLE password_reset_tokens
    VALIDATE CONSTRAINT password_reset_tokens_account_id_not_null;
