"""Contacts: CRUD, tenancy, roles, conflicts, preconditions and pagination."""

from __future__ import annotations

import pytest

from tests.conftest import Factory, Member, unique_email

CONTACTS = "/api/v1/contacts"


def test_create_contact_returns_201_location_and_etag(client, team):
    response = client.post(
        CONTACTS,
        json={"name": "Ada", "email": "ADA@example.com", "tags": ["vip"]},
        headers=team["member"].headers,
    )

    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"{CONTACTS}/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert body["created_by"] == team["member"].id
    assert body["tags"] == ["vip"]


def test_get_contact_round_trips_fields(client, factory, team):
    contact = factory.contact(team["member"], phone="+1 555", company="Navy", notes="n")

    response = client.get(f"{CONTACTS}/{contact['id']}", headers=team["member"].headers)

    assert response.status_code == 200
    assert response.get_json() == contact


def test_viewer_never_sees_notes(client, factory, team):
    contact = factory.contact(team["member"], notes="secret plan")

    single = client.get(f"{CONTACTS}/{contact['id']}", headers=team["viewer"].headers)
    listed = client.get(CONTACTS, headers=team["viewer"].headers)

    assert single.status_code == 200
    assert "notes" not in single.get_json()
    assert listed.get_json()["items"]
    assert all("notes" not in item for item in listed.get_json()["items"])


@pytest.mark.parametrize("method", ["post", "patch"])
def test_viewer_cannot_write_contacts(client, factory, team, method):
    contact = factory.contact(team["member"])
    url = CONTACTS if method == "post" else f"{CONTACTS}/{contact['id']}"

    response = getattr(client, method)(
        url, json={"name": "X"}, headers=team["viewer"].headers
    )

    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_duplicate_email_in_any_case_is_409(client, factory, team):
    factory.contact(team["member"], email="dup@example.com")

    response = client.post(
        CONTACTS,
        json={"name": "Dup", "email": "DUP@Example.COM"},
        headers=team["member"].headers,
    )

    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"


def test_same_email_in_another_account_is_allowed(client, factory, team):
    factory.contact(team["member"], email="shared@example.com")
    other = factory.owner()

    response = client.post(
        CONTACTS,
        json={"name": "S", "email": "shared@example.com"},
        headers=other.headers,
    )

    assert response.status_code == 201


@pytest.mark.parametrize("field", ["account_id", "created_by", "id", "created_at"])
def test_create_contact_with_protected_field_is_403(client, team, field):
    response = client.post(
        CONTACTS,
        json={"name": "Mallory", field: "00000000-0000-0000-0000-000000000001"},
        headers=team["owner"].headers,
    )

    assert response.status_code == 403
    assert field in response.get_json()["error"]["message"]


@pytest.mark.parametrize("field", ["account_id", "created_by"])
def test_update_contact_with_protected_field_is_403(client, factory, team, field):
    contact = factory.contact(team["member"])

    response = client.patch(
        f"{CONTACTS}/{contact['id']}",
        json={field: team["owner"].id},
        headers=team["admin"].headers,
    )

    assert response.status_code == 403
    assert field in response.get_json()["error"]["message"]


def test_unknown_field_is_422_with_fields(client, team):
    response = client.post(
        CONTACTS, json={"name": "A", "nickname": "x"}, headers=team["member"].headers
    )

    assert response.status_code == 422
    assert "nickname" in response.get_json()["error"]["fields"]


def test_invalid_email_is_422_naming_field(client, team):
    response = client.post(
        CONTACTS,
        json={"name": "A", "email": "not-an-email"},
        headers=team["member"].headers,
    )

    assert response.status_code == 422
    assert list(response.get_json()["error"]["fields"]) == ["email"]


def test_update_contact_changes_fields_and_etag(client, factory, team):
    contact = factory.contact(team["member"])

    response = client.patch(
        f"{CONTACTS}/{contact['id']}",
        json={"company": "ACME", "tags": ["a", "b"]},
        headers={**team["member"].headers, "If-Match": '"1"'},
    )

    assert response.status_code == 200
    assert response.get_json()["company"] == "ACME"
    assert response.get_json()["name"] == contact["name"]
    assert response.headers["ETag"] == '"2"'


def test_update_contact_with_stale_if_match_is_412_and_changes_nothing(
    client, factory, team
):
    contact = factory.contact(team["member"], company="Before")
    url = f"{CONTACTS}/{contact['id']}"
    client.patch(url, json={"company": "Second"}, headers=team["member"].headers)

    response = client.patch(
        url,
        json={"company": "Stale"},
        headers={**team["member"].headers, "If-Match": '"1"'},
    )

    assert response.status_code == 412
    assert (
        client.get(url, headers=team["member"].headers).get_json()["company"]
        == "Second"
    )


