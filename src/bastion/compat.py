"""Run the previous release's end-to-end test against the current schema.

During a rolling deploy the migrations run first and old instances keep
serving until they are replaced, so old code must work on the new schema.
This script checks that mechanically:

1. find the newest migration: one not yet committed, or else the newest
   commit on the first-parent history that added a file to migrations/;
2. check out the commit just before it (HEAD for an uncommitted migration)
   as a git worktree;
3. migrate a fresh database to the current migrations with the current code;
4. run that older commit's tests/test_e2e.py against the database, with
   TEST_USE_EXISTING_DATABASE=1 so its fixtures keep the schema as it is.

It prints why and exits 0 when the history has no such older commit, or
when the older commit's tests cannot use an existing database.

Usage (``make test-compat`` sets the environment): python -m bastion.compat
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bastion import migrate
from bastion.migrate import with_database

ROOT = Path(__file__).resolve().parents[2]
EXISTING_DATABASE_SWITCH = "TEST_USE_EXISTING_DATABASE"


def say(message: str) -> None:
    print(f"test-compat: {message}", flush=True)


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed git argv
        ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
    )


def describe(commit: str) -> str:
    return git("log", "-1", "--format=%h (%s)", commit).stdout.strip()


def is_migration(path: str) -> bool:
    return (
        path.startswith("migrations/")
        and path.endswith(".sql")
        and not path.endswith(".rollback.sql")
    )


def uncommitted_migrations() -> list[str]:
    listed = git("status", "--porcelain", "--untracked-files=all", "--", "migrations")
    added = []
    for line in listed.stdout.splitlines():
        state, path = line[:2], line[3:]
        if ("?" in state or "A" in state) and is_migration(path):
            added.append(path)
    return added


def newest_migration_commit() -> tuple[str, str] | None:
    """Return (commit, path) of the newest commit that added a migration."""
    log = git(
        "log",
        "--first-parent",
        "--diff-merges=first-parent",
        "--diff-filter=A",
        "--name-only",
        "--format=commit %H",
        "--",
        "migrations",
    ).stdout
    commit = None
    added: list[str] = []
    for line in log.splitlines():
        if line.startswith("commit "):
            if added:
                break
            commit = line.removeprefix("commit ")
        elif is_migration(line):
            added.append(line)
    if commit is None or not added:
        return None
    return commit, max(added)


def find_base_commit() -> tuple[str | None, str]:
    """Return the commit to test, or None, and a sentence saying why."""
    uncommitted = uncommitted_migrations()
    if uncommitted:
        return "HEAD", f"uncommitted migration {uncommitted[0]} is the newest"
    found = newest_migration_commit()
    if found is None:
        return None, "no commit in this clone's history adds a migration"
    commit, path = found
    parent = git("rev-parse", "--verify", "--quiet", f"{commit}^", check=False)
    if parent.returncode != 0:
        return None, (
            f"the newest migration {path} came with {describe(commit)}, which "
            "has no parent in this clone's history, so there is no older "
            "release to run"
        )
    return (
        parent.stdout.strip(),
        f"the newest migration {path} came with {describe(commit)}",
    )


def old_tests_can_run(commit: str) -> str | None:
    """Return why ``commit``'s end-to-end test cannot run here, or None."""
    for path in ("tests/test_e2e.py", "tests/conftest.py"):
        if git("cat-file", "-e", f"{commit}:{path}", check=False).returncode != 0:
            return f"{describe(commit)} has no {path}"
    conftest = git("show", f"{commit}:tests/conftest.py").stdout
    if EXISTING_DATABASE_SWITCH not in conftest:
        return (
            f"the tests of {describe(commit)} always recreate their database "
            f"(its tests/conftest.py has no {EXISTING_DATABASE_SWITCH} switch)"
        )
    return None


def python_for(worktree: Path) -> str:
    """Return a Python with the old commit's requirements installed.

    The current virtualenv serves when requirements.txt is unchanged;
    otherwise a virtualenv per requirements file is built under var/.
    """
    old = (worktree / "requirements.txt").read_bytes()
    if old == (ROOT / "requirements.txt").read_bytes():
        return sys.executable
    venv = ROOT / "var" / f"compat-venv-{hashlib.sha256(old).hexdigest()[:12]}"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        say(f"requirements.txt differs; installing the old ones into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603
            [str(python), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"],
            cwd=worktree,
            check=True,
        )
        (venv / ".installed").touch()
    return str(python)


def recreate_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = sql.Identifier(migrate.database_name(url))
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def drop_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = sql.Identifier(migrate.database_name(url))
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def prepare_database(url: str) -> str:
    """Set up the roles of the fresh database ``url``; return the owner's URL.

    The migrations hand functions to ``bastion_definer``, which only
    ``flask db create-roles`` makes, so the roles come first, as in a deploy.
    """
    from bastion.devenv import with_user
    from bastion.roles import RoleTimeouts, create_roles

    name = migrate.database_name(url)
    owner_url = with_user(url, f"{name}_owner")
    create_roles(
        url,
        app_url=with_user(url, f"{name}_app"),
        migration_url=owner_url,
        timeouts=RoleTimeouts(
            statement_ms=5000, lock_ms=3000, idle_in_transaction_ms=10000
        ),
    )
    return owner_url


def run_old_tests(base: str) -> int:
    database = os.environ.get("TEST_DATABASE_NAME", "bastion_test") + "_compat"
    admin_url = (
        os.environ.get("ADMIN_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/bastion"
    )
    url = with_database(admin_url, database)
    recreate_database(url)
    with tempfile.TemporaryDirectory(prefix="bastion-compat-") as scratch:
        worktree = Path(scratch) / "old"
        git("worktree", "add", "--detach", str(worktree), base)
        try:
            applied = migrate.upgrade(prepare_database(url))
            say(
                f"migrated {database} to the current schema ({len(applied)} "
                f"migrations, newest {applied[-1]})"
            )
            say(f"running the end-to-end test of {describe(base)} against it")
            # NOTE: the old release gets the superuser URL, as releases
            # without database roles ran in development. An old instance
            # connecting as the migration role would see no rows under
            # FORCE ROW LEVEL SECURITY (see the README on upgrading).
            env = {
                **os.environ,
                "DATABASE_URL": admin_url,
                "ADMIN_DATABASE_URL": admin_url,
                "TEST_DATABASE_NAME": database,
                EXISTING_DATABASE_SWITCH: "1",
                "PYTHONPATH": f"{worktree / 'src'}{os.pathsep}{worktree}",
            }
            command = [python_for(worktree), "-m", "pytest", "-p", "no:cacheprovider"]
            result = subprocess.run(  # noqa: S603
                [*command, "tests/test_e2e.py"],
                cwd=worktree,
                env=env,
                check=False,
            )
        finally:
            git("worktree", "remove", "--force", str(worktree), check=False)
            drop_database(url)
    return result.returncode


def main() -> int:
    if git("rev-parse", "--is-inside-work-tree", check=False).returncode != 0:
        say("skipped: not inside a git clone, so there is no history to check out")
        return 0
    base, reason = find_base_commit()
    if base is None:
        say(f"skipped: {reason}")
        return 0
    cannot_run = old_tests_can_run(base)
    if cannot_run:
        say(f"skipped: {reason}, but {cannot_run}")
        return 0
    say(f"{reason}; checking out {describe(base)}")
    status = run_old_tests(base)
    if status == 0:
        say(f"passed: the code at {describe(base)} works on the current schema")
    else:
        say(f"FAILED: the code at {describe(base)} breaks on the current schema")
    return status


if __name__ == "__main__":
    sys.exit(main())
