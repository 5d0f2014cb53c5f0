-- Row-level security on every tenant table, keyed on the account that the
-- transaction sets. FORCE makes the policies bind the table owner too, so
-- only superusers and roles with BYPASSRLS see across accounts.
-- depends: 0022.idempotency-keys
SET lock_timeout = '5s';
SET statement_timeout = '10s';

ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY accounts_tenant ON accounts
    USING (id = bastion_account_id())
    WITH CHECK (id = bastion_account_id());

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_tenant ON users
    USING (account_id = bastion_account_id())
    WITH CHECK (account_id = bastion_account_id());

ALTER TABLE contacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE contacts FORCE ROW LEVEL SECURITY;
CREATE POLICY contacts_tenant ON contacts
    USING (account_id = bastion_account_id())
    WITH CHECK (account_id = bastion_account_id());

ALTER TABLE auth_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY auth_sessions_tenant ON auth_sessions
    USING (account_id = bastion_account_id())
    WITH CHECK (account_id = bastion_account_id());

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY refresh_tokens_tenant ON refresh_tokens
    USING (account_id = bastion_account_id())
    WITH CHECK (account_id = bastion_account_id());

ALTER TABLE password_reset_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE password_reset_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY password_reset_tokens_tenant ON password_reset_tokens
    USING (account_id = bastion_account_id())
    WITH CHECK (account_id = bastion_account_id());

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_tenant ON idempotency_keys
    USING (account_id = bastion_account_id())
    WITH CHECK (account_id = bastion_account_id());

-- The audit trail is append-only: there is no UPDATE or DELETE policy, so
-- those affect no rows. Events without an account (a failed login for an
-- unknown email) may be written but are never read back through the API.
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_events_read ON audit_events
    FOR SELECT
    USING (account_id = bastion_account_id());
CREATE POLICY audit_events_append ON audit_events
    FOR INSERT
    WITH CHECK (account_id IS NULL OR account_id = bastion_account_id());
