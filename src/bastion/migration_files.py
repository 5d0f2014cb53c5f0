"""Check the files in migrations/ against the house rules, and scaffold new ones.

    python -m bastion.migration_files check [--squawk PATH]
    python -m bastion.migration_files new NAME [--number N]
        [--index NAME --on 'TABLE (COLUMNS)']

The rules keep a deploy from blocking traffic and keep every change
reversible:

- every migration ``NNNN.name.sql`` has a rollback file ``NNNN.name.rollback.sql``;
- every file sets ``lock_timeout`` (at most ``MAX_LOCK_TIMEOUT_MS``) before its
  first other statement;
- ``CONCURRENTLY`` appears only in files marked ``-- transactional: false``,
  because PostgreSQL rejects it inside a transaction block;
- a file that builds an index concurrently builds that one index and nothing
  else, and first runs ``DROP INDEX CONCURRENTLY IF EXISTS`` on its name. A
  failed concurrent build leaves an INVALID index behind, which the retry
  must replace rather than skip.

``check --squawk PATH`` also runs squawk over every file. yoyo wraps each
migration in one transaction unless the file says ``-- transactional: false``,
so squawk gets ``--assume-in-transaction`` for exactly the other files.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bastion.migrate import MIGRATIONS_DIR

ROOT = Path(__file__).resolve().parents[2]
SQUAWK_CONFIG = ROOT / ".squawk.toml"

# While a migration waits for a lock, every later query on the table queues
# behind it. So the wait is capped at a few seconds, and `flask db upgrade`
# retries instead of waiting longer.
MAX_LOCK_TIMEOUT_MS = 5000
HOUSE_LOCK_TIMEOUT = "5s"
HOUSE_STATEMENT_TIMEOUT = "10s"

_ID = re.compile(r"^\d{4}\.[a-z0-9]+(?:-[a-z0-9]+)*$")
_SET = re.compile(
    r"^SET\s+(?:(?P<scope>SESSION|LOCAL)\s+)?(?P<name>\w+)\s*(?:=|\bTO\b)\s*"
    r"(?P<value>.+?)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_DURATION = re.compile(r"^'?\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h|d)?\s*'?$", re.IGNORECASE)
_UNIT_MS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_INDEX_NAME = r"(?P<index>\"[^\"]+\"|[\w.]+)"
_CREATE_CONCURRENTLY = re.compile(
    r"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    + _INDEX_NAME,
    re.IGNORECASE,
)
_DROP_CONCURRENTLY = re.compile(
    r"^DROP\s+INDEX\s+CONCURRENTLY\s+IF\s+EXISTS\s+" + _INDEX_NAME + r"\s*;?\s*$",
    re.IGNORECASE,
)
_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.IGNORECASE)


@dataclass(frozen=True)
class SqlFile:
    """One migration or rollback file as yoyo runs it."""

    path: Path
    transactional: bool
    # Statements in file order, comments stripped, empty ones dropped.
    statements: list[str]


def read_sql_file(path: Path, transactional: bool | None = None) -> SqlFile:
    """Read ``path`` with yoyo's own parser.

    A rollback file runs in its migration's mode, so pass the migration's
    ``transactional`` for it; otherwise it comes from the file's directive.
    """
    import sqlparse
    from yoyo.migrations import read_sql_migration

    directives, _, statements = read_sql_migration(str(path))
    if transactional is None:
        transactional = directives.get("transactional", "true").lower() != "false"
    stripped = [sqlparse.format(s, strip_comments=True).strip() for s in statements]
    return SqlFile(path, transactional, [s for s in stripped if s])


def rollback_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".sql") + ".rollback.sql")


def forward_paths(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.glob("*.sql")
        if not path.name.endswith(".rollback.sql")
    )


def duration_ms(raw: str) -> float | None:
    """Return a PostgreSQL duration setting in milliseconds, or None if unknown."""
    match = _DURATION.match(raw.strip())
    if not match:
        return None
    return float(match.group(1)) * _UNIT_MS[(match.group(2) or "ms").lower()]


def check_directory(directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Return one line per rule broken by the files in ``directory``."""
    problems: list[str] = []
    forwards = forward_paths(directory)
    forward_names = {path.name for path in forwards}
    for path in sorted(directory.glob("*.rollback.sql")):
        if path.name.removesuffix(".rollback.sql") + ".sql" not in forward_names:
            problems.append(f"{path}: rollback file without a migration")
    for path in forwards:
        problems += check_migration(path)
    return problems


