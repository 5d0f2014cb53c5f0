"""Statement and lock timeouts of the application role become 503s."""

from __future__ import annotations

import threading

import psycopg
import pytest

from bastion.db import Database, TxContext
from bastion.errors import ServiceUnavailableError
from tests.conftest import TEST_TIMEOUTS, make_settings


@pytest.fixture()
def single_connection_db(database_url):
    database = Database(make_settings(database_url, DB_POOL_MAX_SIZE="1"))
    database.open()
    yield database
    database.close()


def test_role_carries_configured_timeouts(single_connection_db):
    with single_connection_db.read() as cur:
        cur.execute(
            "SELECT name, setting::int AS ms FROM pg_settings WHERE name IN"
            " ('statement_timeout', 'lock_timeout',"
            " 'idle_in_transaction_session_timeout')"
        )
        settings = {row["name"]: row["ms"] for row in cur.fetchall()}

    assert settings == {
        "statement_timeout": int(TEST_TIMEOUTS["DB_STATEMENT_TIMEOUT_MS"]),
        "lock_timeout": int(TEST_TIMEOUTS["DB_LOCK_TIMEOUT_MS"]),
        "idle_in_transaction_session_timeout": int(
            TEST_TIMEOUTS["DB_IDLE_IN_TRANSACTION_TIMEOUT_MS"]
        ),
    }


def test_slow_statement_is_unavailable_and_connection_is_reused(
    single_connection_db, db_conn
):
    db = single_connection_db
    with db.read() as cur:
        cur.execute("SELECT pg_backend_pid() AS pid")
        pid = cur.fetchone()["pid"]

    with pytest.raises(ServiceUnavailableError) as raised, db.read() as cur:
        cur.execute("SELECT pg_sleep(5)")

    with db.read() as cur:
        cur.execute("SELECT pg_backend_pid() AS pid")
        after = cur.fetchone()["pid"]
    assert raised.value.headers["Retry-After"]
    assert after == pid
    stats = db.pool.get_stats()
    assert stats["pool_available"] == stats["pool_size"] == 1
    state = db_conn.execute(
        "SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    assert state == ("idle",)


def test_patch_lock_wait_is_503(client, factory, team, admin_database_url, app):
    member = team["member"]
    contact = factory.contact(member)
    url = f"/api/v1/contacts/{contact['id']}"
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        with psycopg.connect(admin_database_url) as conn:
            conn.execute(
                "SELECT 1 FROM contacts WHERE id = %s FOR UPDATE", (contact["id"],)
            )
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(5)
        blocked = client.patch(url, json={"name": "Blocked"}, headers=member.headers)
    finally:
        release.set()
        holder.join()
    after = client.patch(url, json={"name": "After"}, headers=member.headers)

    assert blocked.status_code == 503
    assert blocked.headers["Retry-After"]
    error = blocked.get_json()["error"]
    assert error["code"] == "service_unavailable"
    assert set(error) == {"code", "message", "request_id"}
    assert "lock" not in error["message"].lower()
    assert after.status_code == 200
    stats = app.extensions["bastion"].db.pool.get_stats()
    assert stats["pool_available"] == stats["pool_size"]


def test_context_is_not_shared_between_blocks(single_connection_db):
    ctx = TxContext(account_id="11111111-1111-1111-1111-111111111111")
    with pytest.raises(ServiceUnavailableError), single_connection_db.read(ctx) as cur:
        cur.execute("SELECT pg_sleep(5)")

    with single_connection_db.read() as cur:
        cur.execute("SELECT bastion_account_id() AS account_id")
        assert cur.fetchone()["account_id"] is None