def test_delete_contact_with_stale_if_match_is_412(client, factory, team):
    contact = factory.contact(team["member"])
    url = f"{CONTACTS}/{contact['id']}"

    response = client.delete(url, headers={**team["owner"].headers, "If-Match": '"7"'})

    assert response.status_code == 412
    assert client.get(url, headers=team["owner"].headers).status_code == 200


def test_member_deletes_own_contact_only(client, factory, team):
    own = factory.contact(team["member"])
    others = factory.contact(team["admin"])

    denied = client.delete(f"{CONTACTS}/{others['id']}", headers=team["member"].headers)
    allowed = client.delete(f"{CONTACTS}/{own['id']}", headers=team["member"].headers)

    assert denied.status_code == 403
    assert allowed.status_code == 204


@pytest.mark.parametrize("role", ["admin", "owner"])
def test_admin_and_owner_delete_any_contact(client, factory, team, role):
    contact = factory.contact(team["member"])

    response = client.delete(f"{CONTACTS}/{contact['id']}", headers=team[role].headers)

    assert response.status_code == 204


def test_viewer_cannot_delete_contact(client, factory, team):
    contact = factory.contact(team["member"])

    response = client.delete(
        f"{CONTACTS}/{contact['id']}", headers=team["viewer"].headers
    )

    assert response.status_code == 403


def test_deleted_contact_is_404_and_frees_its_email(client, factory, team, db_conn):
    contact = factory.contact(team["member"], email="gone@example.com")
    url = f"{CONTACTS}/{contact['id']}"

    assert client.delete(url, headers=team["member"].headers).status_code == 204

    assert client.get(url, headers=team["member"].headers).status_code == 404
    assert (
        client.patch(
            url, json={"name": "Z"}, headers=team["member"].headers
        ).status_code
        == 404
    )
    assert client.delete(url, headers=team["member"].headers).status_code == 404
    row = db_conn.execute(
        "SELECT deleted_at FROM contacts WHERE id = %s", (contact["id"],)
    ).fetchone()
    assert row is not None and row[0] is not None
    again = client.post(
        CONTACTS,
        json={"name": "Again", "email": "gone@example.com"},
        headers=team["member"].headers,
    )
    assert again.status_code == 201


def test_unknown_and_malformed_ids_are_404(client, team):
    headers = team["member"].headers

    assert (
        client.get(
            f"{CONTACTS}/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=headers
        ).status_code
        == 404
    )
    assert client.get(f"{CONTACTS}/not-a-uuid", headers=headers).status_code == 404


class TestCrossTenant:
    """Another account's contact is a 404, the same as a missing one."""

    @pytest.fixture()
    def foreign(self, factory: Factory) -> dict:
        return factory.contact(factory.owner(), notes="theirs")

    def test_read_other_account_contact_is_404(self, client, team, foreign):
        response = client.get(
            f"{CONTACTS}/{foreign['id']}", headers=team["owner"].headers
        )

        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"

    def test_update_other_account_contact_is_404(self, client, team, foreign, db_conn):
        response = client.patch(
            f"{CONTACTS}/{foreign['id']}",
            json={"name": "Pwned"},
            headers=team["owner"].headers,
        )

        assert response.status_code == 404
        name = db_conn.execute(
            "SELECT name FROM contacts WHERE id = %s", (foreign["id"],)
        ).fetchone()
        assert name == (foreign["name"],)

    def test_delete_other_account_contact_is_404(self, client, team, foreign, db_conn):
        response = client.delete(
            f"{CONTACTS}/{foreign['id']}", headers=team["owner"].headers
        )

        assert response.status_code == 404
        row = db_conn.execute(
            "SELECT deleted_at FROM contacts WHERE id = %s", (foreign["id"],)
        ).fetchone()
        assert row == (None,)

    def test_list_excludes_other_account_contacts(self, client, team, foreign):
        response = client.get(CONTACTS, headers=team["owner"].headers)

        ids = {item["id"] for item in response.get_json()["items"]}
        assert foreign["id"] not in ids