def check_migration(path: Path) -> list[str]:
    """Return the rules that migration ``path`` and its rollback file break."""
    problems: list[str] = []
    if not _ID.match(path.name.removesuffix(".sql")):
        problems.append(
            f"{path}: name it NNNN.lower-case-words.sql (four digits, a dot, "
            "words joined by hyphens)"
        )
    forward = read_sql_file(path)
    problems += _check_lock_timeout(forward)
    problems += _check_concurrently(forward, rollback=False)

    rollback = rollback_path(path)
    if not rollback.exists():
        problems.append(f"{path}: missing rollback file {rollback.name}")
        return problems
    backward = read_sql_file(rollback, transactional=forward.transactional)
    problems += _check_lock_timeout(backward)
    problems += _check_concurrently(backward, rollback=True)
    return problems


def _check_lock_timeout(sql_file: SqlFile) -> list[str]:
    for statement in sql_file.statements:
        match = _SET.match(statement)
        if not match:
            break
        if match.group("name").lower() != "lock_timeout":
            continue
        if match.group("scope") and match.group("scope").upper() == "LOCAL":
            if not sql_file.transactional:
                return [
                    f"{sql_file.path}: SET LOCAL has no effect outside a "
                    "transaction; use SET lock_timeout"
                ]
        value = duration_ms(match.group("value"))
        if value is None or not 0 < value <= MAX_LOCK_TIMEOUT_MS:
            return [
                f"{sql_file.path}: lock_timeout {match.group('value')} must be "
                f"more than 0 and at most {MAX_LOCK_TIMEOUT_MS} ms "
                f"(house value: '{HOUSE_LOCK_TIMEOUT}')"
            ]
        return []
    return [
        f"{sql_file.path}: start with SET lock_timeout = '{HOUSE_LOCK_TIMEOUT}' "
        "before any other statement, so a blocked migration fails fast"
    ]


def _check_concurrently(sql_file: SqlFile, *, rollback: bool) -> list[str]:
    uses_concurrently = any(_CONCURRENTLY.search(s) for s in sql_file.statements)
    if not uses_concurrently:
        return []
    if sql_file.transactional:
        return [
            f"{sql_file.path}: CONCURRENTLY cannot run in a transaction; move it "
            "to its own migration that starts with -- transactional: false"
        ]
    if rollback:
        return []

    builds = [
        match for match in map(_CREATE_CONCURRENTLY.match, sql_file.statements) if match
    ]
    if not builds:
        return []
    if len(builds) > 1:
        return [
            f"{sql_file.path}: build one index per migration, so a failed "
            "build retries only itself"
        ]
    index = _normalise(builds[0].group("index"))
    problems: list[str] = []
    dropped = False
    for statement in sql_file.statements:
        drop = _DROP_CONCURRENTLY.match(statement)
        if drop and _normalise(drop.group("index")) == index:
            dropped = True
        elif _CREATE_CONCURRENTLY.match(statement):
            if not dropped:
                problems.append(
                    f"{sql_file.path}: run DROP INDEX CONCURRENTLY IF EXISTS "
                    f"{index} before building it, so a retry replaces the "
                    "INVALID index a failed build leaves behind"
                )
        elif not _SET.match(statement):
            problems.append(
                f"{sql_file.path}: a concurrent index build goes in a migration "
                f"of its own; move this statement out: {statement[:60]!r}"
            )
    return problems


def _normalise(name: str) -> str:
    return name.strip('"') if name.startswith('"') else name.lower()


def run_squawk(squawk: str, directory: Path = MIGRATIONS_DIR) -> int:
    """Run squawk over every file in ``directory``; return its exit status."""
    groups: dict[bool, list[str]] = {True: [], False: []}
    for path in forward_paths(directory):
        transactional = read_sql_file(path).transactional
        groups[transactional].append(str(path))
        if rollback_path(path).exists():
            groups[transactional].append(str(rollback_path(path)))
    status = 0
    for transactional, files in groups.items():
        if not files:
            continue
        command = [squawk, "--config", str(SQUAWK_CONFIG), *files]
        if transactional:
            command.insert(1, "--assume-in-transaction")
        status |= subprocess.run(command, check=False).returncode  # noqa: S603
    return status


