"""POST /contacts/import: validate everything, then upsert in one transaction."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import unique_email

URL = "/api/v1/contacts/import"


def contacts_of(db_conn, account_id):
    return db_conn.execute(
        "SELECT name, email, phone, company, notes, tags FROM contacts"
        " WHERE account_id = %s AND deleted_at IS NULL ORDER BY name",
        (account_id,),
    ).fetchall()


def test_import_creates_and_updates_by_email(client, factory, team, db_conn):
    member = team["member"]
    existing = factory.contact(
        member, name="Old", email="Ada@Example.com", phone="1", notes="keep"
    )

    response = client.post(
        URL,
        json={
            "contacts": [
                {"name": "Ada", "email": "ada@EXAMPLE.com", "phone": None},
                {"name": "Grace", "email": unique_email("grace")},
                {"name": "No Email", "company": "Navy"},
            ]
        },
        headers=member.headers,
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"created": 2, "updated": 1}
    updated = client.get(
        f"/api/v1/contacts/{existing['id']}", headers=member.headers
    ).get_json()
    assert updated["name"] == "Ada"
    assert updated["email"] == "Ada@Example.com"
    assert updated["phone"] is None
    assert updated["notes"] == "keep"
    assert len(contacts_of(db_conn, member.account_id)) == 3


def test_import_updates_tags_only_when_sent(client, factory, team):
    member = team["member"]
    email = unique_email("tags")
    contact = factory.contact(member, email=email, tags=["a"])

    client.post(
        URL, json={"contacts": [{"name": "N", "email": email}]}, headers=member.headers
    )
    kept = client.get(f"/api/v1/contacts/{contact['id']}", headers=member.headers)
    client.post(
        URL,
        json={"contacts": [{"name": "N", "email": email, "tags": ["b", "c"]}]},
        headers=member.headers,
    )
    replaced = client.get(f"/api/v1/contacts/{contact['id']}", headers=member.headers)

    assert kept.get_json()["tags"] == ["a"]
    assert replaced.get_json()["tags"] == ["b", "c"]
    assert replaced.headers["ETag"] != kept.headers["ETag"]


def test_import_invalid_rows_are_422(client, team, db_conn):
    member = team["member"]

    response = client.post(
        URL,
        json={
            "contacts": [
                {"name": "Fine", "email": unique_email()},
                {"name": "", "email": "not-an-email"},
                {"name": "Fine too"},
                {"name": "X", "unknown": 1},
                "not an object",
            ]
        },
        headers=member.headers,
    )

    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]
    assert sorted(fields) == ["1", "3", "4"]
    assert "email" in fields["1"]
    assert "name" in fields["1"]
    assert "unknown" in fields["3"]
    assert contacts_of(db_conn, member.account_id) == []


def test_import_duplicate_emails_in_request_are_422(client, team, db_conn):
    member = team["member"]
    email = unique_email("dup")

    response = client.post(
        URL,
        json={
            "contacts": [
                {"name": "A", "email": email},
                {"name": "B", "email": unique_email()},
                {"name": "C", "email": email.upper()},
            ]
        },
        headers=member.headers,
    )

    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == {
        "2": {"email": ["Duplicates the email of row 0."]}
    }
    assert contacts_of(db_conn, member.account_id) == []


@pytest.mark.parametrize("count", [0, 1001])
def test_import_row_count_outside_limits_is_422(client, team, count):
    rows = [{"name": f"n{index}"} for index in range(count)]

    response = client.post(URL, json={"contacts": rows}, headers=team["member"].headers)

    assert response.status_code == 422
    assert "contacts" in response.get_json()["error"]["fields"]


def test_import_thousand_rows_in_one_request(client, team, db_conn):
    member = team["member"]
    rows = [
        {"name": f"Person {index}", "email": f"p{index}-{member.id}@example.com"}
        for index in range(1000)
    ]

    first = client.post(URL, json={"contacts": rows}, headers=member.headers)
    again = client.post(URL, json={"contacts": rows}, headers=member.headers)

    assert first.get_json() == {"created": 1000, "updated": 0}
    assert again.get_json() == {"created": 0, "updated": 1000}
    assert len(contacts_of(db_conn, member.account_id)) == 1000


def test_import_viewer_is_403(client, team, db_conn):
    response = client.post(
        URL, json={"contacts": [{"name": "V"}]}, headers=team["viewer"].headers
    )

    assert response.status_code == 403
    assert contacts_of(db_conn, team["viewer"].account_id) == []


def test_import_protected_field_in_row_is_403(client, team):
    response = client.post(
        URL,
        json={"contacts": [{"name": "A"}, {"name": "B", "account_id": "x"}]},
        headers=team["member"].headers,
    )

    assert response.status_code == 403
    assert "1.account_id" in response.get_json()["error"]["message"]


def test_import_leaves_other_accounts_alone(client, factory, team, db_conn):
    other = factory.owner()
    email = unique_email("shared")
    theirs = factory.contact(other, name="Theirs", email=email)

    response = client.post(
        URL,
        json={"contacts": [{"name": "Mine", "email": email}]},
        headers=team["member"].headers,
    )

    assert response.get_json() == {"created": 1, "updated": 0}
    row = db_conn.execute(
        "SELECT name FROM contacts WHERE id = %s", (theirs["id"],)
    ).fetchone()
    assert row == ("Theirs",)


def test_import_records_audit_event(client, team, db_conn):
    member = team["member"]

    client.post(URL, json={"contacts": [{"name": "A"}]}, headers=member.headers)

    event = db_conn.execute(
        "SELECT actor_id, details FROM audit_events"
        " WHERE account_id = %s AND action = 'contact.imported'",
        (member.account_id,),
    ).fetchone()
    assert event == (member.id, {"rows": 1, "created": 1, "updated": 0})


def test_import_lock_wait_is_503(client, factory, team, admin_database_url):
    import psycopg

    member = team["member"]
    email = unique_email("locked")
    contact = factory.contact(member, email=email)
    locked = threading.Event()
    release = threading.Event()

    def hold_lock():
        with psycopg.connect(admin_database_url) as conn:
            conn.execute(
                "SELECT id FROM contacts WHERE id = %s FOR UPDATE", (contact["id"],)
            )
            locked.set()
            release.wait(10)
            conn.rollback()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(5)
        blocked = client.post(
            URL,
            json={"contacts": [{"name": "New name", "email": email}]},
            headers=member.headers,
        )
    finally:
        release.set()
        holder.join()
    retried = client.post(
        URL,
        json={"contacts": [{"name": "New name", "email": email}]},
        headers=member.headers,
    )

    assert blocked.status_code == 503
    assert blocked.headers["Retry-After"]
    assert blocked.get_json()["error"]["code"] == "service_unavailable"
    assert retried.get_json() == {"created": 0, "updated": 1}


def test_import_treats_dotted_capital_i_as_duplicate(client, team):
    rows = [
        {"name": "Row zero", "email": "\u0130van-dup@example.com"},
        {"name": "Row one", "email": "ivan-dup@example.com"},
    ]

    response = client.post(
        "/api/v1/contacts/import",
        json={"contacts": rows},
        headers=team["member"].headers,
    )

    assert response.status_code == 422
    assert "1" in response.get_json()["error"]["fields"]
