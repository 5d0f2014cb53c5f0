"""The house rules for migration files, checked without a database."""

from __future__ import annotations

import pytest

from bastion.migration_files import check_directory, duration_ms, new_migration

LOCK = "SET lock_timeout = '5s';\n"


@pytest.fixture()
def folder(tmp_path):
    def write(name: str, text: str) -> None:
        (tmp_path / name).write_text(text)

    write.path = tmp_path
    return write


def pair(folder, migration_id: str, forward: str, back: str = LOCK) -> None:
    folder(f"{migration_id}.sql", forward)
    folder(f"{migration_id}.rollback.sql", back)


def test_shipped_migrations_follow_the_rules():
    assert check_directory() == []


def test_well_formed_pair_passes(folder):
    pair(folder, "0001.add-things", LOCK + "CREATE TABLE things (id int);\n")

    assert check_directory(folder.path) == []


def test_missing_rollback_is_reported(folder):
    folder("0001.add-things.sql", LOCK + "CREATE TABLE things (id int);\n")

    problems = check_directory(folder.path)

    assert len(problems) == 1
    assert "missing rollback file 0001.add-things.rollback.sql" in problems[0]


def test_rollback_without_migration_is_reported(folder):
    folder("0001.gone.rollback.sql", LOCK)

    assert check_directory(folder.path) == [
        f"{folder.path / '0001.gone.rollback.sql'}: rollback file without a migration"
    ]


def test_bad_file_name_is_reported(folder):
    pair(folder, "1_AddThings", LOCK + "SELECT 1;\n")

    problems = check_directory(folder.path)

    assert len(problems) == 1
    assert "name it NNNN.lower-case-words.sql" in problems[0]


@pytest.mark.parametrize(
    "forward",
    [
        "CREATE TABLE things (id int);\n",
        "CREATE TABLE things (id int);\n" + LOCK,
        "SET statement_timeout = '10s';\nCREATE TABLE things (id int);\n",
    ],
)
def test_migration_without_leading_lock_timeout_is_reported(folder, forward):
    pair(folder, "0001.add-things", forward)

    problems = check_directory(folder.path)

    assert len(problems) == 1
    assert "start with SET lock_timeout" in problems[0]


def test_rollback_without_lock_timeout_is_reported(folder):
    pair(folder, "0001.add-things", LOCK, back="DROP TABLE things;\n")

    problems = check_directory(folder.path)

    assert len(problems) == 1
    assert "0001.add-things.rollback.sql: start with SET lock_timeout" in problems[0]


@pytest.mark.parametrize("value", ["'1min'", "'6s'", "0", "'0'", "'soon'"])
def test_lock_timeout_out_of_range_is_reported(folder, value):
    pair(folder, "0001.add-things", f"SET lock_timeout = {value};\nSELECT 1;\n")

    problems = check_directory(folder.path)

    assert len(problems) == 1
    assert "must be more than 0 and at most 5000 ms" in problems[0]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("'5s'", 5000), ("5000", 5000), ("'250ms'", 250), ("'1min'", 60000), ("x", None)],
)
def test_duration_ms_reads_postgresql_units(raw, expected):
    assert duration_ms(raw) == expected


def test_set_local_in_non_transactional_file_is_reported(folder):
    pair(
        folder,
        "0001.add-index",
        "-- transactional: false\nSET LOCAL lock_timeout = '5s';\nSELECT 1;\n",
    )

    problems = check_directory(folder.path)

    assert len(problems) == 1
    assert "SET LOCAL has no effect outside a transaction" in problems[0]


def test_concurrently_in_transactional_migration_is_reported(folder):
    pair(
        folder,
        "0001.add-index",
        LOCK
        + "DROP INDEX CONCURRENTLY IF EXISTS things_idx;\n"
        + "CREATE INDEX CONCURRENTLY things_idx ON things (id);\n",
    )

    problems = check_directory(folder.path)

    assert len(problems) == 1
    assert "CONCURRENTLY cannot run in a transaction" in problems[0]


def test_concurrent_index_without_drop_first_is_reported(folder):
    pair(
        folder,
        "0001.add-index",
        "-- transactional: false\n"
        + LOCK
        + "CREATE INDEX CONCURRENTLY IF NOT EXISTS things_idx ON things (id);\n",
    )

    problems = check_directory(folder.path)

    assert len(problems) == 1
    assert "run DROP INDEX CONCURRENTLY IF EXISTS things_idx before" in problems[0]


def test_dropping_another_index_first_does_not_count(folder):
    pair(
        folder,
        "0001.add-index",
        "-- transactional: false\n"
        + LOCK
        + "DROP INDEX CONCURRENTLY IF EXISTS other_idx;\n"
        + "CREATE UNIQUE INDEX CONCURRENTLY things_idx ON things (id);\n",
    )

    problems = check_directory(folder.path)

    assert any("before building it" in problem for problem in problems)


def test_concurrent_index_beside_other_changes_is_reported(folder):
    pair(
        folder,
        "0001.add-index",
        "-- transactional: false\n"
        + LOCK
        + "ALTER TABLE things ADD COLUMN size int;\n"
        + "DROP INDEX CONCURRENTLY IF EXISTS things_idx;\n"
        + "CREATE INDEX CONCURRENTLY things_idx ON things (size);\n",
    )

    problems = check_directory(folder.path)

    assert len(problems) == 1
    assert "a concurrent index build goes in a migration of its own" in problems[0]


def test_two_concurrent_indexes_in_one_migration_are_reported(folder):
    pair(
        folder,
        "0001.add-index",
        "-- transactional: false\n"
        + LOCK
        + "DROP INDEX CONCURRENTLY IF EXISTS a_idx;\n"
        + "CREATE INDEX CONCURRENTLY a_idx ON things (a);\n"
        + "DROP INDEX CONCURRENTLY IF EXISTS b_idx;\n"
        + "CREATE INDEX CONCURRENTLY b_idx ON things (b);\n",
    )

    problems = check_directory(folder.path)

    assert len(problems) == 1
    assert "build one index per migration" in problems[0]


def test_concurrently_in_rollback_of_transactional_migration_is_reported(folder):
    pair(
        folder,
        "0001.add-things",
        LOCK + "SELECT 1;\n",
        back=LOCK + "DROP INDEX CONCURRENTLY IF EXISTS things_idx;\n",
    )

    problems = check_directory(folder.path)

    assert len(problems) == 1
    assert "rollback.sql: CONCURRENTLY cannot run in a transaction" in problems[0]


def test_scaffolded_migrations_pass_the_checks(folder):
    first = new_migration(folder.path, "add-things")
    second = new_migration(
        folder.path, "index-things", index="things_idx", on="things (id)"
    )
    third = new_migration(folder.path, "fix-things", number=10)

    assert [path.name for path in (*first, *second, *third)] == [
        "0001.add-things.sql",
        "0001.add-things.rollback.sql",
        "0002.index-things.sql",
        "0002.index-things.rollback.sql",
        "0010.fix-things.sql",
        "0010.fix-things.rollback.sql",
    ]
    assert "-- depends: 0002.index-things\n" in third[0].read_text()
    assert "-- transactional: false\n" in second[0].read_text()
    assert check_directory(folder.path) == []


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("Add Things", {}),
        ("add-things", {"index": "things_idx"}),
        ("add-things", {"number": 1}),
    ],
)
def test_scaffold_rejects_bad_input(folder, name, options):
    pair(folder, "0001.existing", LOCK)

    with pytest.raises(ValueError):
        new_migration(folder.path, name, **options)
