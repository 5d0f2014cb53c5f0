"""Each audited action writes its event in the transaction of its change.

PostgreSQL stamps every row version with the id of the transaction that
wrote it (``xmin``), so an event and a row with the same ``xmin`` were
committed together.
"""

from __future__ import annotations

import re

from bastion.services.login_throttle import client_network
from tests.conftest import PASSWORD, login, read_mail, unique_email

AUTH = "/api/v1/auth"
NEW_PASSWORD = "velvet orbit lantern quarry"


def _event_xmin(db_conn, action, target_id):
    rows = db_conn.execute(
        "SELECT xmin::text FROM audit_events"
        " WHERE action = %s AND target_id = %s ORDER BY created_at",
        (action, target_id),
    ).fetchall()
    assert rows, f"no {action} event for {target_id}"
    return rows[-1][0]


def _row_xmin(db_conn, table, key, value):
    row = db_conn.execute(
        f"SELECT xmin::text FROM {table} WHERE {key} = %s",
        (value,),
    ).fetchone()
    assert row is not None
    return row[0]


def _session_id(db_conn, user_id):
    return str(
        db_conn.execute(
            "SELECT id FROM auth_sessions WHERE user_id = %s"
            " ORDER BY created_at DESC LIMIT 1",
            (user_id,),
        ).fetchone()[0]
    )


def _assert_committed_with(db_conn, action, target_id, table, key, value):
    assert _event_xmin(db_conn, action, target_id) == _row_xmin(
        db_conn, table, key, value
    )


def test_account_created_with_account(client, factory, db_conn):
    owner = factory.owner()

    _assert_committed_with(
        db_conn, "account.created", owner.account_id, "accounts", "id", owner.account_id
    )


def test_login_succeeded_with_session(client, factory, db_conn):
    owner = factory.owner()

    login(client, owner.email)

    session_id = _session_id(db_conn, owner.id)
    _assert_committed_with(
        db_conn, "login.succeeded", owner.id, "auth_sessions", "id", session_id
    )


def test_login_failed_with_failure_counter(client, factory, db_conn):
    owner = factory.owner()

    client.post(f"{AUTH}/login", json={"email": owner.email, "password": "x" * 12})

    _assert_committed_with(db_conn, "login.failed", owner.id, "users", "id", owner.id)


def test_unknown_email_failure_with_client_counter(client, db_conn):
    address = client.environ_base["REMOTE_ADDR"]

    client.post(f"{AUTH}/login", json={"email": unique_email(), "password": "x" * 12})

    event = db_conn.execute(
        "SELECT xmin::text FROM audit_events WHERE action = 'login.failed' AND ip = %s",
        (address,),
    ).fetchone()[0]
    counter = _row_xmin(
        db_conn, "login_failures", "client_network", client_network(address)
    )
    assert event == counter


def test_logout_with_session_revocation(client, factory, db_conn):
    owner = factory.owner()
    session_id = _session_id(db_conn, owner.id)

    client.post(f"{AUTH}/logout", headers=owner.headers)

    _assert_committed_with(
        db_conn, "logout", session_id, "auth_sessions", "id", session_id
    )


def test_refresh_reuse_with_family_revocation(client, factory, db_conn):
    owner = factory.owner()
    session_id = _session_id(db_conn, owner.id)
    client.post(f"{AUTH}/refresh", json={"refresh_token": owner.refresh_token})

    client.post(f"{AUTH}/refresh", json={"refresh_token": owner.refresh_token})

    _assert_committed_with(
        db_conn, "refresh_token.reused", session_id, "auth_sessions", "id", session_id
    )


def test_password_change_with_new_hash(client, factory, db_conn):
    owner = factory.owner()

    response = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=owner.headers,
    )

    assert response.status_code == 204
    _assert_committed_with(
        db_conn, "password.changed", owner.id, "users", "id", owner.id
    )


def test_failed_password_change_with_failure_counter(client, factory, db_conn):
    owner = factory.owner()

    client.post(
        "/api/v1/me/password",
        json={"current_password": "x" * 12, "new_password": NEW_PASSWORD},
        headers=owner.headers,
    )

    _assert_committed_with(
        db_conn, "password.change_failed", owner.id, "users", "id", owner.id
    )


def test_reset_request_and_reset_with_their_rows(client, factory, db_conn):
    owner = factory.owner()

    client.post(f"{AUTH}/password-reset", json={"email": owner.email})

    _assert_committed_with(
        db_conn,
        "password_reset.requested",
        owner.id,
        "password_reset_tokens",
        "user_id",
        owner.id,
    )
    token = re.search(
        r"reset token: (\S+)", read_mail(owner.email)[-1].get_content()
    ).group(1)

    client.post(
        f"{AUTH}/password-reset/confirm",
        json={"token": token, "password": NEW_PASSWORD},
    )

    _assert_committed_with(db_conn, "password.reset", owner.id, "users", "id", owner.id)
    _assert_committed_with(
        db_conn,
        "password.reset",
        owner.id,
        "password_reset_tokens",
        "user_id",
        owner.id,
    )


def test_user_created_role_changed_deactivated_deleted(client, factory, db_conn):
    owner = factory.owner()
    member_id = client.post(
        "/api/v1/users",
        json={
            "name": "M",
            "email": unique_email(),
            "role": "member",
            "password": PASSWORD,
        },
        headers=owner.headers,
    ).get_json()["id"]
    _assert_committed_with(db_conn, "user.created", member_id, "users", "id", member_id)

    client.patch(
        f"/api/v1/users/{member_id}", json={"role": "admin"}, headers=owner.headers
    )
    _assert_committed_with(
        db_conn, "user.role_changed", member_id, "users", "id", member_id
    )

    client.patch(
        f"/api/v1/users/{member_id}", json={"is_active": False}, headers=owner.headers
    )
    _assert_committed_with(
        db_conn, "user.deactivated", member_id, "users", "id", member_id
    )

    client.delete(f"/api/v1/users/{member_id}", headers=owner.headers)
    _assert_committed_with(db_conn, "user.deleted", member_id, "users", "id", member_id)


def test_contact_deleted_with_contact(client, factory, db_conn):
    owner = factory.owner()
    contact = factory.contact(owner)

    client.delete(f"/api/v1/contacts/{contact['id']}", headers=owner.headers)

    _assert_committed_with(
        db_conn, "contact.deleted", contact["id"], "contacts", "id", contact["id"]
    )


def test_rolled_back_change_leaves_no_event(client, factory, db_conn):
    owner = factory.owner()
    existing_email = factory.user(owner, "member").email

    def created_events():
        return db_conn.execute(
            "SELECT count(*) FROM audit_events"
            " WHERE action = 'user.created' AND account_id = %s",
            (owner.account_id,),
        ).fetchone()[0]

    before = created_events()
    response = client.post(
        "/api/v1/users",
        json={
            "name": "Dup",
            "email": existing_email,
            "role": "viewer",
            "password": PASSWORD,
        },
        headers=owner.headers,
    )

    assert response.status_code == 409
    assert created_events() == before
