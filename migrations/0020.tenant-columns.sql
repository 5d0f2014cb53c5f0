-- The tenant setting, and an account column on the session and token tables
-- so that row-level security can key every tenant table on it.
-- depends: 0002.identity
SET lock_timeout = '5s';
SET statement_timeout = '10s';

-- The account the current transaction acts for, which the application sets
-- with set_config('bastion.account_id', ..., true); NULL when unset.
CREATE FUNCTION bastion_account_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('bastion.account_id', true), '')::uuid $$;

-- New rows take the transaction's account by default, so the existing
-- INSERTs need no change. Rows that exist now start as NULL and are filled
-- below. The foreign keys and NOT NULL checks are added NOT VALID and
-- validated by the next migration, which takes weaker locks.
ALTER TABLE auth_sessions ADD COLUMN account_id uuid;
ALTER TABLE auth_sessions ALTER COLUMN account_id SET DEFAULT bastion_account_id();
ALTER TABLE refresh_tokens ADD COLUMN account_id uuid;
ALTER TABLE refresh_tokens ALTER COLUMN account_id SET DEFAULT bastion_account_id();
ALTER TABLE password_reset_tokens ADD COLUMN account_id uuid;
ALTER TABLE password_reset_tokens
    ALTER COLUMN account_id SET DEFAULT bastion_account_id();

-- NOTE: one UPDATE per table, not batches: these tables hold only sessions
-- and tokens that have not expired yet, which `flask tokens purge-expired`
-- keeps small.
UPDATE auth_sessions AS s
SET account_id = u.account_id
FROM users AS u
WHERE u.id = s.user_id;
UPDATE refresh_tokens AS t
SET account_id = s.account_id
FROM auth_sessions AS s
WHERE s.id = t.session_id;
UPDATE password_reset_tokens AS t
SET account_id = u.account_id
FROM users AS u
WHERE u.id = t.user_id;

ALTER TABLE auth_sessions
    ADD CONSTRAINT auth_sessions_account_id_fkey
        FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID,
    ADD CONSTRAINT auth_sessions_account_id_not_null
        CHECK (account_id IS NOT NULL) NOT VALID;
ALTER TABLE refresh_tokens
    ADD CONSTRAINT refresh_tokens_account_id_fkey
        FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID,
    ADD CONSTRAINT refresh_tokens_account_id_not_null
        CHECK (account_id IS NOT NULL) NOT VALID;
ALTER TABLE password_reset_tokens
    ADD CONSTRAINT password_reset_tokens_account_id_fkey
        FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID,
    ADD CONSTRAINT password_reset_tokens_account_id_not_null
        CHECK (account_id IS NOT NULL) NOT VALID;
