"""Prepare a local development environment: ``python -m bastion.devenv``.

Used by ``make run`` and ``make test``; never by production. It

- generates development secrets under ``var/secrets`` when none are set,
- finds a PostgreSQL server at ``DATABASE_URL`` (default
  ``postgresql://postgres@127.0.0.1:5432/bastion``), or, when none accepts a
  connection and ``initdb`` is installed, starts a private cluster under
  ``var/pg`` on a free loopback port,
- creates the database when it is missing,
- writes ``var/dev.env``, a file of ``export`` lines for the shell: the
  superuser URL as ``ADMIN_DATABASE_URL`` (for ``flask db create-roles``),
  and URLs for the roles ``<database>_owner`` (``MIGRATION_DATABASE_URL``)
  and ``<database>_app`` (``DATABASE_URL``), which that command creates.

Running it again reuses everything it made.
"""

from __future__ import annotations

import argparse
import glob
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bastion.migrate import database_name, with_database

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / "var"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bastion"


def _log(message: str) -> None:
    print(f"devenv: {message}", file=sys.stderr)


def _secret_file(name: str) -> Path:
    path = VAR / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path


def _server_answers(conninfo: str) -> bool:
    try:
        with psycopg.connect(with_database(conninfo, "postgres"), connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _find_pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _start_private_cluster() -> str:
    initdb = _find_pg_bin("initdb")
    pg_ctl = _find_pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise SystemExit(
            "devenv: cannot connect to PostgreSQL at DATABASE_URL and initdb is "
            "not installed; start a server or set DATABASE_URL"
        )
    data_dir = VAR / "pg" / "data"
    port_file = VAR / "pg" / "port"
    if not data_dir.exists():
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(data_dir.parent, "postgres", "postgres")
        subprocess.run(  # noqa: S603 - fixed argv built from found binaries
            _as_postgres_user(
                [initdb, "-D", str(data_dir), "-U", "postgres", "--auth=trust"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    port = int(port_file.read_text()) if port_file.exists() else _free_port()
    port_file.write_text(str(port))
    url = f"postgresql://postgres@127.0.0.1:{port}/bastion"
    if not _server_answers(url):
        subprocess.run(  # noqa: S603 - fixed argv built from found binaries
            _as_postgres_user(
                [
                    pg_ctl,
                    "-D",
                    str(data_dir),
                    "-l",
                    str(VAR / "pg" / "server.log"),
                    "-o",
                    f"-p {port} -c listen_addresses=127.0.0.1 -k {data_dir}",
                    "-w",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    _log(f"no server at the default URL; started a private cluster on port {port}")
    return url


def _ensure_database(url: str, *, fresh: bool) -> None:
    name = database_name(url)
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        if fresh:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            _log(f"created database {name}")


def with_user(url: str, user: str) -> str:
    """Return ``url`` connecting as ``user`` without a password."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{quote(user)}@{host}{port}"))


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def prepare(database_url: str | None, *, shared_limits: bool = False) -> dict[str, str]:
    """Make the server, secrets and database ready; return the environment."""
    given = database_url or os.environ.get("ADMIN_DATABASE_URL")
    given = given or os.environ.get("DATABASE_URL")
    url = given or DEFAULT_DATABASE_URL
    for _ in range(10):
        if _server_answers(url):
            break
        if given:
            time.sleep(1)
            continue
        url = _start_private_cluster()
        break
    else:
        raise SystemExit(
            f"devenv: cannot connect to PostgreSQL at {url}; is the server running?"
        )
    _ensure_database(url, fresh=False)

    name = database_name(url)
    env = {
        # The admin commands find the app through FLASK_APP from any folder.
        "FLASK_APP": "bastion",
        "BASTION_ENV": os.environ.get("BASTION_ENV", "development"),
        "ADMIN_DATABASE_URL": url,
        "MIGRATION_DATABASE_URL": with_user(url, f"{name}_owner"),
        "DATABASE_URL": with_user(url, f"{name}_app"),
    }
    for name in ("SECRET_KEY", "JWT_KEY_ENCRYPTION_KEY"):
        if not (os.environ.get(name) or os.environ.get(f"{name}_FILE")):
            env[f"{name}_FILE"] = str(_secret_file(name.lower()))
    # Several gunicorn workers counting in memory would each allow the full
    # limit, so the development server shares counts in the local Redis.
    if shared_limits and "RATELIMIT_STORAGE_URI" not in os.environ:
        if _redis_answers(LOCAL_REDIS_URL):
            env["RATELIMIT_STORAGE_URI"] = LOCAL_REDIS_URL
        else:
            _log("no Redis at 127.0.0.1:6379; each worker counts rate limits alone")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", help="superuser URL (default: $ADMIN_DATABASE_URL)"
    )
    parser.add_argument(
        "--env-file", default=str(VAR / "dev.env"), help="where to write exports"
    )
    parser.add_argument(
        "--shared-limits",
        action="store_true",
        help="count rate limits in the local Redis when one runs",
    )
    args = parser.parse_args()

    env = prepare(args.database_url, shared_limits=args.shared_limits)
    path = Path(args.env_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    )
    _log(f"wrote {path}")


if __name__ == "__main__":
    main()
