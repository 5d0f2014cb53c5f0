"""Users: the role table, owner hand-over, tenancy and mass assignment."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import PASSWORD, Factory, login, unique_email

USERS = "/api/v1/users"
PRIVATE_FIELDS = {"email", "is_active", "last_login_at"}


def _create(client, actor, role, **extra):
    body = {
        "name": "New",
        "email": unique_email(role),
        "role": role,
        "password": PASSWORD,
    }
    return client.post(USERS, json={**body, **extra}, headers=actor.headers)


@pytest.mark.parametrize("role", ["viewer", "member"])
def test_viewer_and_member_see_only_public_user_fields(client, team, role):
    response = client.get(USERS, headers=team[role].headers)

    assert response.status_code == 200
    items = response.get_json()["items"]
    assert len(items) == 4
    assert all(set(item) == {"id", "name", "role"} for item in items)


@pytest.mark.parametrize("role", ["admin", "owner"])
def test_admin_and_owner_see_private_user_fields(client, team, role):
    response = client.get(f"{USERS}/{team['member'].id}", headers=team[role].headers)

    assert response.status_code == 200
    assert PRIVATE_FIELDS <= set(response.get_json())


@pytest.mark.parametrize(
    ("actor", "new_role", "status"),
    [
        ("viewer", "viewer", 403),
        ("member", "viewer", 403),
        ("admin", "viewer", 201),
        ("admin", "member", 201),
        ("admin", "admin", 403),
        ("admin", "owner", 403),
        ("owner", "admin", 201),
    ],
)
def test_create_user_follows_role_table(client, team, actor, new_role, status):
    response = _create(client, team[actor], new_role)

    assert response.status_code == status


def test_create_user_with_taken_email_in_any_case_is_409(client, team):
    response = _create(
        client, team["owner"], "member", email=team["member"].email.upper()
    )

    assert response.status_code == 409


def test_create_user_with_short_password_is_422(client, team):
    response = _create(client, team["owner"], "member", password="short")

    assert response.status_code == 422
    assert "password" in response.get_json()["error"]["fields"]


@pytest.mark.parametrize(
    ("actor", "target", "changes", "status"),
    [
        ("admin", "member", {"role": "viewer"}, 200),
        ("admin", "viewer", {"name": "Renamed"}, 200),
        ("admin", "member", {"is_active": False}, 200),
        ("admin", "member", {"role": "admin"}, 403),
        ("admin", "owner", {"name": "X"}, 403),
        ("owner", "admin", {"role": "member"}, 200),
        ("owner", "member", {"role": "admin"}, 200),
        ("owner", "owner", {"role": "admin"}, 403),
        ("owner", "owner", {"is_active": False}, 403),
    ],
)
def test_update_user_follows_role_table(client, team, actor, target, changes, status):
    response = client.patch(
        f"{USERS}/{team[target].id}", json=changes, headers=team[actor].headers
    )

    assert response.status_code == status


def test_admin_cannot_change_another_admin(client, factory, team):
    second_admin = factory.user(team["owner"], "admin")

    response = client.patch(
        f"{USERS}/{second_admin.id}", json={"name": "X"}, headers=team["admin"].headers
    )

    assert response.status_code == 403


@pytest.mark.parametrize("field", ["role", "is_active", "name"])
@pytest.mark.parametrize("actor", ["viewer", "member"])
def test_viewer_and_member_cannot_update_users(client, team, actor, field):
    value = {"role": "owner", "is_active": False, "name": "X"}[field]

    response = client.patch(
        f"{USERS}/{team[actor].id}", json={field: value}, headers=team[actor].headers
    )

    assert response.status_code == 403


@pytest.mark.parametrize(
    "field", ["account_id", "email", "password_hash", "created_at"]
)
def test_update_user_with_protected_field_is_403_naming_it(client, team, field):
    response = client.patch(
        f"{USERS}/{team['member'].id}", json={field: "x"}, headers=team["owner"].headers
    )

    assert response.status_code == 403
    assert field in response.get_json()["error"]["message"]


def test_owner_hand_over_demotes_old_owner_in_same_change(client, team):
    response = client.patch(
        f"{USERS}/{team['admin'].id}",
        json={"role": "owner"},
        headers=team["owner"].headers,
    )

    assert response.status_code == 200
    assert response.get_json()["role"] == "owner"
    old_owner = client.get(f"{USERS}/{team['owner'].id}", headers=team["admin"].headers)
    assert old_owner.get_json()["role"] == "admin"
    roles = [
        user["role"]
        for user in client.get(USERS, headers=team["admin"].headers).get_json()["items"]
    ]
    assert roles.count("owner") == 1


def test_old_owner_token_loses_owner_rights_at_once(client, team):
    client.patch(
        f"{USERS}/{team['admin'].id}",
        json={"role": "owner"},
        headers=team["owner"].headers,
    )

    response = client.patch(
        f"{USERS}/{team['admin'].id}",
        json={"role": "member"},
        headers=team["owner"].headers,
    )

    assert response.status_code == 403


def test_demoted_admin_token_refused_on_next_request(client, team):
    demote = client.patch(
        f"{USERS}/{team['admin'].id}",
        json={"role": "viewer"},
        headers=team["owner"].headers,
    )
    assert demote.status_code == 200

    response = client.get(f"{USERS}/{team['member'].id}", headers=team["admin"].headers)

    assert response.status_code == 200
    assert "email" not in response.get_json()
    assert _create(client, team["admin"], "viewer").status_code == 403


def test_deactivated_user_token_is_401_on_next_request(client, team):
    client.patch(
        f"{USERS}/{team['member'].id}",
        json={"is_active": False},
        headers=team["owner"].headers,
    )

    response = client.get("/api/v1/me", headers=team["member"].headers)

    assert response.status_code == 401


def test_deactivated_user_cannot_log_in(client, team):
    client.patch(
        f"{USERS}/{team['member'].id}",
        json={"is_active": False},
        headers=team["owner"].headers,
    )

    response = client.post(
        "/api/v1/auth/login", json={"email": team["member"].email, "password": PASSWORD}
    )

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("actor", "target", "status"),
    [
        ("owner", "admin", 204),
        ("owner", "member", 204),
        ("admin", "member", 204),
        ("admin", "viewer", 204),
        ("admin", "owner", 403),
        ("member", "viewer", 403),
        ("viewer", "member", 403),
    ],
)
def test_delete_user_follows_role_table(client, team, actor, target, status):
    response = client.delete(f"{USERS}/{team[target].id}", headers=team[actor].headers)

    assert response.status_code == status


def test_owner_cannot_delete_self(client, team):
    response = client.delete(
        f"{USERS}/{team['owner'].id}", headers=team["owner"].headers
    )

    assert response.status_code == 403


def test_deleted_user_is_404_token_401_and_email_reusable(client, team):
    member = team["member"]
    assert (
        client.delete(f"{USERS}/{member.id}", headers=team["owner"].headers).status_code
        == 204
    )

    assert (
        client.get(f"{USERS}/{member.id}", headers=team["owner"].headers).status_code
        == 404
    )
    assert client.get("/api/v1/me", headers=member.headers).status_code == 401
    assert (
        _create(client, team["owner"], "member", email=member.email).status_code == 201
    )


class TestCrossTenant:
    @pytest.fixture()
    def foreign(self, factory: Factory):
        other_owner = factory.owner()
        return factory.user(other_owner, "member")

    def test_read_other_account_user_is_404(self, client, team, foreign):
        response = client.get(f"{USERS}/{foreign.id}", headers=team["owner"].headers)

        assert response.status_code == 404

    def test_update_other_account_user_is_404(self, client, team, foreign):
        response = client.patch(
            f"{USERS}/{foreign.id}",
            json={"role": "viewer"},
            headers=team["owner"].headers,
        )

        assert response.status_code == 404
        assert (
            client.get("/api/v1/me", headers=foreign.headers).get_json()["user"]["role"]
            == "member"
        )

    def test_delete_other_account_user_is_404(self, client, team, foreign):
        response = client.delete(f"{USERS}/{foreign.id}", headers=team["owner"].headers)

        assert response.status_code == 404
        assert client.get("/api/v1/me", headers=foreign.headers).status_code == 200

    def test_list_excludes_other_account_users(self, client, team, foreign):
        ids = {
            u["id"]
            for u in client.get(USERS, headers=team["owner"].headers).get_json()[
                "items"
            ]
        }

        assert foreign.id not in ids


def test_user_list_paginates_without_repeats(client, factory, team):
    for _ in range(3):
        factory.user(team["owner"], "viewer")
    seen, cursor = [], None
    while True:
        url = f"{USERS}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=team["owner"].headers).get_json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break

    assert len(seen) == 7
    assert len(set(seen)) == 7


def test_me_returns_user_and_account(client, team):
    response = client.get("/api/v1/me", headers=team["member"].headers)

    body = response.get_json()
    assert body["user"]["id"] == team["member"].id
    assert body["user"]["email"] == team["member"].email
    assert body["account"]["id"] == team["member"].account_id


def test_patch_me_changes_name(client, team):
    response = client.patch(
        "/api/v1/me", json={"name": "Renamed"}, headers=team["viewer"].headers
    )

    assert response.status_code == 200
    assert response.get_json()["user"]["name"] == "Renamed"


@pytest.mark.parametrize("field", ["role", "is_active", "account_id", "email"])
def test_patch_me_with_protected_field_is_403(client, team, field):
    value = {"role": "owner", "is_active": True}.get(field, "x")

    response = client.patch(
        "/api/v1/me", json={"name": "N", field: value}, headers=team["member"].headers
    )

    assert response.status_code == 403
    assert field in response.get_json()["error"]["message"]
    assert (
        client.get("/api/v1/me", headers=team["member"].headers).get_json()["user"][
            "role"
        ]
        == "member"
    )


def test_login_still_works_for_user_created_by_admin(client, team):
    email = unique_email("fresh")
    _create(client, team["admin"], "member", email=email)

    assert "access_token" in login(client, email)


def test_owner_rule_message_explains_hand_over(client, team):
    response = client.patch(
        f"{USERS}/{team['owner'].id}",
        json={"role": "admin"},
        headers=team["owner"].headers,
    )

    assert response.status_code == 403
    assert "hand ownership" in response.get_json()["error"]["message"]


def test_me_etag_changes_when_body_changes(client, team):
    before = client.get("/api/v1/me", headers=team["member"].headers).headers["ETag"]

    client.patch("/api/v1/me", json={"name": "Other"}, headers=team["member"].headers)
    after = client.get("/api/v1/me", headers=team["member"].headers).headers["ETag"]

    assert before != after


def test_concurrent_hand_overs_leave_one_owner_and_no_500(app, team, factory):
    heirs = [team["admin"], factory.user(team["owner"], "member")]
    barrier = threading.Barrier(len(heirs))
    statuses: list[int] = []

    def hand_over(heir):
        client = app.test_client()
        barrier.wait()
        response = client.patch(
            f"{USERS}/{heir.id}", json={"role": "owner"}, headers=team["owner"].headers
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=hand_over, args=(heir,)) for heir in heirs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert sorted(statuses) == [200, 403]
    listed = app.test_client().get(USERS, headers=heirs[0].headers).get_json()["items"]
    assert [user["role"] for user in listed].count("owner") == 1


def test_public_and_private_user_views_have_different_etags(client, team):
    url = f"{USERS}/{team['member'].id}"

    private = client.get(url, headers=team["owner"].headers).headers["ETag"]
    public = client.get(url, headers=team["viewer"].headers).headers["ETag"]

    assert private != public


def test_patch_me_with_stale_if_match_is_412(client, team):
    headers = team["member"].headers
    stale = client.get("/api/v1/me", headers=headers).headers["ETag"]
    client.patch("/api/v1/me", json={"name": "First"}, headers=headers)

    response = client.patch(
        "/api/v1/me", json={"name": "Second"}, headers={**headers, "If-Match": stale}
    )

    assert response.status_code == 412
    assert (
        client.get("/api/v1/me", headers=headers).get_json()["user"]["name"] == "First"
    )


def test_patch_me_with_current_if_match_succeeds(client, team):
    headers = team["member"].headers
    current = client.get("/api/v1/me", headers=headers).headers["ETag"]

    response = client.patch(
        "/api/v1/me", json={"name": "Fresh"}, headers={**headers, "If-Match": current}
    )

    assert response.status_code == 200
