"""Two app instances on one database see each other's key changes."""

from __future__ import annotations

import time

import jwt

from tests.conftest import login, random_client_address

CACHE_SECONDS = 1


def _client(app):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = random_client_address()
    return client


def _me(client, token):
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def test_rotation_on_one_instance_reaches_the_other(make_app, factory):
    first = make_app(SIGNING_KEY_CACHE_SECONDS=str(CACHE_SECONDS))
    second = make_app(SIGNING_KEY_CACHE_SECONDS=str(CACHE_SECONDS))
    owner = factory.owner()
    second_client = _client(second)
    old_kid = second.extensions["bastion"].key_ring.signing_key().kid

    new_kid = first.extensions["bastion"].keys.rotate_key()
    first_token = login(_client(first), owner.email)["access_token"]
    time.sleep(CACHE_SECONDS + 0.2)

    second_token = login(second_client, owner.email)["access_token"]
    assert new_kid != old_kid
    assert jwt.get_unverified_header(first_token)["kid"] == new_kid
    assert jwt.get_unverified_header(second_token)["kid"] == new_kid
    assert _me(second_client, first_token).status_code == 200

    first.extensions["bastion"].keys.retire_key(new_kid)
    time.sleep(CACHE_SECONDS + 0.2)
    assert _me(second_client, second_token).status_code == 401
