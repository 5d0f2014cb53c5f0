"""The database roles and row-level security, tested below the application.

These tests connect as the application role directly, so they show what a
faulty query in the application could and could not do.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pg_errors

from bastion.roles import DEFINER_ROLE
from tests.conftest import role_urls

TENANT_TABLES = (
    "accounts",
    "users",
    "contacts",
    "audit_events",
    "auth_sessions",
    "refresh_tokens",
    "password_reset_tokens",
    "idempotency_keys",
)


@pytest.fixture()
def app_conn(database_url):
    with psycopg.connect(database_url) as conn:
        yield conn


@pytest.fixture()
def two_accounts(factory):
    """Two accounts, each with an owner session and a contact."""
    mine, theirs = factory.owner(), factory.owner()
    factory.contact(mine, name="Mine")
    factory.contact(theirs, name="Theirs")
    return mine, theirs


def act_as(conn, account_id):
    conn.execute("SELECT set_config('bastion.account_id', %s, true)", (account_id,))


def test_unscoped_statements_in_other_account_affect_nothing(
    app_conn, two_accounts, factory, db_conn
):
    mine, theirs = two_accounts
    empty = factory.owner()

    with app_conn.transaction():
        act_as(app_conn, empty.account_id)
        selected = app_conn.execute("SELECT id FROM contacts").fetchall()
        updated = app_conn.execute("UPDATE contacts SET notes = 'x'").rowcount
        deleted = app_conn.execute("DELETE FROM contacts").rowcount

    assert selected == []
    assert updated == 0
    assert deleted == 0
    survivors = db_conn.execute(
        "SELECT name, notes FROM contacts WHERE account_id IN (%s, %s) ORDER BY name",
        (mine.account_id, theirs.account_id),
    ).fetchall()
    assert survivors == [("Mine", None), ("Theirs", None)]


def test_unscoped_update_changes_only_own_rows(app_conn, two_accounts, db_conn):
    mine, theirs = two_accounts

    with app_conn.transaction():
        act_as(app_conn, mine.account_id)
        updated = app_conn.execute("UPDATE contacts SET notes = 'x'").rowcount

    assert updated == 1
    notes = db_conn.execute(
        "SELECT notes FROM contacts WHERE account_id = %s", (theirs.account_id,)
    ).fetchall()
    assert notes == [(None,)]


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_other_accounts_rows_are_invisible_and_untouchable(
    app_conn, two_accounts, table
):
    mine, theirs = two_accounts
    column = "id" if table == "accounts" else "account_id"

    with app_conn.transaction():
        act_as(app_conn, mine.account_id)
        where = f"WHERE {column} = %s"
        selected = app_conn.execute(
            f"SELECT count(*) FROM {table} {where}", (theirs.account_id,)
        ).fetchone()[0]
        updated = app_conn.execute(
            f"UPDATE {table} SET {column} = {column} {where}", (theirs.account_id,)
        ).rowcount
        deleted = app_conn.execute(
            f"DELETE FROM {table} {where}", (theirs.account_id,)
        ).rowcount
        raise psycopg.Rollback()

    assert selected == 0
    assert updated == 0
    assert deleted == 0


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_tables_show_nothing_without_an_account(app_conn, two_accounts, table):
    count = app_conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    assert count == 0


def test_insert_into_other_account_is_rejected(app_conn, two_accounts):
    mine, theirs = two_accounts

    with pytest.raises(pg_errors.InsufficientPrivilege), app_conn.transaction():
        act_as(app_conn, mine.account_id)
        app_conn.execute(
            "INSERT INTO contacts (account_id, name) VALUES (%s, 'planted')",
            (theirs.account_id,),
        )


def test_audit_trail_is_append_only(app_conn, two_accounts):
    mine, _ = two_accounts

    with app_conn.transaction():
        act_as(app_conn, mine.account_id)
        visible = app_conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
        updated = app_conn.execute("UPDATE audit_events SET action = 'x'").rowcount
        deleted = app_conn.execute("DELETE FROM audit_events").rowcount
        raise psycopg.Rollback()

    assert visible > 0
    assert updated == 0
    assert deleted == 0


def test_force_binds_the_table_owner(admin_database_url, two_accounts):
    _, owner_url = role_urls(admin_database_url)

    with psycopg.connect(owner_url) as conn:
        count = conn.execute("SELECT count(*) FROM contacts").fetchone()[0]

    assert count == 0


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE planted (id int)",
        "CREATE TEMP TABLE planted (id int)",
        "TRUNCATE contacts",
        "ALTER TABLE contacts DISABLE ROW LEVEL SECURITY",
        "DROP POLICY contacts_tenant ON contacts",
        "CREATE SCHEMA planted",
        "CREATE FUNCTION planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        f"SET ROLE {DEFINER_ROLE}",
    ],
)
def test_application_role_cannot_change_schema(app_conn, statement):
    with pytest.raises(pg_errors.InsufficientPrivilege):
        app_conn.execute(statement)


def test_application_role_attributes(app_conn):
    role = app_conn.execute(
        "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole"
        " FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    owned = app_conn.execute(
        "SELECT count(*) FROM pg_class WHERE relowner = current_user::regrole"
    ).fetchone()[0]
    memberships = app_conn.execute(
        "SELECT count(*) FROM pg_auth_members WHERE member = current_user::regrole"
    ).fetchone()[0]

    assert role == (False, False, False, False)
    assert owned == 0
    assert memberships == 0


def test_every_table_with_account_has_forced_policy(db_conn):
    unprotected = db_conn.execute(
        """
        SELECT c.relname
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
          AND c.relkind = 'r'
          AND (c.relname = 'accounts' OR EXISTS (
              SELECT FROM pg_attribute AS a
              WHERE a.attrelid = c.oid AND a.attname = 'account_id'
          ))
          AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
        """
    ).fetchall()
    tables = db_conn.execute(
        "SELECT relname FROM pg_class WHERE relrowsecurity AND relforcerowsecurity"
    ).fetchall()

    assert unprotected == []
    assert sorted(name for (name,) in tables) == sorted(TENANT_TABLES)


def test_definer_lookups_stay_narrow(app_conn, two_accounts):
    mine, theirs = two_accounts

    account = app_conn.execute(
        "SELECT account_id_for_email(%s)", (theirs.email.upper(),)
    ).fetchone()[0]
    with app_conn.transaction():
        act_as(app_conn, mine.account_id)
        found = app_conn.execute(
            "SELECT name FROM search_contacts('%%theirs%%', '-infinity',"
            " '00000000-0000-0000-0000-000000000000', 10)"
        ).fetchall()
        raise psycopg.Rollback()

    assert str(account) == theirs.account_id
    assert found == []


def test_definer_functions_are_not_public(db_conn):
    public = db_conn.execute(
        """
        SELECT p.proname
        FROM pg_proc AS p
        WHERE p.prosecdef
          AND p.pronamespace = 'public'::regnamespace
          AND has_function_privilege('public', p.oid, 'EXECUTE')
        """
    ).fetchall()
    owners = db_conn.execute(
        """
        SELECT DISTINCT pg_get_userbyid(proowner)
        FROM pg_proc
        WHERE prosecdef AND pronamespace = 'public'::regnamespace
        """
    ).fetchall()

    assert public == []
    assert owners == [(DEFINER_ROLE,)]


def test_session_inserted_without_account_takes_the_users(two_accounts, db_conn):
    mine, _ = two_accounts
    # Code from before the account column inserts sessions without it.
    session_id = db_conn.execute(
        "INSERT INTO auth_sessions (user_id, expires_at)"
        " VALUES (%s, now() + interval '1 hour') RETURNING id",
        (mine.id,),
    ).fetchone()[0]
    db_conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at)"
        " VALUES ('\\x00'::bytea, %s, now() + interval '1 hour')",
        (session_id,),
    )

    accounts = db_conn.execute(
        "SELECT s.account_id::text, t.account_id::text"
        " FROM auth_sessions AS s JOIN refresh_tokens AS t ON t.session_id = s.id"
        " WHERE s.id = %s",
        (session_id,),
    ).fetchone()
    assert accounts == (mine.account_id, mine.account_id)
