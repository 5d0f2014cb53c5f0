"""Fixtures for fault tests: gunicorn on the test database, and an account."""

from __future__ import annotations

import pytest

from tests.processes import Gunicorn


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
