-- The narrow paths that cross accounts before the caller's account is
-- known: each is a SECURITY DEFINER function that returns only what its
-- caller needs. They are owned by bastion_definer, a NOLOGIN role with
-- BYPASSRLS that `flask db create-roles` makes; the application role can
-- only execute them.
-- depends: 0023.row-level-security
SET lock_timeout = '5s';
SET statement_timeout = '10s';

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bastion_definer') THEN
        RAISE EXCEPTION 'role bastion_definer is missing; run "flask db create-roles" first';
    END IF;
END
$$;

-- Login, password reset requests and admin commands by email.
CREATE FUNCTION account_id_for_email(p_email text) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT account_id
        FROM public.users
        WHERE lower(email) = lower(p_email)
          AND deleted_at IS NULL
    $$;

-- Token refresh, including the reuse check, which needs used tokens too.
CREATE FUNCTION account_id_for_refresh_token(p_token_hash bytea) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT account_id
        FROM public.refresh_tokens
        WHERE token_hash = p_token_hash
    $$;

-- Password reset confirmation by token.
CREATE FUNCTION account_id_for_reset_token(p_token_hash bytea) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT account_id
        FROM public.password_reset_tokens
        WHERE token_hash = p_token_hash
    $$;

-- The per-request caller lookup: the user's account and role when the user
-- is active and the session is live, else no row.
CREATE FUNCTION caller_for_session(p_user_id uuid, p_session_id uuid)
    RETURNS TABLE (account_id uuid, role text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = ''
    AS $$
        SELECT u.account_id, u.role
        FROM public.users AS u
        JOIN public.auth_sessions AS s ON s.user_id = u.id
        WHERE u.id = p_user_id
          AND s.id = p_session_id
          AND s.revoked_at IS NULL
          AND s.expires_at > now()
          AND u.is_active
          AND u.deleted_at IS NULL
    $$;

-- Maintenance across accounts: expired sessions (their refresh tokens
-- cascade), reset tokens and stored idempotent responses.
CREATE FUNCTION purge_expired_rows()
    RETURNS TABLE (sessions bigint, reset_tokens bigint, idempotency_keys bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = ''
    AS $$
BEGIN
    DELETE FROM public.auth_sessions WHERE expires_at < now();
    GET DIAGNOSTICS sessions = ROW_COUNT;
    DELETE FROM public.password_reset_tokens WHERE expires_at < now();
    GET DIAGNOSTICS reset_tokens = ROW_COUNT;
    DELETE FROM public.idempotency_keys WHERE expires_at < now();
    GET DIAGNOSTICS idempotency_keys = ROW_COUNT;
    RETURN NEXT;
END
$$;

-- Substring search of the current account's contacts. Row-level security
-- cannot serve it from the trigram index, because LIKE is not leakproof
-- and so may not run before the policy's filter; this function filters on
-- the same account setting itself. Custom plans let the planner see the
-- pattern, which the trigram estimate needs.
CREATE FUNCTION search_contacts(
    p_pattern text,
    p_after_created_at timestamptz,
    p_after_id uuid,
    p_limit integer
) RETURNS SETOF public.contacts
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = ''
    SET plan_cache_mode = 'force_custom_plan'
    AS $$
BEGIN
    RETURN QUERY
        SELECT c.*
        FROM public.contacts AS c
        WHERE c.account_id = public.bastion_account_id()
          AND c.deleted_at IS NULL
          AND c.search_text LIKE p_pattern
          AND (c.created_at, c.id) > (p_after_created_at, p_after_id)
        ORDER BY c.created_at, c.id
        LIMIT p_limit;
END
$$;

REVOKE EXECUTE ON FUNCTION
    account_id_for_email(text),
    account_id_for_refresh_token(bytea),
    account_id_for_reset_token(bytea),
    caller_for_session(uuid, uuid),
    purge_expired_rows(),
    search_contacts(text, timestamptz, uuid, integer)
FROM PUBLIC;

GRANT SELECT ON users, auth_sessions, refresh_tokens, password_reset_tokens,
    contacts, idempotency_keys TO bastion_definer;
GRANT DELETE ON auth_sessions, password_reset_tokens, idempotency_keys
    TO bastion_definer;

-- A new owner needs CREATE on the schema; it keeps it only for the hand-over.
GRANT CREATE ON SCHEMA public TO bastion_definer;
ALTER FUNCTION account_id_for_email(text) OWNER TO bastion_definer;
ALTER FUNCTION account_id_for_refresh_token(bytea) OWNER TO bastion_definer;
ALTER FUNCTION account_id_for_reset_token(bytea) OWNER TO bastion_definer;
ALTER FUNCTION caller_for_session(uuid, uuid) OWNER TO bastion_definer;
ALTER FUNCTION purge_expired_rows() OWNER TO bastion_definer;
ALTER FUNCTION search_contacts(text, timestamptz, uuid, integer)
    OWNER TO bastion_definer;
REVOKE CREATE ON SCHEMA public FROM bastion_definer;
