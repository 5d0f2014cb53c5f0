"""Readiness follows the database and the schema this release expects."""

from __future__ import annotations

import logging
import shutil

import pytest

from bastion import migrate
from bastion.config import ConfigError


def test_readyz_is_503_while_migrations_are_pending(make_app, scratch_database, caplog):
    url = scratch_database("readyz")
    client = make_app(DATABASE_URL=url).test_client()

    with caplog.at_level(logging.WARNING, logger="bastion.api.ops"):
        pending = client.get("/readyz")
    migrate.upgrade(url)
    client.application.extensions["bastion"].keys.rotate_key()
    ready = client.get("/readyz")

    assert pending.status_code == 503
    assert pending.headers["Retry-After"]
    assert pending.get_json()["error"]["code"] == "service_unavailable"
    failures = [r for r in caplog.records if r.getMessage() == "readiness_failed"]
    assert failures[0].pending == migrate.migration_ids()
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready"}


def test_readyz_ignores_pending_migrations_when_disabled(
    make_app, scratch_database, tmp_path, monkeypatch
):
    url = scratch_database("readyz_off")
    migrate.upgrade(url)
    newer = tmp_path / "newer"
    shutil.copytree(migrate.MIGRATIONS_DIR, newer)
    (newer / "9999.newer-release.sql").write_text(
        "SET lock_timeout = '5s';\nCREATE TABLE newer_things (id int);\n"
    )
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", newer)
    app = make_app(DATABASE_URL=url, READYZ_CHECK_MIGRATIONS="false")
    app.extensions["bastion"].keys.rotate_key()

    assert migrate.status(url)[-1] == ("9999.newer-release", "pending")
    assert app.test_client().get("/readyz").status_code == 200


def test_readyz_ready_on_newer_schema(make_app, scratch_database, tmp_path):
    url = scratch_database("readyz_newer")
    newer = tmp_path / "newer"
    shutil.copytree(migrate.MIGRATIONS_DIR, newer)
    (newer / "9999.newer-release.sql").write_text(
        "SET lock_timeout = '5s';\nCREATE TABLE newer_things (id int);\n"
    )
    migrate.upgrade(url, directory=newer)

    client = make_app(DATABASE_URL=url).test_client()
    client.application.extensions["bastion"].keys.rotate_key()

    assert client.get("/readyz").status_code == 200


def test_readyz_is_503_without_a_usable_signing_key(make_app, scratch_database):
    url = scratch_database("readyz_nokey")
    migrate.upgrade(url)
    app = make_app(DATABASE_URL=url)

    assert app.test_client().get("/readyz").status_code == 503
    app.extensions["bastion"].keys.rotate_key()
    assert app.test_client().get("/readyz").status_code == 200


def test_app_without_migration_files_refuses_to_start(make_app, tmp_path, monkeypatch):
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)

    with pytest.raises(ConfigError, match="READYZ_CHECK_MIGRATIONS"):
        make_app()
    assert make_app(READYZ_CHECK_MIGRATIONS="false") is not None
