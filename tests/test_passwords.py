"""Password hashing, the hashing bulkhead and the password policy."""

from __future__ import annotations

import secrets
import time

import pytest
from passlib.hash import bcrypt, bcrypt_sha256

from bastion.errors import ServiceUnavailableError
from bastion.passwords import (
    TOO_GUESSABLE,
    TOO_LONG,
    TOO_PERSONAL,
    TOO_SHORT,
    PasswordHasher,
    password_problem,
)
from tests.conftest import PASSWORD


@pytest.fixture(scope="module")
def hasher():
    return PasswordHasher(rounds=4)


@pytest.mark.parametrize("length", [73, 100])
def test_long_password_and_its_72_byte_prefix_differ(hasher, length):
    password = ("Zq7!" * 30)[:length]
    assert len(password.encode()) == length
    stored = hasher.hash(password)

    assert hasher.verify(password, stored)[0]
    assert not hasher.verify(password[:72], stored)[0]


def test_multibyte_password_past_72_bytes_is_not_truncated(hasher):
    password = "ü" * 50  # 100 bytes in UTF-8
    stored = hasher.hash(password)

    assert not hasher.verify("ü" * 36, stored)[0]


def test_hash_at_lower_cost_is_replaced_on_verify():
    old = PasswordHasher(rounds=4).hash("an old passphrase here")
    hasher = PasswordHasher(rounds=5)

    matches, new_hash = hasher.verify("an old passphrase here", old)

    assert matches
    assert new_hash is not None
    assert bcrypt_sha256.from_string(new_hash).rounds == 5


def test_plain_bcrypt_hash_is_replaced_with_bcrypt_sha256(hasher):
    old = bcrypt.using(rounds=4).hash("an old passphrase here")

    matches, new_hash = hasher.verify("an old passphrase here", old)

    assert matches
    assert new_hash is not None
    assert bcrypt_sha256.identify(new_hash)


def test_current_hash_is_kept(hasher):
    stored = hasher.hash("a current passphrase")

    assert hasher.verify("a current passphrase", stored) == (True, None)


@pytest.mark.parametrize(
    "password",
    [
        "password1234",
        "Password1234",
        "qwertyuiop12",
        "aaaaaaaaaaaa",
        "123456789012",
        "iloveyou1234",
        "P@ssw0rd2024!",
        "abcdefghijklmnop",
        "1q2w3e4r5t6y7u8i",
    ],
)
def test_policy_rejects_common_and_patterned_passwords(password):
    assert password_problem(password) == TOO_GUESSABLE


def test_policy_rejects_the_users_own_name_and_email():
    password = "quokkazanzibar1"
    assert password_problem(password) is None

    problem = password_problem(
        password, user_inputs=["quokkazanzibar@example.com", "Ada"]
    )

    assert problem in {TOO_GUESSABLE, TOO_PERSONAL}


QUENTIN = ["quentin.blackwood@example.com", "Quentin Blackwood", "Acme"]


@pytest.mark.parametrize(
    "password",
    [
        "quentin.blackwood@example.com",
        "quentin.blackwood",
        "blackwood quentin",
        "Acme quentin blackwood",
        "QuentinBlackwood2024",
    ],
)
def test_policy_rejects_passwords_built_from_personal_words(password):
    assert password_problem(password, user_inputs=QUENTIN) == TOO_PERSONAL


def test_policy_accepts_personal_word_among_uncommon_ones():
    password = "quentin grills marmalade otters"

    assert password_problem(password, user_inputs=QUENTIN) is None


@pytest.mark.parametrize(
    ("password", "problem"),
    [("Zq7!xw9#Lm2", TOO_SHORT), ("Zq7!xw9#Lm2$" * 86, TOO_LONG)],
)
def test_policy_length_bounds(password, problem):
    assert password_problem(password) == problem


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "Zq7!xw9#Lm2$",
        secrets.token_urlsafe(24),
        # 1,024 characters; only the first 16 are scored.
        ("!$%(+0123456789<@[{|" * 52)[:1024],
    ],
)
def test_policy_accepts_strong_passwords_up_to_the_maximum(password):
    assert password_problem(password) is None


def test_hasher_refuses_beyond_cap_without_waiting():
    hasher = PasswordHasher(4, max_concurrent=2)

    with hasher.slot(), hasher.slot():
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableError) as raised:
            hasher.hash(PASSWORD)
        waited = time.monotonic() - started

    assert raised.value.headers == {"Retry-After": "1"}
    assert waited < 0.5
    assert hasher.verify(PASSWORD, hasher.hash(PASSWORD))[0] is True


def test_slot_is_released_after_a_failure():
    hasher = PasswordHasher(4, max_concurrent=1)

    with pytest.raises(ValueError), hasher.slot():
        raise ValueError("boom")

    assert hasher.hash(PASSWORD).startswith("$bcrypt-sha256$")


def test_login_is_503_when_every_hash_slot_is_taken(make_app, factory):
    owner = factory.owner()
    app = make_app(PASSWORD_HASH_CONCURRENCY="1")
    client = app.test_client()
    hasher = app.extensions["bastion"].sessions.hasher
    body = {"email": owner.email, "password": PASSWORD}

    with hasher.slot():
        busy = client.post("/api/v1/auth/login", json=body)
        unknown = client.post(
            "/api/v1/auth/login", json={**body, "email": "nobody@example.com"}
        )
        other_route = client.get("/healthz")
    after = client.post("/api/v1/auth/login", json=body)

    for response in (busy, unknown):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.get_json()["error"]["code"] == "service_unavailable"
    assert other_route.status_code == 200
    assert after.status_code == 200


def test_signup_is_503_when_every_hash_slot_is_taken(make_app):
    app = make_app(PASSWORD_HASH_CONCURRENCY="1")
    client = app.test_client()

    with app.extensions["bastion"].accounts.hasher.slot():
        response = client.post(
            "/api/v1/auth/signup",
            json={
                "account_name": "Busy",
                "name": "Ada",
                "email": "busy@example.com",
                "password": PASSWORD,
            },
        )

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
