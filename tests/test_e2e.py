"""The real gunicorn, started from gunicorn.conf.py, serving the walk-through."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            # The socket accepts connections before a worker has booted, so
            # an early request can time out as well as be refused.
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout} s")


@pytest.fixture()
def server(app, database_url, tmp_path):
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.endswith("_FILE")}
    env = {
        **inherited,
        "BASTION_ENV": "test",
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "JWT_KEY_ENCRYPTION_KEY": app.extensions[
            "bastion"
        ].settings.jwt_key_encryption_key,
        "BCRYPT_ROUNDS": "4",
        "PORT": str(port),
        "GUNICORN_WORKERS": "2",
    }
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{base}/readyz", process)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


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
