"""Admin commands run against the test database."""

from __future__ import annotations

import threading

import psycopg
import pytest

from bastion import migrate
from bastion.migrate import database_name
from tests.conftest import PASSWORD, unique_email


@pytest.fixture()
def runner(app):
    return app.test_cli_runner()


def _invoke(runner, *args, stdin=None):
    result = runner.invoke(args=list(args), input=stdin)
    return result


def test_accounts_create_makes_account_with_working_owner(runner, client, db_conn):
    email = unique_email("cli")

    result = _invoke(
        runner,
        "accounts",
        "create",
        "--name",
        "Ops Inc",
        "--owner-email",
        email,
        "--owner-name",
        "Op",
        stdin=PASSWORD + "\n",
    )

    assert result.exit_code == 0, result.output
    account_id = result.output.split()[1]
    response = client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.get_json()["token_type"] == "Bearer"
    actors = db_conn.execute(
        "SELECT DISTINCT actor_id FROM audit_events"
        " WHERE account_id = %s AND action <> 'login.succeeded'",
        (account_id,),
    ).fetchall()
    assert actors == [("cli",)]


def test_users_create_with_owner_role_hands_over(runner, client, factory):
    owner = factory.owner()
    email = unique_email("heir")

    result = _invoke(
        runner,
        "users",
        "create",
        "--account",
        owner.account_id,
        "--email",
        email,
        "--name",
        "Heir",
        "--role",
        "owner",
        stdin=PASSWORD + "\n",
    )

    assert result.exit_code == 0, result.output
    me = client.get("/api/v1/me", headers=owner.headers).get_json()
    assert me["user"]["role"] == "admin"


@pytest.mark.parametrize(
    ("account", "message"),
    [
        ("00000000-0000-0000-0000-000000000000", "account was not found"),
        ("not-a-uuid", "not a valid UUID"),
    ],
)
def test_users_create_with_bad_account_fails_cleanly(runner, account, message):
    result = _invoke(
        runner,
        "users",
        "create",
        "--account",
        account,
        "--email",
        unique_email(),
        "--name",
        "N",
        stdin=PASSWORD + "\n",
    )

    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_accounts_create_with_blank_name_fails_cleanly(runner):
    result = _invoke(
        runner,
        "accounts",
        "create",
        "--name",
        " ",
        "--owner-email",
        unique_email(),
        "--owner-name",
        "Op",
        stdin=PASSWORD + "\n",
    )

    assert result.exit_code != 0
    assert "account_name: Must not be blank." in result.output


def test_users_create_rejects_short_password_from_stdin(runner, factory):
    owner = factory.owner()

    result = _invoke(
        runner,
        "users",
        "create",
        "--account",
        owner.account_id,
        "--email",
        unique_email(),
        "--name",
        "N",
        stdin="short\n",
    )

    assert result.exit_code != 0
    assert "between 12 and 1024" in result.output


def test_password_is_not_accepted_as_an_option(runner, factory):
    owner = factory.owner()

    result = _invoke(
        runner, "users", "set-password", "--email", owner.email, "--password", "x" * 20
    )

    assert result.exit_code != 0


def test_set_password_changes_login_and_ends_sessions(runner, client, factory):
    owner = factory.owner()
    new_password = "a brand new passphrase"

    result = _invoke(
        runner,
        "users",
        "set-password",
        "--email",
        owner.email,
        stdin=new_password + "\n",
    )

    assert result.exit_code == 0, result.output
    assert client.get("/api/v1/me", headers=owner.headers).status_code == 401
    old = client.post(
        "/api/v1/auth/login", json={"email": owner.email, "password": PASSWORD}
    )
    new = client.post(
        "/api/v1/auth/login", json={"email": owner.email, "password": new_password}
    )
    assert old.status_code == 401
    assert new.status_code == 200


def test_deactivate_ends_sessions_but_not_for_owner(runner, client, factory):
    owner = factory.owner()
    member = factory.user(owner, "member")

    refused = _invoke(runner, "users", "deactivate", "--email", owner.email)
    done = _invoke(runner, "users", "deactivate", "--email", member.email)

    assert refused.exit_code != 0
    assert done.exit_code == 0, done.output
    assert client.get("/api/v1/me", headers=member.headers).status_code == 401
    assert client.get("/api/v1/me", headers=owner.headers).status_code == 200