class TestPagination:
    def _walk(self, client, member: Member, limit: int, query: str = "") -> list[str]:
        seen: list[str] = []
        url = f"{CONTACTS}?limit={limit}{query}"
        while url:
            body = client.get(url, headers=member.headers).get_json()
            seen += [item["id"] for item in body["items"]]
            cursor = body["next_cursor"]
            url = f"{CONTACTS}?limit={limit}&cursor={cursor}{query}" if cursor else ""
        return seen

    def test_pages_cover_every_row_once(self, client, factory, team):
        made = [factory.contact(team["member"])["id"] for _ in range(7)]

        seen = self._walk(client, team["member"], limit=3)

        assert seen == made

    def test_rows_inserted_between_pages_cause_no_repeat_or_skip(
        self, client, factory, team
    ):
        before = [factory.contact(team["member"])["id"] for _ in range(6)]
        first = client.get(
            f"{CONTACTS}?limit=3", headers=team["member"].headers
        ).get_json()
        inserted = [factory.contact(team["member"])["id"] for _ in range(3)]

        seen = [item["id"] for item in first["items"]]
        cursor = first["next_cursor"]
        while cursor:
            body = client.get(
                f"{CONTACTS}?limit=3&cursor={cursor}", headers=team["member"].headers
            ).get_json()
            seen += [item["id"] for item in body["items"]]
            cursor = body["next_cursor"]

        assert len(seen) == len(set(seen))
        assert seen == before + inserted

    def test_search_matches_name_email_company_case_insensitively(
        self, client, factory, team
    ):
        by_name = factory.contact(team["member"], name="Zelda Fitzgerald")
        by_email = factory.contact(
            team["member"], name="A", email=unique_email("zeldafan")
        )
        by_company = factory.contact(team["member"], name="B", company="ZELDA Inc")
        factory.contact(team["member"], name="Unrelated")

        seen = self._walk(client, team["member"], limit=2, query="&q=zElDa")

        assert seen == [by_name["id"], by_email["id"], by_company["id"]]

    def test_search_treats_like_wildcards_literally(self, client, factory, team):
        factory.contact(team["member"], name="Plain")
        percent = factory.contact(team["member"], name="100% sure")

        seen = self._walk(client, team["member"], limit=10, query="&q=%25")

        assert seen == [percent["id"]]

    def test_tampered_cursor_is_400(self, client, factory, team):
        for _ in range(3):
            factory.contact(team["member"])
        cursor = client.get(
            f"{CONTACTS}?limit=1", headers=team["member"].headers
        ).get_json()["next_cursor"]
        payload, signature = cursor.split(".")
        tampered = (
            payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
        )

        response = client.get(
            f"{CONTACTS}?cursor={tampered}", headers=team["member"].headers
        )

        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "bad_request"

    def test_cursor_from_another_account_is_400(self, client, factory, team):
        other = factory.owner()
        for _ in range(2):
            factory.contact(other)
        cursor = client.get(f"{CONTACTS}?limit=1", headers=other.headers).get_json()[
            "next_cursor"
        ]

        response = client.get(
            f"{CONTACTS}?cursor={cursor}", headers=team["member"].headers
        )

        assert response.status_code == 400

    @pytest.mark.parametrize(
        "query", ["limit=0", "limit=101", "limit=abc", "cursor=%%%", "color=red"]
    )
    def test_bad_query_parameter_is_400(self, client, team, query):
        response = client.get(f"{CONTACTS}?{query}", headers=team["member"].headers)

        assert response.status_code == 400


def test_viewer_and_member_get_different_etags(client, factory, team):
    contact = factory.contact(team["member"], notes="n")
    url = f"{CONTACTS}/{contact['id']}"

    full = client.get(url, headers=team["member"].headers).headers["ETag"]
    reduced = client.get(url, headers=team["viewer"].headers).headers["ETag"]

    assert full != reduced


@pytest.mark.parametrize("header", ['"1", "2"', "1", 'W/"1"', '"abc"'])
def test_malformed_if_match_is_400(client, factory, team, header):
    contact = factory.contact(team["member"])

    response = client.patch(
        f"{CONTACTS}/{contact['id']}",
        json={"name": "X"},
        headers={**team["member"].headers, "If-Match": header},
    )

    assert response.status_code == 400


def test_empty_patch_keeps_version(client, factory, team):
    contact = factory.contact(team["member"])

    response = client.patch(
        f"{CONTACTS}/{contact['id']}", json={}, headers=team["member"].headers
    )

    assert response.status_code == 200
    assert response.headers["ETag"] == '"1"'
    assert response.get_json()["updated_at"] == contact["updated_at"]


def test_duplicate_tags_are_422(client, team):
    response = client.post(
        CONTACTS,
        json={"name": "T", "tags": ["a", "b", "a"]},
        headers=team["member"].headers,
    )

    assert response.status_code == 422
    assert "tags" in response.get_json()["error"]["fields"]


def test_viewer_delete_message_names_the_role_rule(client, factory, team):
    contact = factory.contact(team["member"])

    response = client.delete(
        f"{CONTACTS}/{contact['id']}", headers=team["viewer"].headers
    )

    assert (
        response.get_json()["error"]["message"] == "Your role cannot delete contacts."
    )
