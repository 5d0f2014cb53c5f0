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

-- Code that does not set the account (the previous release, during a
-- rolling deploy) still inserts sessions and tokens: these triggers fill the
-- column from the parent row whenever the default left it NULL.
CREATE FUNCTION fill_account_id_from_user() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.account_id IS NULL THEN
        SELECT u.account_id INTO NEW.account_id
        FROM users AS u
        WHERE u.id = NEW.user_id;
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION fill_account_id_from_session() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.account_id IS NULL THEN
        SELECT s.account_id INTO NEW.account_id
        FROM auth_sessions AS s
        WHERE s.id = NEW.session_id;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER auth_sessions_fill_account_id
    BEFORE INSERT ON auth_sessions
    FOR EACH ROW EXECUTE FUNCTION fill_account_id_from_user();
CREATE TRIGGER refresh_tokens_fill_account_id
    BEFORE INSERT ON refresh_tokens
    FOR EACH ROW EXECUTE FUNCTION fill_account_id_from_session();
CREATE TRIGGER password_reset_tokens_fill_account_id
    BEFORE INSERT ON password_reset_tokens
    FOR EACH ROW EXECUTE FUNCTION fill_account_id_from_user();

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
