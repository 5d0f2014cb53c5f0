-- Accounts, their users and their contacts.
-- depends:
--
-- squawk-ignore-file prefer-bigint-over-int
-- The integer columns here are small counters: users.failed_login_count
-- stops growing once the account locks, and each version column counts the
-- updates of one row, which will not reach 2^31.
SET lock_timeout = '5s';
SET statement_timeout = '10s';

CREATE EXTENSION IF NOT EXISTS pg_trgm;
-- btree_gin lets one GIN index hold the account id and the trigrams, so a
-- search reads only the rows of the caller's account.
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE TABLE accounts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id uuid NOT NULL REFERENCES accounts (id),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    email text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 320),
    role text NOT NULL CHECK (role IN ('viewer', 'member', 'admin', 'owner')),
    password_hash text NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1,
    failed_login_count integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    last_login_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    -- The owner cannot be deactivated or removed.
    CONSTRAINT users_owner_active CHECK (
        role <> 'owner' OR (is_active AND deleted_at IS NULL)
    )
);

-- Login is by email alone, so an address belongs to one live user.
CREATE UNIQUE INDEX users_email_key ON users (lower(email))
    WHERE deleted_at IS NULL;
-- At most one owner per account; the service keeps it at exactly one.
CREATE UNIQUE INDEX users_one_owner_key ON users (account_id)
    WHERE role = 'owner' AND deleted_at IS NULL;
CREATE INDEX users_account_list_idx ON users (account_id, created_at, id)
    WHERE deleted_at IS NULL;

CREATE TABLE contacts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id uuid NOT NULL REFERENCES accounts (id),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    email text CHECK (char_length(email) <= 320),
    phone text CHECK (char_length(phone) <= 50),
    company text CHECK (char_length(company) <= 200),
    notes text CHECK (char_length(notes) <= 10000),
    tags text[] NOT NULL DEFAULT '{}',
    created_by uuid REFERENCES users (id),
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    -- Lower-cased text that `q` searches with a trigram index.
    search_text text GENERATED ALWAYS AS (
        lower(name || ' ' || coalesce(email, '') || ' ' || coalesce(company, ''))
    ) STORED
);

CREATE UNIQUE INDEX contacts_account_email_key ON contacts (account_id, lower(email))
    WHERE deleted_at IS NULL AND email IS NOT NULL;
CREATE INDEX contacts_account_list_idx ON contacts (account_id, created_at, id)
    WHERE deleted_at IS NULL;
CREATE INDEX contacts_search_trgm_idx ON contacts USING gin (account_id, search_text gin_trgm_ops)
    WHERE deleted_at IS NULL;
CREATE INDEX contacts_created_by_idx ON contacts (created_by);
