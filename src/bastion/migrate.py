"""Schema migrations with yoyo, shared by ``flask db``, readiness and the tests.

Every migration sets a short ``lock_timeout`` (``bastion.migration_files``
checks that), so a migration that cannot get its locks fails fast instead of
queueing behind a long transaction while all traffic queues behind it.
``upgrade`` then retries the migration a bounded number of times with an
exponential backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

# yoyo's default table of applied migrations, one row per migration id.
MIGRATION_TABLE = "_yoyo_migration"

# Errors that a later attempt can get past: the lock wait hit lock_timeout,
# or PostgreSQL broke a deadlock by cancelling the migration.
RETRYABLE_ERRORS: tuple[type[psycopg.Error], ...] = (
    pg_errors.LockNotAvailable,
    pg_errors.DeadlockDetected,
)

DEFAULT_ATTEMPTS = 5
DEFAULT_RETRY_DELAY = 1.0
MAX_RETRY_DELAY = 30.0


class MigrationLockError(Exception):
    """A migration timed out on its locks in every attempt."""


@dataclass(frozen=True)
class Retry:
    """One failed attempt that ``upgrade`` is about to repeat."""

    migration_id: str
    attempt: int
    attempts: int
    delay: float
    error: str


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
    return get_backend(f"postgresql+psycopg://{rest}", migration_table=MIGRATION_TABLE)


def read_all(directory: Path | None = None) -> Any:
    from yoyo import read_migrations

    return read_migrations(str(directory or MIGRATIONS_DIR))


def migration_ids(directory: Path | None = None) -> list[str]:
    """Return the ids of the migrations in ``directory``, in apply order."""
    return [migration.id for migration in read_all(directory)]


def retry_delay_for(attempt: int, first_delay: float) -> float:
    """Return the wait after failed ``attempt`` (1-based): doubling, capped."""
    return float(min(first_delay * 2 ** (attempt - 1), MAX_RETRY_DELAY))


def upgrade(
    url: str,
    *,
    directory: Path | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    retry_delay: float = DEFAULT_RETRY_DELAY,
    on_retry: Callable[[Retry], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Apply every pending migration; return the ids applied.

    A migration that fails on a lock timeout or a deadlock is rolled back
    and tried again, up to ``attempts`` times in all. A non-transactional
    migration cannot be rolled back, so its statements must be safe to run
    again. The wait is ``retry_delay`` seconds after the first failure and
    doubles after each further one. ``on_retry`` gets every retry before the
    wait. Raises MigrationLockError when the last attempt fails too.
    """
    from yoyo.exceptions import LockTimeout

    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    applied: list[str] = []
    for attempt in range(1, attempts + 1):
        current: str | None = None
        try:
            with yoyo_backend(url) as backend, backend.lock():
                pending = backend.to_apply(read_all(directory))
                for migration in pending:
                    current = migration.id
                    # NOTE: yoyo 9 commits a migration on its own connection,
                    # then records it; a crash between the two makes the
                    # next run fail loudly on the objects that now exist.
                    backend.apply_one(migration)
                    applied.append(migration.id)
                backend.run_post_apply(pending)
            return applied
        except LockTimeout as exc:
            raise MigrationLockError(
                f"another process is applying migrations: {exc}"
            ) from exc
        except RETRYABLE_ERRORS as exc:
            failed = current or "(yoyo bookkeeping)"
            reason = _first_line(exc)
            if attempt == attempts:
                raise MigrationLockError(
                    _lock_failure_message(url, failed, attempts, reason)
                ) from exc
            delay = retry_delay_for(attempt, retry_delay)
            if on_retry is not None:
                on_retry(Retry(failed, attempt, attempts, delay, reason))
            sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


def rollback(url: str, *, directory: Path | None = None) -> list[str]:
    """Roll back every applied migration, newest first; return their ids.

    Deploys roll forward; this exists for development and for the test that
    checks every rollback file undoes its migration.
    """
    with yoyo_backend(url) as backend, backend.lock():
        applied = backend.to_rollback(read_all(directory))
        backend.rollback_migrations(applied)
    return [migration.id for migration in applied]


def status(url: str, *, directory: Path | None = None) -> list[tuple[str, str]]:
    """Return ``(migration id, state)`` for every migration, in order.

    The state is ``applied`` or ``pending`` for the migrations in
    ``directory``, and ``applied, not in this release`` for migrations the
    database has but this code does not ship, which is normal while a newer
    release rolls out.
    """
    with yoyo_backend(url) as backend:
        applied_hashes = set(backend.get_applied_migration_hashes())
        cursor = backend.execute(
            backend.format_sql(
                "SELECT {quoted.migration_id} FROM {0.migration_table_quoted} "
                "ORDER BY {quoted.applied_at_utc}"
            )
        )
        applied_ids = [row[0] for row in cursor.fetchall()]
    known = read_all(directory)
    states = [
        (m.id, "applied" if m.hash in applied_hashes else "pending") for m in known
    ]
    known_ids = {m.id for m in known}
    states += [
        (migration_id, "applied, not in this release")
        for migration_id in applied_ids
        if migration_id not in known_ids
    ]
    return states


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _lock_failure_message(
    url: str, migration_id: str, attempts: int, reason: str
) -> str:
    lines = [
        f"migration {migration_id} failed: {reason} in all {attempts} attempt(s).",
        "Another transaction holds a lock the migration needs.",
    ]
    holders = open_transactions(url)
    if holders:
        lines.append("Oldest open transactions in this database:")
        lines += [f"  {holder}" for holder in holders]
    lines.append(
        "End or wait for the long transaction, then run `flask db upgrade` again."
    )
    return "\n".join(lines)


def open_transactions(url: str, limit: int = 5) -> list[str]:
    """Describe the oldest open transactions on ``url``'s database.

    Returns one line per session: pid, state, application and age. Query
    text is left out because it may contain data. Returns an empty list when
    the database cannot be asked, since this only enriches an error message.
    """
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                """
                SELECT pid,
                       state,
                       application_name,
                       floor(extract(epoch FROM now() - xact_start))::int AS age
                FROM pg_stat_activity
                WHERE datname = current_database()
                  AND pid <> pg_backend_pid()
                  AND xact_start IS NOT NULL
                ORDER BY xact_start
                LIMIT %(limit)s
                """,
                {"limit": limit},
            ).fetchall()
    except psycopg.Error:
        return []
    return [
        f"pid {pid}: {state or 'unknown state'}, application "
        f"{application or '(none)'!r}, open for {age} s"
        for pid, state, application, age in rows
    ]
