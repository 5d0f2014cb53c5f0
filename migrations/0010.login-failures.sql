-- Failed logins per client network, for the login back-off.
-- depends: 0002.identity
SET lock_timeout = '5s';
SET statement_timeout = '10s';

CREATE TABLE login_failures (
    -- An IPv4 address as a /32, or the /64 network of an IPv6 address.
    client_network cidr PRIMARY KEY,
    failure_count bigint NOT NULL,
    last_failure_at timestamptz NOT NULL,
    locked_until timestamptz
);

-- `flask tokens purge-expired` deletes rows by age.
CREATE INDEX login_failures_last_failure_idx ON login_failures (last_failure_at);
