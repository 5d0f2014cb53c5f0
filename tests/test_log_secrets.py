"""No secret reaches the logs: whole flows against gunicorn at DEBUG level."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time

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


# The identity flow: sign-up, login, refresh and its reuse, password
# change, reset with the mailed token, and logout.
PASSWORDS = [
    "velvet orbit lantern quarry",
    "amber falcon seventy harbor",
    "copper meadow winter signal",
]
WRONG_PASSWORD = "plaster ninety orchid verbs"


@pytest.fixture()
def identity_server(app, database_url, tmp_path):
    outbox = tmp_path / "outbox"
    server = Gunicorn(
        tmp_path / "gunicorn.log",
        DATABASE_URL=database_url,
        JWT_KEY_ENCRYPTION_KEY=app.extensions[
            "bastion"
        ].settings.jwt_key_encryption_key,
        LOG_LEVEL="DEBUG",
        GUNICORN_LOGLEVEL="debug",
        MAIL_BACKEND="file",
        MAIL_OUTBOX_DIR=str(outbox),
    ).start()
    yield server, outbox
    server.stop()


def _read_reset_token(outbox, deadline_seconds=10):
    # The mail is written after the response, so it may lag a moment.
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        files = list(outbox.glob("*.eml"))
        if files:
            match = re.search(r"reset token: (\S+)", files[0].read_text())
            assert match is not None
            return match.group(1)
        time.sleep(0.05)
    raise AssertionError("no reset mail in the outbox")


def _stored_hash(db_conn, email):
    return db_conn.execute(
        "SELECT password_hash FROM users WHERE email = %s", (email,)
    ).fetchone()[0]


def test_identity_flow_logs_no_secret(identity_server, db_conn):
    server, outbox = identity_server
    api = f"{server.base_url}/api/v1"
    email = f"logs-{secrets.token_hex(4)}@example.com"
    http = requests.Session()
    secrets_used = [*PASSWORDS, WRONG_PASSWORD]
    hashes = []

    def post(path, body=None, token=None, expected=200):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = http.post(f"{api}{path}", json=body, headers=headers, timeout=10)
        assert response.status_code == expected, response.text
        return response.json() if response.content else None

    post(
        "/auth/signup",
        {
            "account_name": "Logs",
            "name": "Ada",
            "email": email,
            "password": PASSWORDS[0],
        },
        expected=201,
    )
    hashes.append(_stored_hash(db_conn, email))
    post("/auth/login", {"email": email, "password": WRONG_PASSWORD}, expected=401)
    first = post("/auth/login", {"email": email, "password": PASSWORDS[0]})
    second = post("/auth/refresh", {"refresh_token": first["refresh_token"]})
    post("/auth/refresh", {"refresh_token": first["refresh_token"]}, expected=401)
    third = post("/auth/login", {"email": email, "password": PASSWORDS[0]})
    post(
        "/me/password",
        {"current_password": PASSWORDS[0], "new_password": PASSWORDS[1]},
        token=third["access_token"],
        expected=204,
    )
    hashes.append(_stored_hash(db_conn, email))
    post("/auth/password-reset", {"email": email}, expected=202)
    reset_token = _read_reset_token(outbox)
    post(
        "/auth/password-reset/confirm",
        {"token": reset_token, "password": PASSWORDS[2]},
        expected=204,
    )
    hashes.append(_stored_hash(db_conn, email))
    post(
        "/auth/password-reset/confirm",
        {"token": reset_token, "password": PASSWORDS[2]},
        expected=400,
    )
    fourth = post("/auth/login", {"email": email, "password": PASSWORDS[2]})
    assert http.get(
        f"{api}/me",
        headers={"Authorization": f"Bearer {fourth['access_token']}"},
        timeout=10,
    ).ok
    post("/auth/logout", token=fourth["access_token"], expected=204)
    # Stopping the server flushes the log lines of the last requests.
    server.stop()

    tokens = [reset_token]
    for pair in (first, second, third, fourth):
        tokens += [pair["access_token"], pair["refresh_token"]]
        # The signature alone would be enough to replay a token.
        tokens.append(pair["access_token"].rsplit(".", 1)[1])
    digests = [hashlib.sha256(token.encode()).hexdigest() for token in tokens]
    log = server.log_text()

    assert len(server.log_records("request")) >= 12, "the request log is missing"
    for secret in [*secrets_used, *tokens, *hashes, *digests]:
        assert secret not in log, f"a secret appears in the log: {secret[:6]}..."
    assert "Bearer" not in log
    assert not re.search(r"\$2[aby]?\$\d\d\$|\$bcrypt-sha256\$", log)
