"""The real gunicorn, started from gunicorn.conf.py, serving the walk-through."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest
import requests

from tests.servers import ROOT, Gunicorn, gunicorn_env

# Fields the gunicorn access line and the app's request line both carry.
SHARED_LOG_FIELDS = (
    "timestamp",
    "level",
    "event",
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "remote_addr",
)


@pytest.fixture()
def instance(app, database_url, tmp_path):
    env = gunicorn_env(
        database_url, app.extensions["bastion"].settings.jwt_key_encryption_key
    )
    gunicorn = Gunicorn(env, tmp_path / "gunicorn.log")
    try:
        gunicorn.start(ready_path="/readyz")
        yield gunicorn
    finally:
        gunicorn.stop()


@pytest.fixture()
def server(instance):
    return instance.base_url


def test_walkthrough_over_http(server):
    api = f"{server}/api/v1"
    email = f"e2e-{secrets.token_hex(4)}@example.com"
    password = "correct horse battery staple"

    signup = requests.post(
        f"{api}/auth/signup",
        json={
            "account_name": "E2E",
            "name": "Ada",
            "email": email,
            "password": password,
        },
        timeout=5,
    )
    assert signup.status_code == 201

    tokens = requests.post(
        f"{api}/auth/login", json={"email": email, "password": password}, timeout=5
    )
    assert tokens.status_code == 200
    headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}

    created = requests.post(
        f"{api}/contacts",
        json={"name": "Grace", "company": "Navy"},
        headers=headers,
        timeout=5,
    )
    assert created.status_code == 201
    location = f"{server}{created.headers['Location']}"

    listed = requests.get(f"{api}/contacts?q=navy", headers=headers, timeout=5)
    assert [item["id"] for item in listed.json()["items"]] == [created.json()["id"]]

    updated = requests.patch(
        location,
        json={"phone": "+1 555 0100"},
        headers={**headers, "If-Match": created.headers["ETag"]},
        timeout=5,
    )
    assert updated.status_code == 200
    assert updated.json()["phone"] == "+1 555 0100"

    deleted = requests.delete(
        location, headers={**headers, "If-Match": updated.headers["ETag"]}, timeout=5
    )
    assert deleted.status_code == 204
    assert requests.get(location, headers=headers, timeout=5).status_code == 404


def test_access_log_is_json_shaped_like_app_log(instance):
    response = requests.get(f"{instance.base_url}/healthz", timeout=5)
    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    instance.stop()

    records = [r for r in instance.log_records() if r.get("request_id") == request_id]
    access = [r for r in records if r["event"] == "access"]
    app_line = [r for r in records if r["event"] == "request"]
    assert len(access) == 1
    assert len(app_line) == 1
    for name in SHARED_LOG_FIELDS:
        assert name in access[0], name
        assert name in app_line[0], name
    for name in ("level", "method", "route", "status", "remote_addr"):
        assert access[0][name] == app_line[0][name], name
    assert access[0]["route"] == "/healthz"
    assert access[0]["duration_ms"] >= 0


def test_forwarded_proto_ignored_without_trusted_proxy(server):
    response = requests.get(
        f"{server}/healthz", headers={"X-Forwarded-Proto": "https"}, timeout=5
    )

    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers


def test_memory_storage_with_workers_warns_outside_production(instance):
    warnings = [
        r
        for r in instance.log_records()
        if r.get("event") == "ratelimit_storage_per_process"
    ]

    assert len(warnings) == 1
    assert warnings[0]["workers"] == 2


def test_production_refuses_memory_storage_with_workers(app, database_url):
    env = gunicorn_env(
        database_url,
        app.extensions["bastion"].settings.jwt_key_encryption_key,
        BASTION_ENV="production",
        BCRYPT_ROUNDS="12",
        PORT="0",
        RATELIMIT_STORAGE_URI="memory://",
        GUNICORN_WORKERS="2",
    )
    finished = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert finished.returncode != 0
    assert "RATELIMIT_STORAGE_URI" in finished.stderr
    assert "Booting worker" not in finished.stderr


def test_invalid_settings_stop_gunicorn_before_workers(app, database_url):
    env = gunicorn_env(
        database_url,
        app.extensions["bastion"].settings.jwt_key_encryption_key,
        TRUSTED_PROXY_COUNT="-1",
        PORT="0",
    )
    finished = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert finished.returncode != 0
    assert "TRUSTED_PROXY_COUNT" in finished.stderr
