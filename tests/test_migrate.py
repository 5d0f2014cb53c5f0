"""Migrations roll back exactly, fail fast on locks, retry and report clearly.

The lock tests run small migrations of their own against a scratch database,
so they can use a lock_timeout of a few hundred milliseconds. The locks are
real: a second connection holds them in an open transaction.
"""

from __future__ import annotations

import difflib
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from bastion import migrate
from bastion.migration_files import new_migration

LOCK_TIMEOUT = "'200ms'"


def schema_dump(url: str) -> list[str]:
    """Return ``pg_dump --schema-only`` of ``url`` as lines, less run-specific ones."""
    dump = subprocess.run(
        ["pg_dump", "--schema-only", "--dbname", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # pg_dump 15.14 and later fence the dump with \restrict KEY and
    # \unrestrict KEY, where KEY is random on every run. With pg_dump 15.20
    # nothing else differs between two dumps of the same schema.
    return [
        line
        for line in dump.splitlines()
        if not line.startswith(("\\restrict ", "\\unrestrict "))
    ]


def schema_diff(before: list[str], after: list[str]) -> str:
    return "\n".join(
        difflib.unified_diff(before, after, "before", "after", lineterm="")
    )


def test_rollback_and_reapply_restore_the_same_schema(scratch_database):
    url = scratch_database("roundtrip")
    with migrate.yoyo_backend(url) as backend:
        backend.ensure_internal_schema_updated()
    empty = schema_dump(url)

    applied = migrate.upgrade(url)
    first = schema_dump(url)
    rolled_back = migrate.rollback(url)
    after_rollback = schema_dump(url)
    reapplied = migrate.upgrade(url)
    second = schema_dump(url)

    assert applied == migrate.migration_ids()
    assert rolled_back == list(reversed(applied))
    assert reapplied == applied
    assert first != empty
    assert not schema_diff(empty, after_rollback), schema_diff(empty, after_rollback)
    assert not schema_diff(first, second), schema_diff(first, second)


def write_migration(
    directory: Path, migration_id: str, forward: str, back: str
) -> None:
    (directory / f"{migration_id}.sql").write_text(forward)
    (directory / f"{migration_id}.rollback.sql").write_text(back)


@contextmanager
def open_transaction(url: str, statement: str) -> Iterator[psycopg.Connection]:
    """Run ``statement`` and keep its transaction, and so its locks, open."""
    conn = psycopg.connect(url, application_name="lock-holder")
    try:
        conn.execute(statement)
        yield conn
    finally:
        conn.close()


@pytest.fixture()
def widgets(scratch_database, tmp_path):
    """A scratch database with a widgets table and an empty migrations folder."""
    url = scratch_database("locks")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE widgets (id integer PRIMARY KEY, colour text)")
        conn.execute(
            "INSERT INTO widgets SELECT g, 'red' FROM generate_series(2, 50) g"
        )
    directory = tmp_path / "migrations"
    directory.mkdir()
    return url, directory


def add_column_migration(directory: Path) -> None:
    write_migration(
        directory,
        "0001.add-size",
        f"SET lock_timeout = {LOCK_TIMEOUT};\n"
        "ALTER TABLE widgets ADD COLUMN size int;\n",
        f"SET lock_timeout = {LOCK_TIMEOUT};\nALTER TABLE widgets DROP COLUMN size;\n",
    )


def column_exists(url: str, column: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'widgets' AND column_name = %s",
            (column,),
        ).fetchone()
    return row == (1,)


def test_upgrade_gives_up_after_bounded_retries(widgets):
    url, directory = widgets
    add_column_migration(directory)
    retries: list[migrate.Retry] = []

    with open_transaction(url, "SELECT count(*) FROM widgets") as holder:
        holder_pid = holder.info.backend_pid
        with pytest.raises(migrate.MigrationLockError) as raised:
            migrate.upgrade(
                url,
                directory=directory,
                attempts=3,
                retry_delay=0.05,
                on_retry=retries.append,
            )

    message = str(raised.value)
    assert [retry.attempt for retry in retries] == [1, 2]
    assert [retry.delay for retry in retries] == [0.05, 0.1]
    assert {retry.migration_id for retry in retries} == {"0001.add-size"}
    assert "lock timeout" in retries[0].error
    assert "migration 0001.add-size failed" in message
    assert "in all 3 attempt(s)" in message
    assert f"pid {holder_pid}: idle in transaction" in message
    assert "'lock-holder'" in message
    assert not column_exists(url, "size")
    assert ("0001.add-size", "pending") in migrate.status(url, directory=directory)


def test_upgrade_succeeds_once_the_lock_is_released(widgets):
    url, directory = widgets
    add_column_migration(directory)
    retries: list[migrate.Retry] = []

    with open_transaction(url, "SELECT count(*) FROM widgets") as holder:

        def release_lock(retry: migrate.Retry) -> None:
            retries.append(retry)
            holder.rollback()

        applied = migrate.upgrade(
            url,
            directory=directory,
            attempts=3,
            retry_delay=0.05,
            on_retry=release_lock,
        )

    assert applied == ["0001.add-size"]
    assert len(retries) == 1
    assert column_exists(url, "size")


def index_state(url: str, name: str) -> list[bool]:
    """Return indisvalid of every index named ``name`` (one at most)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT i.indisvalid FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
            (name,),
        ).fetchall()
    return [valid for (valid,) in rows]


def concurrent_index_migration(directory: Path, *, drop_first: bool) -> None:
    drop = (
        "DROP INDEX CONCURRENTLY IF EXISTS widgets_colour_idx;\n" if drop_first else ""
    )
    write_migration(
        directory,
        "0001.index-widgets-colour",
        "-- transactional: false\n"
        f"SET lock_timeout = {LOCK_TIMEOUT};\n"
        f"{drop}"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS widgets_colour_idx"
        " ON widgets (colour);\n",
        f"SET lock_timeout = {LOCK_TIMEOUT};\n"
        "DROP INDEX CONCURRENTLY IF EXISTS widgets_colour_idx;\n",
    )


def upgrade_with_writer_until_first_retry(
    url: str, directory: Path
) -> list[list[bool]]:
    """Apply with an uncommitted insert open until the first retry.

    A concurrent build waits for every open writer of the table, so the
    first attempt times out after it has created the index entry. Returns
    the index state seen at each retry.
    """
    seen: list[list[bool]] = []
    with open_transaction(url, "INSERT INTO widgets VALUES (1, 'blue')") as writer:

        def release_writer(retry: migrate.Retry) -> None:
            seen.append(index_state(url, "widgets_colour_idx"))
            writer.rollback()

        migrate.upgrade(
            url,
            directory=directory,
            attempts=3,
            retry_delay=0.01,
            on_retry=release_writer,
        )
    return seen


def test_failed_concurrent_index_build_is_replaced_on_retry(widgets):
    url, directory = widgets
    concurrent_index_migration(directory, drop_first=True)

    seen_at_retry = upgrade_with_writer_until_first_retry(url, directory)

    assert seen_at_retry == [[False]]
    assert index_state(url, "widgets_colour_idx") == [True]


def test_concurrent_index_without_drop_first_keeps_invalid_index(widgets):
    # Why the house rule drops first: IF NOT EXISTS alone finds the INVALID
    # index a failed build left and skips the build.
    url, directory = widgets
    concurrent_index_migration(directory, drop_first=False)

    seen_at_retry = upgrade_with_writer_until_first_retry(url, directory)

    assert seen_at_retry == [[False]]
    assert index_state(url, "widgets_colour_idx") == [False]


def test_scaffolded_index_migration_builds_and_drops_the_index(widgets):
    url, directory = widgets
    write_migration(
        directory,
        "0001.base",
        "SET lock_timeout = '5s';\nSELECT 1;\n",
        "SET lock_timeout = '5s';\nSELECT 1;\n",
    )
    new_migration(
        directory,
        "index-widgets-colour",
        index="widgets_colour_idx",
        on="widgets (colour)",
    )

    applied = migrate.upgrade(url, directory=directory)
    built = index_state(url, "widgets_colour_idx")
    migrate.rollback(url, directory=directory)

    assert applied == ["0001.base", "0002.index-widgets-colour"]
    assert built == [True]
    assert index_state(url, "widgets_colour_idx") == []


def test_status_marks_migrations_from_a_newer_release(scratch_database, tmp_path):
    url = scratch_database("newer")
    newer = tmp_path / "newer"
    shutil.copytree(migrate.MIGRATIONS_DIR, newer)
    write_migration(
        newer,
        "9999.newer-release",
        "SET lock_timeout = '5s';\nCREATE TABLE newer_things (id int);\n",
        "SET lock_timeout = '5s';\nDROP TABLE newer_things;\n",
    )
    migrate.upgrade(url, directory=newer)

    states = migrate.status(url)

    assert states[-1] == ("9999.newer-release", "applied, not in this release")
    assert all(state == "applied" for _, state in states[:-1])
    assert [m for m, _ in states[:-1]] == migrate.migration_ids()
