"""Fixtures for fault tests: gunicorn on the test database, and an account."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest
import requests

from tests.conftest import PASSWORD
from tests.processes import Gunicorn


@dataclass
class Tenant:
    """An owner signed up over HTTP, with a live access token."""

    base_url: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def api(self) -> str:
        return f"{self.base_url}/api/v1"

    def create_contact(self, **fields: str) -> dict:
        body = {"name": "Fault", "email": f"c-{secrets.token_hex(6)}@example.com"}
        response = requests.post(
            f"{self.api}/contacts",
            json={**body, **fields},
            headers=self.headers,
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return response.json()


def sign_up(base_url: str) -> Tenant:
    email = f"fault-{secrets.token_hex(6)}@example.com"
    api = f"{base_url}/api/v1"
    signup = requests.post(
        f"{api}/auth/signup",
        json={
            "account_name": "Faults",
            "name": "Op",
            "email": email,
            "password": PASSWORD,
        },
        timeout=10,
    )
    assert signup.status_code == 201, signup.text
    login = requests.post(
        f"{api}/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert login.status_code == 200, login.text
    return Tenant(base_url, email, login.json()["access_token"])


@pytest.fixture()
def start_gunicorn(app, database_url, tmp_path):
    """Start gunicorn on the test database; every server stops afterwards."""
    started: list[Gunicorn] = []
    key = app.extensions["bastion"].settings.jwt_key_encryption_key

    def start(**env: str) -> Gunicorn:
        server = Gunicorn(
            tmp_path / f"gunicorn-{len(started)}.log",
            DATABASE_URL=database_url,
            JWT_KEY_ENCRYPTION_KEY=key,
            **env,
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


_FIGURES: list[tuple[str, dict]] = []


@pytest.fixture()
def report(request):
    """Record figures a fault test observed; they print after the run."""

    def add(**figures) -> None:
        _FIGURES.append((request.node.name, figures))

    return add


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("fault test figures")
    for name, figures in _FIGURES:
        values = ", ".join(f"{key}={value}" for key, value in figures.items())
        terminalreporter.write_line(f"{name}: {values}")
