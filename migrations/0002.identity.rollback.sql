-- Drop the identity tables.
SET lock_timeout = '5s';

DROP TABLE audit_events;
DROP TABLE password_reset_tokens;
DROP TABLE refresh_tokens;
DROP TABLE auth_sessions;
DROP TABLE signing_keys;
