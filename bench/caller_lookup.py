"""Measure the per-request caller lookup that makes revocation immediate.

Usage, with the environment of ``make test`` (``source var/test.env``):
``.venv/bin/python bench/caller_lookup.py [--users N] [--iterations N]``

It recreates the database ``BENCH_DATABASE_NAME`` (default
``bastion_bench``) on the server of ``ADMIN_DATABASE_URL`` (a superuser;
the migrations need the ``bastion_definer`` role that ``make test`` sets
up), migrates it, seeds
users with several sessions each (a third of them revoked), then prints

- the plan of the lookup with EXPLAIN (ANALYZE, BUFFERS), and
- the median and 95th percentile of ``SessionService.load_current_user``
  over a bounded loop: pool checkout, BEGIN READ ONLY, the query, COMMIT,
  as every authenticated request runs it.

The database is dropped again at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import time

import psycopg
from psycopg import sql

from bastion import migrate
from bastion.config import Settings
from bastion.db import Database
from bastion.migrate import with_database
from bastion.passwords import PasswordHasher
from bastion.services.sessions import CALLER_LOOKUP, SessionService

SESSIONS_PER_USER = 6
TIME_LIMIT_SECONDS = 60


def _recreate(url: str, *, create: bool = True) -> None:
    name = sql.Identifier(migrate.database_name(url))
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def _seed(url: str, users: int) -> list[tuple[str, str]]:
    """Insert users and sessions; return (user id, live session id) pairs."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO accounts (name)
            SELECT 'bench ' || n FROM generate_series(1, %(accounts)s) AS n
            """,
            {"accounts": max(1, users // 10)},
        )
        conn.execute(
            """
            INSERT INTO users (account_id, name, email, role, password_hash)
            SELECT a.id, 'user ' || n, 'user' || n || '@example.com', 'member', 'x'
            FROM generate_series(1, %(users)s) AS n
            JOIN LATERAL (
                SELECT id FROM accounts ORDER BY id OFFSET (n %% %(accounts)s) LIMIT 1
            ) AS a ON true
            """,
            {"users": users, "accounts": max(1, users // 10)},
        )
        conn.execute(
            """
            INSERT INTO auth_sessions (user_id, expires_at, revoked_at)
            SELECT u.id, now() + interval '30 days',
                   CASE WHEN n %% 3 = 0 THEN now() END
            FROM users AS u, generate_series(1, %(per_user)s) AS n
            """,
            {"per_user": SESSIONS_PER_USER},
        )
        conn.execute("ANALYZE")
        rows = conn.execute(
            """
            SELECT user_id::text, id::text
            FROM auth_sessions
            WHERE revoked_at IS NULL
            """
        ).fetchall()
    return [(user_id, session_id) for user_id, session_id in rows]


def _explain(url: str, user_id: str, session_id: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        # Warm the cache first, as a running server's would be.
        conn.execute(CALLER_LOOKUP, {"user_id": user_id, "session_id": session_id})
        rows = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS) " + CALLER_LOOKUP,
            {"user_id": user_id, "session_id": session_id},
        ).fetchall()
    return "\n".join(row[0] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--iterations", type=int, default=2_000)
    args = parser.parse_args()

    base = (
        os.environ.get("ADMIN_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or "postgresql://postgres@127.0.0.1/bastion"
    )
    url = with_database(base, os.environ.get("BENCH_DATABASE_NAME", "bastion_bench"))
    _recreate(url)
    migrate.upgrade(url)
    live = _seed(url, args.users)
    user_id, session_id = secrets.choice(live)
    total = args.users * SESSIONS_PER_USER
    print(f"{args.users} users, {len(live)} live sessions of {total}")
    print(_explain(url, user_id, session_id))

    settings = Settings.from_env(
        {
            "BASTION_ENV": "test",
            "DATABASE_URL": url,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "JWT_KEY_ENCRYPTION_KEY": secrets.token_urlsafe(32),
        }
    )
    db = Database(settings)
    db.open()
    sessions = SessionService(
        db,
        PasswordHasher(4),
        issue_access_token=lambda _user, _session: "",
        access_token_ttl=900,
        refresh_token_ttl=3600,
    )
    samples = []
    deadline = time.monotonic() + TIME_LIMIT_SECONDS
    for _ in range(args.iterations):
        if time.monotonic() > deadline:
            break
        user_id, session_id = secrets.choice(live)
        started = time.perf_counter()
        caller = sessions.load_current_user(user_id=user_id, session_id=session_id)
        samples.append(time.perf_counter() - started)
        assert caller is not None
    db.close()
    _recreate(url, create=False)

    samples.sort()
    median_ms = statistics.median(samples) * 1000
    p95_ms = samples[int(len(samples) * 0.95)] * 1000
    print(
        f"load_current_user over {len(samples)} calls: "
        f"median {median_ms:.3f} ms, p95 {p95_ms:.3f} ms"
    )


if __name__ == "__main__":
    main()
