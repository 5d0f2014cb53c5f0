"""The production stack as the benchmark runs it, and what this build offers.

Bastion gets production settings with fresh secrets, rate limits on Redis
set far above the load, JSON logs in a file and metrics open to loopback,
each only where this build has the feature. Features are found by asking
the code and the running app, so a scenario whose route is missing shows
as "not available" instead of failing the run.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
from pathlib import Path
from typing import Any

import psycopg

from bastion.config import Settings
from bench import dataset
from bench.scenarios import Fixture
from bench.servers import ROOT, Gunicorn, http

# High enough that no limit triggers under benchmark load.
HIGH_LIMIT = "1000000 per minute"
# The Redis database number for the benchmark's rate-limit counters.
REDIS_DB = 13
# Settings the environment may tune between runs; the report lists them.
TUNING_VARIABLES = (
    "GUNICORN_WORKER_CLASS",
    "GUNICORN_WORKERS",
    "GUNICORN_THREADS",
    "DB_POOL_MAX_SIZE",
    "DB_PREPARE_THRESHOLD",
    "PASSWORD_HASH_CONCURRENCY",
)


def redis_answers(port: int = 6379) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def has_rate_limiter() -> bool:
    """Return True when the app's code uses Flask-Limiter."""
    for path in (ROOT / "src" / "bastion").rglob("*.py"):
        text = path.read_text()
        if "from flask_limiter" in text or "import flask_limiter" in text:
            return True
    return False


def app_environment(
    *,
    smoke: bool,
    database_url: str,
    migration_database_url: str,
    facts: list[tuple[str, str]],
) -> dict[str, str]:
    """Build the environment both apps run with."""
    # The caller's tuning (GUNICORN_*, DB_POOL_*, ...) passes through, but
    # no secret file of a development set-up does.
    env = {
        name: value for name, value in os.environ.items() if not name.endswith("_FILE")
    }
    shape = dataset.SMOKE if smoke else dataset.FULL
    env.update(
        BASTION_ENV="test" if smoke else "production",
        DATABASE_URL=database_url,
        MIGRATION_DATABASE_URL=migration_database_url,
        SECRET_KEY=secrets.token_urlsafe(32),
        JWT_KEY_ENCRYPTION_KEY=secrets.token_urlsafe(32),
        BCRYPT_ROUNDS=str(shape.bcrypt_rounds),
        # Outlives the run, so tokens taken at the start stay valid.
        ACCESS_TOKEN_TTL_SECONDS="3600",
        LOG_LEVEL="INFO",
    )
    settings = {item.name: item for item in dataclasses.fields(Settings)}
    for name, item in settings.items():
        default = item.default
        if (
            name.startswith("ratelimit_")
            and isinstance(default, str)
            and " per " in default
        ):
            env[name.upper()] = HIGH_LIMIT
    if not has_rate_limiter():
        facts.append(("rate limits", "not available in this build"))
    elif redis_answers():
        env["RATELIMIT_STORAGE_URI"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
        facts.append(("rate limits", f"Redis db {REDIS_DB}, each limit {HIGH_LIMIT}"))
    else:
        facts.append(("rate limits", "in memory: no Redis answers on 127.0.0.1:6379"))
    if "redis_url" in settings and redis_answers():
        env["REDIS_URL"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
    if "metrics_allowed_networks" in settings:
        env["METRICS_ALLOWED_NETWORKS"] = "127.0.0.1/32"
    return env


def tuning_facts(env: dict[str, str]) -> list[tuple[str, str]]:
    return [(name, env.get(name, "default")) for name in TUNING_VARIABLES]


def login(base_url: str, email: str) -> str:
    status, body = http(
        "POST",
        f"{base_url}/api/v1/auth/login",
        {"email": email, "password": dataset.PASSWORD},
    )
    if status != 200:
        raise RuntimeError(f"login as {email} failed with {status}: {body}")
    token: str = body["access_token"]
    return token


def deep_cursor(conn: psycopg.Connection[Any], offset: int, secret_key: str) -> str:
    """Return the cursor a client has after paging past ``offset`` rows.

    Paging there through the API would take 10,000 requests, so the cursor
    is signed here with the app's own codec and secret.
    """
    from bastion.pagination import CursorCodec, Position, page_scope

    account = dataset.account_id(0)
    row = conn.execute(
        """
        SELECT created_at, id
        FROM contacts
        WHERE account_id = %s AND deleted_at IS NULL
        ORDER BY created_at, id
        OFFSET %s
        LIMIT 1
        """,
        (account, offset - 1),
    ).fetchone()
    assert row is not None
    return CursorCodec(secret_key).encode(
        Position(row[0], row[1]), scope=page_scope("contacts", account)
    )


def detect_features(
    app: Gunicorn,
    fixture: Fixture,
    conn: psycopg.Connection[Any],
    facts: list[tuple[str, str]],
) -> None:
    """Probe the running app and add what it offers to ``fixture.features``."""
    small = fixture.auth(fixture.small_token)
    status, _ = http(
        "POST", f"{app.url}/api/v1/contacts/import", {"contacts": []}, small
    )
    if status not in (404, 405):
        fixture.features.add("import")
    deep = f"{app.url}/api/v1/contacts?limit=50&cursor={fixture.deep_cursor}"
    status, body = http("GET", deep, headers=fixture.auth(fixture.big_token))
    if status == 200 and body and body.get("items"):
        fixture.features.add("deep_cursor")
    else:
        facts.append(("deep page", f"the signed cursor was rejected with {status}"))
    status = http("GET", f"{app.url}/metrics")[0]
    facts.append(
        ("metrics", "on" if status == 200 else f"off (GET /metrics: {status})")
    )
    row = conn.execute(
        "SELECT relrowsecurity FROM pg_class WHERE relname = 'contacts'"
    ).fetchone()
    facts.append(("row-level security on contacts", "on" if row and row[0] else "off"))
    count = conn.execute(
        """
        SELECT count(*) FILTER (WHERE account_id = %(small)s),
               count(*) FILTER (WHERE account_id = %(big)s)
        FROM contacts
        WHERE search_text LIKE %(pattern)s
        """,
        {
            "small": dataset.account_id(1),
            "big": dataset.account_id(0),
            "pattern": f"%{fixture.search_query}%",
        },
    ).fetchone()
    assert count is not None
    facts.append(
        (
            "search",
            f"q={fixture.search_query} matches {count[0]:,} rows of the small "
            f"account and {count[1]:,} of the big one",
        )
    )


def log_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def hash_slots(env: dict[str, str]) -> int:
    """Return how many password hashes one worker computes at once, or 0."""
    defaults = {item.name: item.default for item in dataclasses.fields(Settings)}
    per_worker = env.get("PASSWORD_HASH_CONCURRENCY") or defaults.get(
        "password_hash_concurrency"
    )
    return int(per_worker) if isinstance(per_worker, int | str) else 0
