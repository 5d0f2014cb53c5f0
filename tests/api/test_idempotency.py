"""Idempotency-Key on POST /contacts, POST /users and POST /contacts/import."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.conftest import PASSWORD, unique_email


def keyed(member, key):
    return {**member.headers, "Idempotency-Key": key}


def count_contacts(db_conn, account_id, email):
    return db_conn.execute(
        "SELECT count(*) FROM contacts WHERE account_id = %s AND email = %s",
        (account_id, email),
    ).fetchone()[0]


def test_retry_replays_first_response_without_writing(client, team, db_conn):
    member = team["member"]
    body = {"name": "Ada", "email": unique_email("ada")}

    first = client.post("/api/v1/contacts", json=body, headers=keyed(member, "k-1"))
    retry = client.post("/api/v1/contacts", json=body, headers=keyed(member, "k-1"))

    assert first.status_code == 201
    assert retry.status_code == 201
    assert retry.get_json() == first.get_json()
    assert retry.headers["Location"] == first.headers["Location"]
    assert retry.headers["ETag"] == first.headers["ETag"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count_contacts(db_conn, member.account_id, body["email"]) == 1


def test_same_json_in_other_layout_is_a_retry(client, team):
    member = team["member"]
    email = unique_email()
    headers = {**keyed(member, "layout"), "Content-Type": "application/json"}

    first = client.post(
        "/api/v1/contacts", data=f'{{"name": "A", "email": "{email}"}}', headers=headers
    )
    retry = client.post(
        "/api/v1/contacts", data=f'{{"email":"{email}","name":"A"}}', headers=headers
    )

    assert first.status_code == 201
    assert retry.headers.get("Idempotent-Replayed") == "true"


def test_same_key_other_body_is_422(client, team, db_conn):
    member = team["member"]
    client.post(
        "/api/v1/contacts", json={"name": "One"}, headers=keyed(member, "reused")
    )

    response = client.post(
        "/api/v1/contacts", json={"name": "Two"}, headers=keyed(member, "reused")
    )

    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["error"]["fields"]
    assert db_conn.execute(
        "SELECT count(*) FROM contacts WHERE account_id = %s AND name = 'Two'",
        (member.account_id,),
    ).fetchone() == (0,)


def test_same_key_other_route_is_422(client, team):
    member = team["member"]
    client.post("/api/v1/contacts", json={"name": "A"}, headers=keyed(member, "r"))

    response = client.post(
        "/api/v1/contacts/import",
        json={"contacts": [{"name": "A"}]},
        headers=keyed(member, "r"),
    )

    assert response.status_code == 422


def test_same_key_other_user_of_account_is_422(client, team):
    body = {"name": "Shared"}
    client.post("/api/v1/contacts", json=body, headers=keyed(team["member"], "u"))

    response = client.post(
        "/api/v1/contacts", json=body, headers=keyed(team["admin"], "u")
    )

    assert response.status_code == 422


def test_keys_are_per_account(client, factory, team):
    other = factory.owner()
    body = {"name": "Same"}

    mine = client.post("/api/v1/contacts", json=body, headers=keyed(team["owner"], "a"))
    theirs = client.post("/api/v1/contacts", json=body, headers=keyed(other, "a"))

    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.get_json()["id"] != mine.get_json()["id"]


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "é"])
def test_malformed_key_is_400(client, team, key):
    response = client.post(
        "/api/v1/contacts",
        json={"name": "A"},
        headers={**team["member"].headers, "Idempotency-Key": key},
    )

    assert response.status_code == 400


def test_failed_request_does_not_consume_key(client, team):
    member = team["member"]

    failed = client.post(
        "/api/v1/contacts", json={"name": ""}, headers=keyed(member, "fix")
    )
    fixed = client.post(
        "/api/v1/contacts", json={"name": "Fixed"}, headers=keyed(member, "fix")
    )

    assert failed.status_code == 422
    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed.headers


def test_forbidden_request_does_not_consume_key(client, team):
    body = {"name": "A"}

    denied = client.post(
        "/api/v1/contacts", json=body, headers=keyed(team["viewer"], "v")
    )
    again = client.post(
        "/api/v1/contacts", json=body, headers=keyed(team["viewer"], "v")
    )

    assert denied.status_code == 403
    assert again.status_code == 403


def test_expired_key_can_be_used_again(client, team, db_conn):
    member = team["member"]
    client.post("/api/v1/contacts", json={"name": "Old"}, headers=keyed(member, "e"))
    db_conn.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second'"
        " WHERE account_id = %s",
        (member.account_id,),
    )

    response = client.post(
        "/api/v1/contacts", json={"name": "New"}, headers=keyed(member, "e")
    )

    assert response.status_code == 201
    assert response.get_json()["name"] == "New"


def test_key_is_stored_for_24_hours(client, team, db_conn):
    member = team["member"]
    client.post("/api/v1/contacts", json={"name": "A"}, headers=keyed(member, "ttl"))

    lifetime = db_conn.execute(
        "SELECT extract(epoch FROM expires_at - created_at) FROM idempotency_keys"
        " WHERE account_id = %s",
        (member.account_id,),
    ).fetchone()[0]

    assert lifetime == 24 * 3600


def test_create_user_retry_makes_one_user(client, team, db_conn):
    owner = team["owner"]
    body = {
        "name": "New",
        "email": unique_email("new"),
        "role": "member",
        "password": PASSWORD,
    }

    first = client.post("/api/v1/users", json=body, headers=keyed(owner, "user-1"))
    retry = client.post("/api/v1/users", json=body, headers=keyed(owner, "user-1"))

    assert first.status_code == 201
    assert retry.get_json() == first.get_json()
    assert retry.headers["Location"] == first.headers["Location"]
    assert db_conn.execute(
        "SELECT count(*) FROM users WHERE email = %s", (body["email"],)
    ).fetchone() == (1,)


def test_import_retry_writes_once(client, team, db_conn):
    member = team["member"]
    body = {"contacts": [{"name": "Imported", "email": unique_email("imp")}]}

    first = client.post(
        "/api/v1/contacts/import", json=body, headers=keyed(member, "imp")
    )
    retry = client.post(
        "/api/v1/contacts/import", json=body, headers=keyed(member, "imp")
    )

    assert first.get_json() == {"created": 1, "updated": 0}
    assert retry.get_json() == {"created": 1, "updated": 0}
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert db_conn.execute(
        "SELECT count(*) FROM audit_events"
        " WHERE account_id = %s AND action = 'contact.imported'",
        (member.account_id,),
    ).fetchone() == (1,)


def test_replay_checks_the_role_first(client, factory, team):
    member = factory.user(team["owner"], "member")
    body = {"name": "Replayed", "notes": "member-only"}
    headers = {**member.headers, "Idempotency-Key": "role-check-1"}
    assert (
        client.post("/api/v1/contacts", json=body, headers=headers).status_code == 201
    )
    client.patch(
        f"/api/v1/users/{member.id}",
        json={"role": "viewer"},
        headers=team["owner"].headers,
    )

    response = client.post("/api/v1/contacts", json=body, headers=headers)

    assert response.status_code == 403


def test_replay_rejects_a_body_the_api_would_reject(client, team):
    headers = {**team["member"].headers, "Idempotency-Key": "media-check-1"}
    client.post("/api/v1/contacts", json={"name": "Once"}, headers=headers)

    other_type = client.post(
        "/api/v1/contacts",
        data='{"name": "Once"}',
        content_type="text/plain",
        headers=headers,
    )
    duplicate_keys = client.post(
        "/api/v1/contacts",
        data='{"name": "Once", "name": "Once"}',
        content_type="application/json",
        headers=headers,
    )

    assert other_type.status_code == 415
    assert duplicate_keys.status_code == 400


def test_stored_request_hash_is_keyed_by_the_app_secret(client, team, db_conn):
    body = {"name": "Hashed"}
    headers = {**team["member"].headers, "Idempotency-Key": "hash-check-1"}
    client.post("/api/v1/contacts", json=body, headers=headers)
    stored = db_conn.execute(
        "SELECT request_hash FROM idempotency_keys WHERE idempotency_key = %s",
        ("hash-check-1",),
    ).fetchone()[0]

    plain = hashlib.sha256()
    for part in (team["member"].id, "POST", "/api/v1/contacts"):
        plain.update(part.encode() + b"\x00")
    plain.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())

    assert bytes(stored) != plain.digest()