def new_migration(
    directory: Path,
    name: str,
    *,
    index: str | None = None,
    on: str | None = None,
    number: int | None = None,
) -> tuple[Path, Path]:
    """Write a migration and its rollback file from the house templates.

    The number defaults to one past the highest in ``directory``; the new
    migration depends on the one numbered just below it.
    """
    if not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", name):
        raise ValueError(f"invalid name {name!r}: use lower-case words and hyphens")
    if (index is None) != (on is None):
        raise ValueError("an index migration needs both --index and --on")
    existing = [path.name.removesuffix(".sql") for path in forward_paths(directory)]
    if number is None:
        number = int(existing[-1][:4]) + 1 if existing else 1
    if not 0 < number <= 9999 or any(int(m[:4]) == number for m in existing):
        raise ValueError(f"number {number} is out of range or already taken")
    migration_id = f"{number:04d}.{name}"
    forward = directory / f"{migration_id}.sql"
    below = [m for m in existing if int(m[:4]) < number]
    depends = below[-1] if below else ""
    if index is None:
        forward_text, rollback_text = _transactional_templates(migration_id, depends)
    else:
        assert on is not None
        forward_text, rollback_text = _index_templates(depends, index, on)
    forward.write_text(forward_text)
    rollback_path(forward).write_text(rollback_text)
    return forward, rollback_path(forward)


def _transactional_templates(migration_id: str, depends: str) -> tuple[str, str]:
    forward = (
        "-- Say what this migration changes and why.\n"
        f"-- depends: {depends}\n"
        f"SET lock_timeout = '{HOUSE_LOCK_TIMEOUT}';\n"
        f"SET statement_timeout = '{HOUSE_STATEMENT_TIMEOUT}';\n\n"
        "-- Expand only: new tables, nullable or defaulted columns, constraints\n"
        "-- added NOT VALID. Old code must keep working on the new schema.\n"
    )
    rollback = (
        f"-- Undo {migration_id}.\n"
        f"SET lock_timeout = '{HOUSE_LOCK_TIMEOUT}';\n"
        f"SET statement_timeout = '{HOUSE_STATEMENT_TIMEOUT}';\n"
    )
    return forward, rollback


def _index_templates(depends: str, index: str, on: str) -> tuple[str, str]:
    forward = (
        f"-- Build {index} without blocking writes.\n"
        f"-- depends: {depends}\n"
        "-- transactional: false\n"
        f"SET lock_timeout = '{HOUSE_LOCK_TIMEOUT}';\n"
        "-- A concurrent build blocks neither reads nor writes, so it may take\n"
        "-- as long as the table needs.\n"
        "SET statement_timeout = 0;\n\n"
        "-- A failed build leaves an INVALID index of this name; drop it so a\n"
        "-- retry builds a valid one instead of skipping it.\n"
        f"DROP INDEX CONCURRENTLY IF EXISTS {index};\n"
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {index} ON {on};\n"
    )
    rollback = (
        f"-- Drop {index}.\n"
        f"SET lock_timeout = '{HOUSE_LOCK_TIMEOUT}';\n"
        "SET statement_timeout = 0;\n\n"
        f"DROP INDEX CONCURRENTLY IF EXISTS {index};\n"
    )
    return forward, rollback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=MIGRATIONS_DIR)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="check every migration file")
    check.add_argument("--squawk", help="path of the squawk binary to run as well")
    new = commands.add_parser("new", help="write a migration and its rollback")
    new.add_argument("name", help="lower-case words joined by hyphens")
    new.add_argument("--index", help="build this index concurrently")
    new.add_argument("--on", help="table and columns, such as 'contacts (company)'")
    new.add_argument("--number", type=int, help="migration number (default: next)")
    args = parser.parse_args(argv)

    if args.command == "new":
        try:
            paths = new_migration(
                args.dir, args.name, index=args.index, on=args.on, number=args.number
            )
        except ValueError as exc:
            parser.error(str(exc))
        for path in paths:
            print(f"wrote {path}")
        return 0

    problems = check_directory(args.dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    status = 1 if problems else 0
    if args.squawk:
        status |= run_squawk(args.squawk, args.dir)
    return status


if __name__ == "__main__":
    sys.exit(main())
