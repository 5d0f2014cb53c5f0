"""Sign-up, login, tokens, refresh rotation and logout."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import statistics
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from passlib.hash import bcrypt as passlib_bcrypt
from passlib.hash import bcrypt_sha256

from tests.conftest import PASSWORD, login, random_client_address, unique_email

AUTH = "/api/v1/auth"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signing_key(app):
    return app.extensions["bastion"].key_ring.signing_key()


def _claims(member, app, **overrides):
    settings = app.extensions["bastion"].settings
    payload = json.loads(
        base64.urlsafe_b64decode(member.access_token.split(".")[1] + "==")
    )
    payload.update({"iss": settings.jwt_issuer, "aud": settings.jwt_audience})
    payload.update(overrides)
    return payload


def _sign(app, payload, **headers):
    key = _signing_key(app)
    return jwt.encode(
        payload, key.private_key, algorithm="ES256", headers={"kid": key.kid, **headers}
    )


def _me(client, token):
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def _assert_unauthorized(response):
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_signup_creates_account_and_owner(client):
    email = unique_email()
    response = client.post(
        f"{AUTH}/signup",
        json={
            "account_name": "Acme",
            "name": "Ada",
            "email": email,
            "password": PASSWORD,
        },
    )

    assert response.status_code == 201
    body = response.get_json()
    assert body["account"]["name"] == "Acme"
    assert body["user"]["role"] == "owner"
    assert body["user"]["email"] == email


def test_signup_switched_off_is_404(make_app):
    app = make_app(SIGNUP_ENABLED="false")

    response = app.test_client().post(
        f"{AUTH}/signup",
        json={
            "account_name": "A",
            "name": "B",
            "email": unique_email(),
            "password": PASSWORD,
        },
    )

    assert response.status_code == 404


def test_login_returns_bearer_pair(client, factory):
    owner = factory.owner()

    body = login(client, owner.email)

    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["refresh_token"]
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "ES256"


def test_login_unknown_email_and_wrong_password_give_identical_401(client, factory):
    owner = factory.owner()

    unknown = client.post(
        f"{AUTH}/login", json={"email": unique_email(), "password": PASSWORD}
    )
    wrong = client.post(
        f"{AUTH}/login", json={"email": owner.email, "password": PASSWORD + "x"}
    )

    assert unknown.status_code == wrong.status_code == 401
    unknown_error = unknown.get_json()["error"]
    wrong_error = wrong.get_json()["error"]
    unknown_error.pop("request_id")
    wrong_error.pop("request_id")
    assert unknown_error == wrong_error


def test_login_email_is_case_insensitive(client, factory):
    owner = factory.owner()

    assert "access_token" in login(client, owner.email.upper())


def test_repeated_failures_lock_the_account_with_the_same_401(client, factory):
    owner = factory.owner()
    for _ in range(5):
        client.post(
            f"{AUTH}/login", json={"email": owner.email, "password": "wrong password!"}
        )

    response = client.post(
        f"{AUTH}/login", json={"email": owner.email, "password": PASSWORD}
    )

    _assert_unauthorized(response)
    assert (
        response.get_json()["error"]["message"] == "The email or password is incorrect."
    )


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer abc", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "bearer x y"],
)
def test_malformed_authorization_header_is_401(client, header):
    response = client.get("/api/v1/me", headers={"Authorization": header})

    _assert_unauthorized(response)


def test_missing_token_is_401(client):
    _assert_unauthorized(client.get("/api/v1/contacts"))


class TestForgedTokens:
    def test_alg_none_is_401(self, client, app, factory):
        member = factory.owner()
        header = {"alg": "none", "typ": "JWT", "kid": _signing_key(app).kid}
        encoded_header = _b64(json.dumps(header).encode())
        encoded_claims = _b64(json.dumps(_claims(member, app)).encode())
        token = f"{encoded_header}.{encoded_claims}."

        _assert_unauthorized(_me(client, token))

    def test_hs256_signed_with_public_key_is_401(self, client, app, factory):
        member = factory.owner()
        key = _signing_key(app)
        public_pem = key.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = _b64(
            json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode()
        )
        body = _b64(json.dumps(_claims(member, app)).encode())
        signature = hmac.new(
            public_pem, f"{header}.{body}".encode(), hashlib.sha256
        ).digest()

        _assert_unauthorized(_me(client, f"{header}.{body}.{_b64(signature)}"))

    def test_unknown_kid_is_401(self, client, app, factory):
        member = factory.owner()
        stranger = ec.generate_private_key(ec.SECP256R1())
        token = jwt.encode(
            _claims(member, app), stranger, algorithm="ES256", headers={"kid": "nope"}
        )

        _assert_unauthorized(_me(client, token))

    def test_known_kid_with_foreign_signature_is_401(self, client, app, factory):
        member = factory.owner()
        stranger = ec.generate_private_key(ec.SECP256R1())
        token = jwt.encode(
            _claims(member, app),
            stranger,
            algorithm="ES256",
            headers={"kid": _signing_key(app).kid},
        )

        _assert_unauthorized(_me(client, token))

    @pytest.mark.parametrize("claim", ["iss", "aud"])
    def test_wrong_issuer_or_audience_is_401(self, client, app, factory, claim):
        member = factory.owner()

        token = _sign(app, _claims(member, app, **{claim: "someone-else"}))

        _assert_unauthorized(_me(client, token))

    def test_correctly_signed_token_is_accepted(self, client, app, factory):
        member = factory.owner()

        response = _me(client, _sign(app, _claims(member, app)))

        assert response.status_code == 200

    def test_expired_token_is_401(self, client, app, factory):
        member = factory.owner()
        now = int(time.time())

        token = _sign(
            app, _claims(member, app, iat=now - 120, nbf=now - 120, exp=now - 60)
        )

        _assert_unauthorized(_me(client, token))

    def test_tampered_payload_is_401(self, client, app, factory):
        member = factory.owner()
        other = factory.owner()
        header, _, signature = member.access_token.split(".")
        payload = _b64(json.dumps(_claims(member, app, sub=other.id)).encode())

        _assert_unauthorized(_me(client, f"{header}.{payload}.{signature}"))

    def test_token_signed_by_retired_key_is_401(self, client, app, factory):
        keys = app.extensions["bastion"].keys
        new_kid = keys.rotate_key()
        member = factory.owner()
        assert jwt.get_unverified_header(member.access_token)["kid"] == new_kid
        assert _me(client, member.access_token).status_code == 200

        keys.retire_key(new_kid)

        _assert_unauthorized(_me(client, member.access_token))


class TestRefresh:
    def test_refresh_rotates_the_pair(self, client, factory):
        owner = factory.owner()

        response = client.post(
            f"{AUTH}/refresh", json={"refresh_token": owner.refresh_token}
        )

        assert response.status_code == 200
        body = response.get_json()
        assert body["refresh_token"] != owner.refresh_token
        assert _me(client, body["access_token"]).status_code == 200

    def test_reused_refresh_token_revokes_the_family(self, client, factory, db_conn):
        owner = factory.owner()
        first = client.post(
            f"{AUTH}/refresh", json={"refresh_token": owner.refresh_token}
        ).get_json()

        reuse = client.post(
            f"{AUTH}/refresh", json={"refresh_token": owner.refresh_token}
        )

        _assert_unauthorized(reuse)
        _assert_unauthorized(
            client.post(
                f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]}
            )
        )
        _assert_unauthorized(_me(client, first["access_token"]))
        _assert_unauthorized(_me(client, owner.access_token))
        events = db_conn.execute(
            "SELECT count(*) FROM audit_events"
            " WHERE action = 'refresh_token.reused' AND actor_id = %s",
            (owner.id,),
        ).fetchone()
        assert events == (1,)

    def test_reuse_leaves_other_sessions_alive(self, client, factory):
        owner = factory.owner()
        other_session = login(client, owner.email)
        client.post(f"{AUTH}/refresh", json={"refresh_token": owner.refresh_token})

        client.post(f"{AUTH}/refresh", json={"refresh_token": owner.refresh_token})

        assert _me(client, other_session["access_token"]).status_code == 200

    def test_unknown_refresh_token_is_401(self, client):
        _assert_unauthorized(
            client.post(f"{AUTH}/refresh", json={"refresh_token": "x" * 43})
        )


def test_logout_revokes_access_and_refresh_tokens(client, factory):
    owner = factory.owner()

    response = client.post(f"{AUTH}/logout", headers=owner.headers)

    assert response.status_code == 204
    _assert_unauthorized(_me(client, owner.access_token))
    _assert_unauthorized(
        client.post(f"{AUTH}/refresh", json={"refresh_token": owner.refresh_token})
    )


def test_jwks_publishes_the_signing_key(client, app):
    response = client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    kids = {key["kid"] for key in response.get_json()["keys"]}
    assert _signing_key(app).kid in kids
    assert all("d" not in key for key in response.get_json()["keys"])


def test_lockout_survives_a_very_long_failure_run(client, factory, db_conn):
    owner = factory.owner()
    db_conn.execute(
        "UPDATE users SET failed_login_count = 1023,"
        " locked_until = now() - interval '1 second' WHERE id = %s",
        (owner.id,),
    )

    statuses = [
        client.post(
            f"{AUTH}/login", json={"email": owner.email, "password": "wrong password!"}
        ).status_code
        for _ in range(3)
    ]

    assert statuses == [401, 401, 401]
    locked = db_conn.execute(
        "SELECT locked_until > now() + interval '50 minutes' FROM users WHERE id = %s",
        (owner.id,),
    ).fetchone()
    assert locked == (True,)
    failures = db_conn.execute(
        "SELECT count(*) FROM audit_events WHERE action = 'login.failed'"
        " AND target_id = %s",
        (owner.id,),
    ).fetchone()
    assert failures == (3,)


class TestPasswordHashing:
    @pytest.mark.parametrize("length", [73, 100])
    def test_72_byte_prefix_of_a_long_password_does_not_log_in(self, client, length):
        password = ("velvet orbit lantern quarry " * 4)[:length]
        email = unique_email()
        client.post(
            f"{AUTH}/signup",
            json={
                "account_name": "A",
                "name": "B",
                "email": email,
                "password": password,
            },
        )

        prefix = client.post(
            f"{AUTH}/login", json={"email": email, "password": password[:72]}
        )

        _assert_unauthorized(prefix)
        assert login(client, email, password)["access_token"]

    def test_hash_at_older_cost_is_upgraded_at_login(
        self, client, factory, make_app, db_conn
    ):
        owner = factory.owner()
        stronger = make_app(BCRYPT_ROUNDS="5")

        login(stronger.test_client(), owner.email)

        stored = db_conn.execute(
            "SELECT password_hash FROM users WHERE id = %s", (owner.id,)
        ).fetchone()[0]
        assert bcrypt_sha256.from_string(stored).rounds == 5
        assert login(client, owner.email)["access_token"]

    def test_plain_bcrypt_hash_is_upgraded_at_login(self, client, factory, db_conn):
        owner = factory.owner()
        db_conn.execute(
            "UPDATE users SET password_hash = %s WHERE id = %s",
            (passlib_bcrypt.using(rounds=4).hash(PASSWORD), owner.id),
        )

        login(client, owner.email)

        stored = db_conn.execute(
            "SELECT password_hash FROM users WHERE id = %s", (owner.id,)
        ).fetchone()[0]
        assert bcrypt_sha256.identify(stored)
        assert login(client, owner.email)["access_token"]

    def test_unknown_email_and_wrong_password_take_about_as_long(self, make_app):
        # A bcrypt cost where one hash clearly outweighs the database work,
        # so a path that skipped hashing would stand out.
        app = make_app(BCRYPT_ROUNDS="9")
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = random_client_address()
        email = unique_email()
        client.post(
            f"{AUTH}/signup",
            json={
                "account_name": "A",
                "name": "B",
                "email": email,
                "password": PASSWORD,
            },
        )
        hasher = app.extensions["bastion"].accounts.hasher
        hash_times = []
        for _ in range(5):
            started = time.perf_counter()
            hasher.verify_dummy(PASSWORD)
            hash_times.append(time.perf_counter() - started)
        hash_seconds = statistics.median(hash_times)

        def timed(login_email):
            started = time.perf_counter()
            response = client.post(
                f"{AUTH}/login", json={"email": login_email, "password": "x" * 16}
            )
            assert response.status_code == 401
            return time.perf_counter() - started

        unknown, wrong = [], []
        for _ in range(9):
            unknown.append(timed(unique_email()))
            wrong.append(timed(email))

        difference = abs(statistics.median(unknown) - statistics.median(wrong))
        assert difference < hash_seconds / 2, (difference, hash_seconds)


def test_login_without_usable_key_is_503_and_records_nothing(
    make_app, factory, db_conn
):
    owner = factory.owner()
    # Another key-encryption key cannot decrypt any stored signing key.
    app = make_app(JWT_KEY_ENCRYPTION_KEY="z" * 40)
    client = app.test_client()

    response = client.post(
        f"{AUTH}/login", json={"email": owner.email, "password": PASSWORD}
    )

    assert response.status_code == 503
    assert client.get("/readyz").status_code == 503
    successes = db_conn.execute(
        "SELECT count(*) FROM audit_events WHERE action = 'login.succeeded'"
        " AND target_id = %s",
        (owner.id,),
    ).fetchone()
    assert successes == (1,)


def test_logout_with_a_body_is_400(client, factory):
    owner = factory.owner()

    response = client.post(
        f"{AUTH}/logout", json={"refresh_token": "x"}, headers=owner.headers
    )

    assert response.status_code == 400
    assert _me(client, owner.access_token).status_code == 200
