"""Failed logins back off per client network as well as per account."""

from __future__ import annotations

import pytest

from bastion.services.login_throttle import (
    CLIENT_LOCK_BASE_SECONDS,
    CLIENT_LOCK_THRESHOLD,
    client_network,
)
from tests.conftest import PASSWORD, random_client_address, unique_email

LOGIN = "/api/v1/auth/login"


def _login(client, email, password, address):
    return client.post(
        LOGIN,
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def _fail_from(client, address, count):
    for _ in range(count):
        response = _login(client, unique_email(), PASSWORD, address)
        assert response.status_code == 401


def _lock_seconds(db_conn, address):
    row = db_conn.execute(
        "SELECT extract(epoch FROM locked_until - last_failure_at)"
        " FROM login_failures WHERE client_network = %s",
        (client_network(address),),
    ).fetchone()
    return None if row is None or row[0] is None else round(row[0])


def test_locked_client_gets_the_wrong_password_401(client, factory):
    owner = factory.owner()
    address = random_client_address()
    wrong = _login(client, owner.email, "not the password at all", address)
    _fail_from(client, address, CLIENT_LOCK_THRESHOLD - 1)

    locked = _login(client, owner.email, PASSWORD, address)

    assert locked.status_code == 401
    locked_error = locked.get_json()["error"]
    wrong_error = wrong.get_json()["error"]
    locked_error.pop("request_id")
    wrong_error.pop("request_id")
    assert locked_error == wrong_error
    assert _login(
        client, owner.email, PASSWORD, random_client_address()
    ).status_code == (200)


def test_other_clients_still_log_in(client, factory):
    owner = factory.owner()
    address = random_client_address()
    _fail_from(client, address, CLIENT_LOCK_THRESHOLD)

    response = _login(client, owner.email, PASSWORD, random_client_address())

    assert response.status_code == 200


def test_client_below_threshold_is_not_locked(client, factory):
    owner = factory.owner()
    address = random_client_address()
    _fail_from(client, address, CLIENT_LOCK_THRESHOLD - 1)

    response = _login(client, owner.email, PASSWORD, address)

    assert response.status_code == 200


def test_client_lock_doubles_with_each_further_failure(client, db_conn):
    address = random_client_address()
    _fail_from(client, address, CLIENT_LOCK_THRESHOLD - 1)
    assert _lock_seconds(db_conn, address) is None

    _fail_from(client, address, 1)
    first = _lock_seconds(db_conn, address)
    _fail_from(client, address, 1)
    second = _lock_seconds(db_conn, address)

    assert first == CLIENT_LOCK_BASE_SECONDS
    assert second == 2 * CLIENT_LOCK_BASE_SECONDS


def test_account_lock_doubles_with_each_further_failure(client, factory, db_conn):
    owner = factory.owner()

    def lock_seconds():
        return db_conn.execute(
            "SELECT round(extract(epoch FROM locked_until - now()))"
            " FROM users WHERE id = %s",
            (owner.id,),
        ).fetchone()[0]

    for _ in range(5):
        _login(client, owner.email, "not the password at all", "198.51.100.1")
    first = lock_seconds()
    _login(client, owner.email, "not the password at all", "198.51.100.2")
    second = lock_seconds()

    assert 28 <= first <= 30
    assert 58 <= second <= 60


def test_ipv6_slash_64_shares_a_counter(client, factory):
    owner = factory.owner()
    prefix = f"2001:db8:{random_client_address().split('.')[-1]}:1"
    _fail_from(client, f"{prefix}::1", CLIENT_LOCK_THRESHOLD)

    response = _login(client, owner.email, PASSWORD, f"{prefix}:ffff::2")

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.9", "203.0.113.9/32"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9/32"),
        ("not an address", None),
        (None, None),
    ],
)
def test_client_network(address, network):
    assert client_network(address) == network


def test_unknown_email_failures_create_no_account_linked_rows(client, db_conn):
    email = unique_email("nobody")
    address = random_client_address()
    users_before = db_conn.execute("SELECT count(*) FROM users").fetchone()

    response = _login(client, email, PASSWORD, address)

    assert response.status_code == 401
    assert db_conn.execute("SELECT count(*) FROM users").fetchone() == users_before
    events = db_conn.execute(
        "SELECT account_id, actor_id, target_type, target_id, details"
        " FROM audit_events WHERE action = 'login.failed' AND ip = %s",
        (address,),
    ).fetchall()
    assert events == [(None, None, None, None, {"reason": "unknown_email"})]
    mentions = db_conn.execute(
        "SELECT count(*) FROM audit_events WHERE details::text ILIKE %s",
        (f"%{email}%",),
    ).fetchone()
    assert mentions == (0,)
