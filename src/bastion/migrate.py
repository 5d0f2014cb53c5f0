"""Schema migrations with yoyo, shared by ``flask db`` and the test suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def with_database(url: str, name: str) -> str:
    """Return ``url`` (a postgresql:// URL) pointing at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def yoyo_backend(url: str) -> Any:
    """Open a yoyo backend on ``url`` through its psycopg 3 driver."""
    from yoyo import get_backend

    scheme, rest = url.split("://", 1)
    if scheme not in {"postgresql", "postgres"}:
        raise ValueError(f"unsupported database URL scheme {scheme!r}")
    return get_backend(f"postgresql+psycopg://{rest}")


def read_all() -> Any:
    from yoyo import read_migrations

    return read_migrations(str(MIGRATIONS_DIR))


def upgrade(url: str) -> list[str]:
    """Apply every pending migration; return the ids applied."""
    backend = yoyo_backend(url)
    with backend.lock():
        pending = backend.to_apply(read_all())
        backend.apply_migrations(pending)
    return [migration.id for migration in pending]


def status(url: str) -> list[tuple[str, bool]]:
    """Return ``(migration id, applied)`` for every migration, in order."""
    backend = yoyo_backend(url)
    applied = backend.get_applied_migration_hashes()
    return [(migration.id, migration.hash in applied) for migration in read_all()]
