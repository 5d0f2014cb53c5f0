-- Drop the per-client login failure counters.
SET lock_timeout = '5s';

DROP TABLE login_failures;