def test_keys_rotate_list_and_retire(runner):
    rotated = _invoke(runner, "keys", "rotate")
    kid = rotated.output.split()[-1]

    listed = _invoke(runner, "keys", "list")
    retired = _invoke(runner, "keys", "retire", kid)
    again = _invoke(runner, "keys", "retire", kid)

    assert kid in listed.output
    assert retired.exit_code == 0
    assert again.exit_code != 0
    assert f"{kid}  ES256  retired" in _invoke(runner, "keys", "list").output


def test_tokens_purge_expired_deletes_only_expired_sessions(runner, factory, db_conn):
    owner = factory.owner()
    db_conn.execute(
        "UPDATE auth_sessions SET expires_at = now() - interval '1 day'"
        " WHERE user_id = %s",
        (owner.id,),
    )

    result = _invoke(runner, "tokens", "purge-expired")

    assert result.exit_code == 0, result.output
    left = db_conn.execute(
        "SELECT count(*) FROM auth_sessions WHERE user_id = %s", (owner.id,)
    ).fetchone()
    assert left == (0,)
    assert db_conn.execute("SELECT count(*) FROM auth_sessions").fetchone()[0] > 0


def test_db_status_lists_applied_migrations(runner):
    result = _invoke(runner, "db", "status")

    assert result.exit_code == 0, result.output
    assert "applied  0001.accounts-users-contacts" in result.output
    assert "pending" not in result.output


def test_db_status_exits_nonzero_while_migrations_are_pending(
    make_app, scratch_database
):
    url = scratch_database("status")
    runner = make_app(MIGRATION_DATABASE_URL=url).test_cli_runner()

    pending = _invoke(runner, "db", "status")
    migrate.upgrade(url)
    current = _invoke(runner, "db", "status")

    ids = migrate.migration_ids()
    assert pending.exit_code == 1
    assert f"{len(ids)} migration(s) pending" in pending.output
    for migration_id in ids:
        assert f"pending  {migration_id}\n" in pending.output
        assert f"applied  {migration_id}\n" in current.output
    assert current.exit_code == 0, current.output


def test_db_upgrade_reports_retries_and_lock_failure(
    make_app, scratch_database, tmp_path, monkeypatch
):
    url = scratch_database("cli_locks")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE widgets (id int)")
    (tmp_path / "0001.add-size.sql").write_text(
        "SET lock_timeout = '100ms';\nALTER TABLE widgets ADD COLUMN size int;\n"
    )
    (tmp_path / "0001.add-size.rollback.sql").write_text(
        "SET lock_timeout = '100ms';\nALTER TABLE widgets DROP COLUMN size;\n"
    )
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
    runner = make_app(MIGRATION_DATABASE_URL=url).test_cli_runner()

    with psycopg.connect(url) as holder:
        holder_pid = holder.info.backend_pid
        holder.execute("SELECT count(*) FROM widgets")
        failed = _invoke(
            runner, "db", "upgrade", "--attempts", "2", "--retry-delay", "0.01"
        )
        holder.rollback()
    succeeded = _invoke(runner, "db", "upgrade")

    assert failed.exit_code == 1
    assert (
        "migration 0001.add-size: canceling statement due to lock timeout "
        "(attempt 1 of 2); retrying in 0.01 s"
    ) in failed.output
    assert "in all 2 attempt(s)" in failed.output
    assert f"pid {holder_pid}" in failed.output
    assert succeeded.exit_code == 0, succeeded.output
    assert "applied 0001.add-size\n" in succeeded.output


def test_set_password_applies_the_password_policy(runner, client, factory):
    owner = factory.owner()

    result = _invoke(
        runner, "users", "set-password", "--email", owner.email, stdin="password1234\n"
    )

    assert result.exit_code != 0
    assert "too common or too easy to guess" in result.output
    assert client.get("/api/v1/me", headers=owner.headers).status_code == 200


