"""Real processes for tests: gunicorn, a private PostgreSQL cluster, Redis.

Each helper picks a free loopback port, and each wait is bounded in time.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import requests

from bastion.devenv import _as_postgres_user, _find_pg_bin
from tests.conftest import PASSWORD, UNREACHED_RATE_LIMITS, unique_email

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    predicate, timeout: float, interval: float = 0.05, what: str = ""
) -> float:
    """Poll ``predicate`` until it is true; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise TimeoutError(f"{what or predicate} not true after {timeout} s")


def child_pids(parent: int) -> set[int]:
    """Return the ids of the live processes whose parent is ``parent``."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] != "Z":
            children.add(int(entry.name))
    return children


def pid_owning_port(local_port: int, candidates: set[int]) -> int | None:
    """Return which of ``candidates`` owns the TCP socket on ``local_port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                inodes.add(fields[9])
    for pid in candidates:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        if any(link == f"socket:[{inode}]" for inode in inodes for link in links):
            return pid
    return None


class Gunicorn:
    """gunicorn started from gunicorn.conf.py, logging to a file."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        inherited = {k: v for k, v in os.environ.items() if not k.endswith("_FILE")}
        self.env = {
            **inherited,
            "BASTION_ENV": "test",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "BCRYPT_ROUNDS": "4",
            "PORT": str(self.port),
            "GUNICORN_WORKERS": "2",
            # Load and fault tests send many requests from one address.
            **UNREACHED_RATE_LIMITS,
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 30) -> Gunicorn:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        workers = int(self.env["GUNICORN_WORKERS"])
        wait_for(
            lambda: self._answers("/healthz") and len(self.worker_pids()) == workers,
            ready_timeout,
            what="gunicorn ready",
        )
        return self

    def _answers(self, path: str) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
        try:
            return requests.get(self.base_url + path, timeout=2).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            # A worker still importing the app can accept and not answer yet.
            return False

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def worker_pids(self) -> set[int]:
        return child_pids(self.pid)

    def stop(self, timeout: float = 30) -> int:
        """Send SIGTERM and wait; return the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=5)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self, event: str | None = None) -> list[dict[str, Any]]:
        """Return the JSON log lines; a line that is not JSON fails the test."""
        records = []
        for line in self.log_text().splitlines():
            record = json.loads(line)
            assert isinstance(record, dict), line
            if event is None or record.get("event") == event:
                records.append(record)
        return records


class PostgresCluster:
    """A throwaway PostgreSQL cluster of the test's own, on a free port."""

    def __init__(self) -> None:
        self.initdb = _find_pg_bin("initdb")
        self.pg_ctl = _find_pg_bin("pg_ctl")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="bastion-pg-"))
        self.data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")

    @property
    def available(self) -> bool:
        return bool(self.initdb and self.pg_ctl)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run(
            _as_postgres_user(list(args)),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def init(self) -> None:
        assert self.initdb
        self._run(
            self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N"
        )

    def start(self) -> None:
        assert self.pg_ctl
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c max_connections=50"
        )
        log = str(self.root / "server.log")
        self._run(
            self.pg_ctl, "-D", str(self.data), "-l", log, "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        assert self.pg_ctl
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        if self.pg_ctl and (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A redis-server of the test's own on a free port, without persistence."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.binary
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(answers, 10, what="redis-server listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@dataclass
class Tenant:
    """An owner signed up over HTTP, with a live access token."""

    base_url: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def api(self) -> str:
        return f"{self.base_url}/api/v1"

    def create_contact(self, **fields: str) -> dict:
        body = {"name": "Fault", "email": f"c-{secrets.token_hex(6)}@example.com"}
        response = requests.post(
            f"{self.api}/contacts",
            json={**body, **fields},
            headers=self.headers,
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return response.json()


def sign_up(base_url: str) -> Tenant:
    email = unique_email("fault")
    api = f"{base_url}/api/v1"
    signup = requests.post(
        f"{api}/auth/signup",
        json={
            "account_name": "Faults",
            "name": "Op",
            "email": email,
            "password": PASSWORD,
        },
        timeout=10,
    )
    assert signup.status_code == 201, signup.text
    login = requests.post(
        f"{api}/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert login.status_code == 200, login.text
    return Tenant(base_url, email, login.json()["access_token"])
