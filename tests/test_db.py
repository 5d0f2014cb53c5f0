"""Transactions commit, roll back and always return their connection."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from bastion.db import Database, TxContext
from bastion.errors import ServiceUnavailableError
from tests.conftest import make_settings


@pytest.fixture()
def db(database_url):
    database = Database(
        make_settings(database_url, DB_POOL_MAX_SIZE="2", DB_POOL_TIMEOUT="0.5")
    )
    database.open()
    yield database
    database.close()


def _assert_pool_idle(db):
    stats = db.pool.get_stats()
    assert stats.get("requests_waiting", 0) == 0
    assert stats["pool_available"] == stats["pool_size"]


def new_account_context():
    return TxContext(account_id=str(uuid.uuid4()))


def test_write_commits_on_clean_exit(db, db_conn):
    ctx = new_account_context()
    with db.write(ctx) as cur:
        cur.execute(
            "INSERT INTO accounts (id, name) VALUES (%s, 'committed') RETURNING id",
            (ctx.account_id,),
        )
        account_id = cur.fetchone()["id"]

    assert db_conn.execute(
        "SELECT name FROM accounts WHERE id = %s", (account_id,)
    ).fetchone() == ("committed",)
    _assert_pool_idle(db)


def test_write_rolls_back_on_exception(db, db_conn):
    marker = "rolled-back-marker"
    ctx = new_account_context()
    with pytest.raises(ZeroDivisionError), db.write(ctx) as cur:
        cur.execute(
            "INSERT INTO accounts (id, name) VALUES (%s, %s)", (ctx.account_id, marker)
        )
        1 / 0  # noqa: B018

    assert db_conn.execute(
        "SELECT count(*) FROM accounts WHERE name = %s", (marker,)
    ).fetchone() == (0,)
    _assert_pool_idle(db)


def test_failed_statement_returns_connection_clean(db, db_conn):
    with pytest.raises(Exception), db.read() as cur:  # noqa: B017
        cur.execute("SELECT no_such_column FROM accounts")

    with db.read() as cur:
        cur.execute("SELECT 1 AS one")
        assert cur.fetchone() == {"one": 1}
    _assert_pool_idle(db)
    idle_in_tx = db_conn.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = 'bastion' AND state LIKE 'idle in transaction%%'"
        " AND datname = current_database()"
    ).fetchone()
    assert idle_in_tx == (0,)


def test_read_block_is_read_only(db):
    with pytest.raises(Exception), db.read() as cur:  # noqa: B017
        cur.execute("INSERT INTO accounts (name) VALUES ('never')")
    _assert_pool_idle(db)


def test_context_is_set_locally_per_transaction(db):
    ctx = TxContext(account_id="11111111-1111-1111-1111-111111111111", user_id="u-1")
    with db.read(ctx) as cur:
        cur.execute("SELECT current_setting('bastion.account_id') AS account_id")
        assert cur.fetchone()["account_id"] == ctx.account_id

    with db.read() as cur:
        cur.execute("SELECT current_setting('bastion.account_id', true) AS account_id")
        assert cur.fetchone()["account_id"] in (None, "")


def test_exhausted_pool_raises_service_unavailable_quickly(db):
    release = threading.Event()
    held = threading.Barrier(3)

    def hold():
        with db.read():
            held.wait()
            release.wait(5)

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for thread in threads:
        thread.start()
    held.wait()
    try:
        with pytest.raises(ServiceUnavailableError) as raised, db.read():
            pass
        assert raised.value.headers["Retry-After"]
    finally:
        release.set()
        for thread in threads:
            thread.join()
    _assert_pool_idle(db)


def test_error_paths_leave_app_pool_idle(client, app, factory, team):
    contact = factory.contact(team["member"], email="pool@example.com")
    url = f"/api/v1/contacts/{contact['id']}"
    headers = team["member"].headers

    client.post(
        "/api/v1/contacts",
        json={"name": "d", "email": "pool@example.com"},
        headers=headers,
    )
    client.patch(url, json={"name": "x"}, headers={**headers, "If-Match": '"9"'})
    client.delete(url, headers=team["viewer"].headers)
    client.get("/api/v1/contacts/00000000-0000-0000-0000-000000000000", headers=headers)
    client.get("/api/v1/contacts?cursor=bogus", headers=headers)
    client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "x"}
    )

    _assert_pool_idle(app.extensions["bastion"].db)


def test_broken_idle_connection_is_replaced_on_checkout(db, db_conn):
    with db.read() as cur:
        cur.execute("SELECT pg_backend_pid() AS pid")
        pids = {cur.fetchone()["pid"]}
    with db.read() as cur:
        cur.execute("SELECT pg_backend_pid() AS pid")
        pids.add(cur.fetchone()["pid"])
    for pid in pids:
        db_conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # Longer than the skip window, so the next checkout checks.
    time.sleep(1.2)

    with db.read() as cur:
        cur.execute("SELECT pg_backend_pid() AS pid")
        assert cur.fetchone()["pid"] not in pids
