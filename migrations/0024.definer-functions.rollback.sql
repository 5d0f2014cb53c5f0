-- Drop the functions that cross accounts and the definer's grants.
SET lock_timeout = '5s';
SET statement_timeout = '10s';

DROP FUNCTION search_contacts(text, timestamptz, uuid, integer);
DROP FUNCTION purge_expired_rows();
DROP FUNCTION caller_for_session(uuid, uuid);
DROP FUNCTION account_id_for_reset_token(bytea);
DROP FUNCTION account_id_for_refresh_token(bytea);
DROP FUNCTION account_id_for_email(text);

REVOKE DELETE ON auth_sessions, password_reset_tokens, idempotency_keys
    FROM bastion_definer;
REVOKE SELECT ON users, auth_sessions, refresh_tokens, password_reset_tokens,
    contacts, idempotency_keys FROM bastion_definer;
