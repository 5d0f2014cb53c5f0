"""The cache of verified access tokens never outlives what it caches.

Each test first uses a token once, so that it is in the cache, then
changes what should make it fail, and expects 401 on the next request.
"""

from __future__ import annotations

import time

import jwt
import pytest

from bastion.token_cache import VerifiedTokenCache
from tests.conftest import login

ME = "/api/v1/me"


def _me(client, token):
    return client.get(ME, headers={"Authorization": f"Bearer {token}"})


def _cache(app):
    return app.extensions["flask-jwt-extended"].token_cache


def test_cache_serves_a_used_token(client, app, factory):
    owner = factory.owner()

    assert _me(client, owner.access_token).status_code == 200
    assert _cache(app).get(owner.access_token) is not None
    assert _me(client, owner.access_token).status_code == 200


def test_cached_token_is_401_after_logout(client, factory):
    owner = factory.owner()
    assert _me(client, owner.access_token).status_code == 200

    logout = client.post("/api/v1/auth/logout", headers=owner.headers)
    assert logout.status_code == 204

    assert _me(client, owner.access_token).status_code == 401


def test_cached_token_is_401_after_its_key_retires(client, app, factory):
    keys = app.extensions["bastion"].keys
    new_kid = keys.rotate_key()
    owner = factory.owner()
    assert jwt.get_unverified_header(owner.access_token)["kid"] == new_kid
    assert _me(client, owner.access_token).status_code == 200

    keys.retire_key(new_kid)

    assert _me(client, owner.access_token).status_code == 401


def test_cached_token_is_401_once_expired(app, make_app, factory):
    short = make_app(
        ACCESS_TOKEN_TTL_SECONDS="3",
        JWT_KEY_ENCRYPTION_KEY=app.extensions[
            "bastion"
        ].settings.jwt_key_encryption_key,
    )
    client = short.test_client()
    owner = factory.owner()
    token = login(client, owner.email)["access_token"]
    assert _me(client, token).status_code == 200
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]

    time.sleep(max(0.0, expires_at - time.time()) + 0.1)

    assert _me(client, token).status_code == 401


def test_altered_signature_is_not_served_from_cache(client, factory):
    owner = factory.owner()
    assert _me(client, owner.access_token).status_code == 200
    header, payload, signature = owner.access_token.split(".")
    altered = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")

    assert _me(client, f"{header}.{payload}.{altered}").status_code == 401


@pytest.mark.parametrize("claims", [{"sub": "x"}, {"exp": "soon", "sub": "x"}])
def test_token_without_numeric_expiry_is_not_cached(claims):
    cache = VerifiedTokenCache(4, key_is_active=lambda kid: True)
    token = jwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": "a"})

    cache.put(token, claims)

    assert cache.get(token) is None


def test_cache_keeps_at_most_max_entries():
    cache = VerifiedTokenCache(2, key_is_active=lambda kid: True)
    expires = time.time() + 60
    tokens = [
        jwt.encode({"exp": expires, "n": n}, "k" * 32, headers={"kid": "a"})
        for n in range(3)
    ]

    for token in tokens:
        cache.put(token, {"exp": expires})

    assert len(cache) == 2
    assert cache.get(tokens[0]) is None
    assert cache.get(tokens[2]) is not None
