-- Responses stored under a client's Idempotency-Key, so that a retried POST
-- returns the first response instead of writing again.
-- depends: 0021.validate-tenant-columns
--
-- squawk-ignore-file prefer-bigint-over-int
-- response_status holds an HTTP status code, three digits.
SET lock_timeout = '5s';
SET statement_timeout = '10s';

CREATE TABLE idempotency_keys (
    account_id uuid NOT NULL DEFAULT bastion_account_id() REFERENCES accounts (id),
    idempotency_key text NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    -- SHA-256 of the user, method, path and canonical JSON body: a retry
    -- must match it, or it gets 422.
    request_hash bytea NOT NULL,
    response_status integer NOT NULL DEFAULT 0,
    response_body jsonb,
    response_headers jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, idempotency_key)
);

CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