def test_tokens_purge_expired_deletes_reset_tokens_and_counters(
    runner, factory, db_conn
):
    owner = factory.owner()
    db_conn.execute(
        "INSERT INTO password_reset_tokens (token_hash, user_id, expires_at)"
        " VALUES (%s, %s, now() - interval '1 s'), (%s, %s, now() + interval '1 h')",
        (
            b"expired-" + owner.id.encode(),
            owner.id,
            b"live-" + owner.id.encode(),
            owner.id,
        ),
    )
    # Other tests may have counted failures for these documentation
    # addresses, so the rows are set, not added.
    db_conn.execute(
        "INSERT INTO login_failures (client_network, failure_count, last_failure_at)"
        " VALUES ('192.0.2.1/32', 3, now() - interval '2 hours'),"
        " ('192.0.2.2/32', 3, now())"
        " ON CONFLICT (client_network) DO UPDATE"
        " SET failure_count = excluded.failure_count,"
        " last_failure_at = excluded.last_failure_at"
    )

    result = _invoke(runner, "tokens", "purge-expired")

    assert result.exit_code == 0, result.output
    tokens = db_conn.execute(
        "SELECT token_hash FROM password_reset_tokens WHERE user_id = %s", (owner.id,)
    ).fetchall()
    assert tokens == [(b"live-" + owner.id.encode(),)]
    networks = db_conn.execute(
        "SELECT host(client_network) FROM login_failures"
        " WHERE client_network IN ('192.0.2.1/32', '192.0.2.2/32')"
    ).fetchall()
    assert networks == [("192.0.2.2",)]


def test_db_create_roles_is_idempotent(
    runner, admin_database_url, db_conn, monkeypatch
):
    monkeypatch.setenv("ADMIN_DATABASE_URL", admin_database_url)

    result = _invoke(runner, "db", "create-roles")

    assert result.exit_code == 0, result.output
    assert "bastion_definer" in result.output
    owners = db_conn.execute(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
    ).fetchall()
    assert owners == [(database_name(admin_database_url) + "_owner",)]


def test_db_create_roles_requires_an_admin_url(runner, monkeypatch):
    monkeypatch.delenv("ADMIN_DATABASE_URL", raising=False)
    monkeypatch.delenv("ADMIN_DATABASE_URL_FILE", raising=False)

    result = _invoke(runner, "db", "create-roles")

    assert result.exit_code != 0
    assert "ADMIN_DATABASE_URL" in result.output


def test_db_create_roles_reads_admin_url_from_file(
    runner, admin_database_url, monkeypatch, tmp_path
):
    url_file = tmp_path / "admin-url"
    url_file.write_text(admin_database_url + "\n")
    monkeypatch.delenv("ADMIN_DATABASE_URL", raising=False)
    monkeypatch.setenv("ADMIN_DATABASE_URL_FILE", str(url_file))

    result = _invoke(runner, "db", "create-roles")

    assert result.exit_code == 0, result.output


def test_db_create_roles_takes_no_url_argument(runner, admin_database_url):
    result = _invoke(runner, "db", "create-roles", "--admin-url", admin_database_url)

    assert result.exit_code != 0


def test_tokens_purge_expired_deletes_expired_idempotency_keys(
    runner, client, team, db_conn
):
    member = team["member"]
    for key in ("old", "new"):
        client.post(
            "/api/v1/contacts",
            json={"name": key},
            headers={**member.headers, "Idempotency-Key": key},
        )
    db_conn.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 minute'"
        " WHERE account_id = %s AND idempotency_key = 'old'",
        (member.account_id,),
    )

    result = _invoke(runner, "tokens", "purge-expired")

    assert result.exit_code == 0, result.output
    assert "idempotency key(s)" in result.output
    keys = db_conn.execute(
        "SELECT idempotency_key FROM idempotency_keys WHERE account_id = %s",
        (member.account_id,),
    ).fetchall()
    assert keys == [("new",)]


def test_admin_command_app_skips_hash_warm_up(database_url):
    from bastion import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(database_url), open_pool=False)
    for thread in threading.enumerate():
        if thread.name == "hash-warm-up":
            thread.join(10)

    hasher = app.extensions["bastion"].sessions.hasher
    assert hasher._dummy_hash is None
    app.extensions["bastion"].db.close()


def test_keys_retire_refuses_the_last_usable_key(runner, app):
    keys = app.extensions["bastion"].keys
    newest, *older = keys.load_active_keys()
    for key in older:
        keys.retire_key(key.kid)

    refused = _invoke(runner, "keys", "retire", newest.kid)

    assert refused.exit_code != 0
    assert "last usable signing key" in refused.output
    assert [key.kid for key in keys.load_active_keys()] == [newest.kid]


def test_keys_rotate_if_missing_ignores_undecryptable_keys(make_app):
    other_kek = make_app(JWT_KEY_ENCRYPTION_KEY="k" * 40)

    result = other_kek.test_cli_runner().invoke(args=["keys", "rotate", "--if-missing"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("created signing key")


def test_empty_stdin_password_is_named(runner, factory):
    owner = factory.owner()

    result = _invoke(runner, "users", "set-password", "--email", owner.email, stdin="")

    assert result.exit_code != 0
    assert "no password on standard input" in result.output
