"""No secret reaches the logs: a whole flow against gunicorn at DEBUG level."""

from __future__ import annotations

import base64
import secrets

import pytest
import requests

from tests.processes import Gunicorn, unique_email


@pytest.fixture()
def debug_server(app, database_url, tmp_path):
    server = Gunicorn(
        tmp_path / "gunicorn.log",
        DATABASE_URL=database_url,
        JWT_KEY_ENCRYPTION_KEY=app.extensions[
            "bastion"
        ].settings.jwt_key_encryption_key,
        LOG_LEVEL="DEBUG",
        GUNICORN_LOGLEVEL="debug",
        TRUSTED_PROXY_COUNT="1",
    ).start()
    yield server
    server.stop()


def _secret(label: str) -> str:
    return f"{label}-{secrets.token_urlsafe(12)}"


def test_flow_logs_no_secret(debug_server, db_conn):
    api = f"{debug_server.base_url}/api/v1"
    owner_email, member_email = unique_email("owner"), unique_email("member")
    owner_password, member_password = _secret("ownerpw"), _secret("memberpw")
    wrong_password, unknown_password = _secret("wrongpw"), _secret("unknownpw")
    rejected_password, broken_json_password = _secret("badrole"), _secret("brokenpw")
    forged_token, basic_password = _secret("forged"), _secret("basicpw")
    used = [owner_password, member_password, wrong_password, unknown_password]
    used += [rejected_password, broken_json_password, forged_token, basic_password]

    def post(path, body, headers=None, expected=None):
        response = requests.post(f"{api}{path}", json=body, headers=headers, timeout=10)
        if expected is not None:
            assert response.status_code == expected, response.text
        return response

    post(
        "/auth/signup",
        {
            "account_name": "Secrets",
            "name": "Owner",
            "email": owner_email,
            "password": owner_password,
        },
        expected=201,
    )
    first = post(
        "/auth/login", {"email": owner_email, "password": owner_password}, expected=200
    ).json()
    second = post(
        "/auth/refresh", {"refresh_token": first["refresh_token"]}, expected=200
    ).json()
    post("/auth/refresh", {"refresh_token": first["refresh_token"]}, expected=401)
    third = post(
        "/auth/login", {"email": owner_email, "password": owner_password}, expected=200
    ).json()
    tokens = [first, second, third]
    used += [t[name] for t in tokens for name in ("access_token", "refresh_token")]
    auth = {"Authorization": f"Bearer {third['access_token']}"}

    assert requests.get(f"{api}/me", headers=auth, timeout=10).status_code == 200
    post(
        "/users",
        {
            "name": "M",
            "email": member_email,
            "role": "member",
            "password": member_password,
        },
        headers=auth,
        expected=201,
    )
    post(
        "/users",
        {
            "name": "X",
            "email": unique_email(),
            "role": "bogus",
            "password": rejected_password,
        },
        headers=auth,
        expected=422,
    )
    post(
        "/auth/login", {"email": member_email, "password": wrong_password}, expected=401
    )
    post(
        "/auth/login",
        {"email": unique_email("nobody"), "password": unknown_password},
        expected=401,
    )
    contact = post("/contacts", {"name": "C", "email": "c@example.com"}, auth, 201)
    post("/contacts", {"name": "C", "email": "c@example.com"}, auth, 409)
    stale = requests.patch(
        f"{api}/contacts/{contact.json()['id']}",
        json={"name": "D"},
        headers={**auth, "If-Match": '"9"'},
        timeout=10,
    )
    assert stale.status_code == 412
    broken = requests.post(
        f"{api}/auth/login",
        data=f'{{"email": "{owner_email}", "password": "{broken_json_password}"',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert broken.status_code == 400
    for header in (
        f"Bearer {forged_token}",
        "Basic "
        + base64.b64encode(f"{owner_email}:{basic_password}".encode()).decode(),
    ):
        response = requests.get(
            f"{api}/me", headers={"Authorization": header}, timeout=10
        )
        assert response.status_code == 401
    debug_server.stop()

    hashes = [
        value
        for (value,) in db_conn.execute(
            "SELECT password_hash FROM users WHERE email IN (%s, %s)",
            (owner_email, member_email),
        )
    ]
    hashes += [
        value
        for (value,) in db_conn.execute(
            "SELECT encode(token_hash, 'hex') FROM refresh_tokens rt "
            "JOIN auth_sessions s ON s.id = rt.session_id "
            "JOIN users u ON u.id = s.user_id WHERE u.email = %s",
            (owner_email,),
        )
    ]
    assert len(hashes) >= 5
    env = debug_server.env
    used += [*hashes, env["SECRET_KEY"], env["JWT_KEY_ENCRYPTION_KEY"]]

    text = debug_server.log_text()
    records = debug_server.log_records()
    routes = {r.get("route") for r in records if r.get("event") == "request"}
    assert {"/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/users"} <= routes
    assert any(r.get("event") == "db_statement" for r in records)
    for secret in used:
        assert secret not in text, f"a secret of {len(secret)} characters is logged"
    # The bcrypt salt and digest without the "$2b$04$" prefix, too.
    for password_hash in hashes[:2]:
        assert password_hash[7:] not in text
