"""Password policy on every write, password change, and the reset flow."""

from __future__ import annotations

import hashlib
import re

import pytest

from bastion.passwords import TOO_GUESSABLE, TOO_LONG, TOO_PERSONAL, TOO_SHORT
from tests.conftest import PASSWORD, login, read_mail, unique_email

AUTH = "/api/v1/auth"
NEW_PASSWORD = "velvet orbit lantern quarry"


def _me(client, token):
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def _refresh(client, refresh_token):
    return client.post(f"{AUTH}/refresh", json={"refresh_token": refresh_token})


def _request_reset(client, email):
    return client.post(f"{AUTH}/password-reset", json={"email": email})


def _confirm(client, token, password=NEW_PASSWORD):
    return client.post(
        f"{AUTH}/password-reset/confirm", json={"token": token, "password": password}
    )


def _reset_token(email):
    messages = read_mail(email)
    assert messages, f"no mail for {email}"
    match = re.search(r"reset token: (\S+)", messages[-1].get_content())
    assert match is not None
    return match.group(1)


def _change(client, member, current=PASSWORD, new=NEW_PASSWORD):
    return client.post(
        "/api/v1/me/password",
        json={"current_password": current, "new_password": new},
        headers=member.headers,
    )


class TestPolicy:
    @pytest.mark.parametrize(
        ("password", "rule"),
        [
            ("short pass", TOO_SHORT),
            ("x" * 1025, TOO_LONG),
            ("password1234", TOO_GUESSABLE),
            ("qwertyuiopasdf", TOO_GUESSABLE),
        ],
    )
    def test_signup_names_the_broken_rule(self, client, password, rule):
        response = client.post(
            f"{AUTH}/signup",
            json={
                "account_name": "Acme",
                "name": "Ada",
                "email": unique_email(),
                "password": password,
            },
        )

        assert response.status_code == 422
        assert response.get_json()["error"]["fields"] == {"password": [rule]}

    def test_signup_rejects_password_made_of_the_email(self, client):
        email = unique_email("quokkazanzibar")

        response = client.post(
            f"{AUTH}/signup",
            json={
                "account_name": "Acme",
                "name": "Ada",
                "email": email,
                "password": "quokkazanzibar1",
            },
        )

        assert response.status_code == 422
        assert response.get_json()["error"]["fields"] == {"password": [TOO_PERSONAL]}

    def test_user_creation_rejects_common_password(self, client, factory):
        owner = factory.owner()

        response = client.post(
            "/api/v1/users",
            json={
                "name": "M",
                "email": unique_email(),
                "role": "member",
                "password": "iloveyou1234",
            },
            headers=owner.headers,
        )

        assert response.status_code == 422
        assert response.get_json()["error"]["fields"] == {"password": [TOO_GUESSABLE]}


class TestChangePassword:
    def test_change_ends_other_sessions_and_keeps_this_one(self, client, factory):
        owner = factory.owner()
        other = login(client, owner.email)

        response = _change(client, owner)

        assert response.status_code == 204
        assert _me(client, owner.access_token).status_code == 200
        assert _refresh(client, owner.refresh_token).status_code == 200
        assert _me(client, other["access_token"]).status_code == 401
        assert _refresh(client, other["refresh_token"]).status_code == 401
        assert login(client, owner.email, NEW_PASSWORD)["access_token"]
        old = client.post(
            f"{AUTH}/login", json={"email": owner.email, "password": PASSWORD}
        )
        assert old.status_code == 401

    def test_wrong_current_password_is_403(self, client, factory, db_conn):
        owner = factory.owner()

        response = _change(client, owner, current="not the password at all")

        assert response.status_code == 403
        assert _me(client, owner.access_token).status_code == 200
        failures = db_conn.execute(
            "SELECT failed_login_count FROM users WHERE id = %s", (owner.id,)
        ).fetchone()
        assert failures == (1,)

    def test_locked_account_cannot_change_password(self, client, factory, db_conn):
        owner = factory.owner()
        db_conn.execute(
            "UPDATE users SET locked_until = now() + interval '1 hour' WHERE id = %s",
            (owner.id,),
        )

        response = _change(client, owner)

        assert response.status_code == 403
        assert response.get_json()["error"]["message"] == (
            "The current password is incorrect."
        )

    def test_weak_new_password_is_422_naming_the_field(self, client, factory):
        owner = factory.owner()

        response = _change(client, owner, new="password1234")

        assert response.status_code == 422
        assert response.get_json()["error"]["fields"] == {
            "new_password": [TOO_GUESSABLE]
        }

    def test_change_requires_a_token(self, client):
        response = client.post(
            "/api/v1/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        )

        assert response.status_code == 401


class TestReset:
    def test_known_and_unknown_email_get_the_same_202(self, client, factory):
        owner = factory.owner()
        stranger = unique_email()

        known = _request_reset(client, owner.email)
        unknown = _request_reset(client, stranger)

        assert known.status_code == unknown.status_code == 202
        assert known.get_json() == unknown.get_json()
        assert len(read_mail(owner.email)) == 1
        assert read_mail(stranger) == []

    def test_confirm_sets_password_and_ends_every_session(self, client, factory):
        owner = factory.owner()
        other = login(client, owner.email)
        _request_reset(client, owner.email)

        response = _confirm(client, _reset_token(owner.email))

        assert response.status_code == 204
        for access, refresh in [
            (owner.access_token, owner.refresh_token),
            (other["access_token"], other["refresh_token"]),
        ]:
            assert _me(client, access).status_code == 401
            assert _refresh(client, refresh).status_code == 401
        assert login(client, owner.email, NEW_PASSWORD)["access_token"]

    def test_token_works_only_once(self, client, factory):
        owner = factory.owner()
        _request_reset(client, owner.email)
        token = _reset_token(owner.email)

        first = _confirm(client, token)
        second = _confirm(client, token, password="another fine passphrase")

        assert first.status_code == 204
        assert second.status_code == 400
        assert second.get_json()["error"]["code"] == "invalid_reset_token"
        assert login(client, owner.email, NEW_PASSWORD)["access_token"]

    def test_expired_token_is_rejected(self, client, factory, db_conn):
        owner = factory.owner()
        _request_reset(client, owner.email)
        token = _reset_token(owner.email)
        db_conn.execute(
            "UPDATE password_reset_tokens SET expires_at = now() - interval '1 s'"
            " WHERE token_hash = %s",
            (hashlib.sha256(token.encode()).digest(),),
        )

        response = _confirm(client, token)

        assert response.status_code == 400
        assert login(client, owner.email)["access_token"]

    def test_token_expires_after_the_configured_time(self, make_app, factory, db_conn):
        app = make_app(PASSWORD_RESET_TTL_SECONDS="120")
        owner = factory.owner()

        app.test_client().post(f"{AUTH}/password-reset", json={"email": owner.email})

        lifetime = db_conn.execute(
            "SELECT extract(epoch FROM expires_at - created_at)"
            " FROM password_reset_tokens WHERE user_id = %s",
            (owner.id,),
        ).fetchone()[0]
        assert lifetime == 120

    def test_token_is_stored_only_as_its_hash(self, client, factory, db_conn):
        owner = factory.owner()
        _request_reset(client, owner.email)
        token = _reset_token(owner.email)

        stored = db_conn.execute(
            "SELECT token_hash FROM password_reset_tokens WHERE user_id = %s",
            (owner.id,),
        ).fetchall()

        assert stored == [(hashlib.sha256(token.encode()).digest(),)]

    def test_new_request_voids_the_earlier_token(self, client, factory):
        owner = factory.owner()
        _request_reset(client, owner.email)
        first = _reset_token(owner.email)
        _request_reset(client, owner.email)
        second = _reset_token(owner.email)

        assert _confirm(client, first).status_code == 400
        assert _confirm(client, second).status_code == 204

    def test_password_change_voids_pending_token(self, client, factory):
        owner = factory.owner()
        _request_reset(client, owner.email)
        token = _reset_token(owner.email)

        assert _change(client, owner).status_code == 204

        assert (
            _confirm(client, token, password="another fine passphrase").status_code
            == 400
        )

    def test_weak_password_keeps_the_token_usable(self, client, factory):
        owner = factory.owner()
        _request_reset(client, owner.email)
        token = _reset_token(owner.email)

        weak = _confirm(client, token, password="password1234")
        strong = _confirm(client, token)

        assert weak.status_code == 422
        assert weak.get_json()["error"]["fields"] == {"password": [TOO_GUESSABLE]}
        assert strong.status_code == 204

    def test_reset_unlocks_a_locked_account(self, client, factory, db_conn):
        owner = factory.owner()
        db_conn.execute(
            "UPDATE users SET failed_login_count = 9,"
            " locked_until = now() + interval '1 hour' WHERE id = %s",
            (owner.id,),
        )
        _request_reset(client, owner.email)

        assert _confirm(client, _reset_token(owner.email)).status_code == 204

        assert login(client, owner.email, NEW_PASSWORD)["access_token"]

    def test_deactivated_user_gets_no_mail(self, client, factory):
        owner = factory.owner()
        member = factory.user(owner, "member")
        client.patch(
            f"/api/v1/users/{member.id}",
            json={"is_active": False},
            headers=owner.headers,
        )

        response = _request_reset(client, member.email)

        assert response.status_code == 202
        assert read_mail(member.email) == []

    def test_reset_link_carries_token_in_fragment(self, make_app, factory):
        app = make_app(PASSWORD_RESET_URL="https://app.example.com/reset")
        owner = factory.owner()

        app.test_client().post(f"{AUTH}/password-reset", json={"email": owner.email})

        body = read_mail(owner.email)[-1].get_content()
        assert re.search(r"https://app\.example\.com/reset#[\w-]{43}\n", body)
