"""Fixtures: a fresh PostgreSQL database per run, the app, and factories.

The test database is created on the server of ``ADMIN_DATABASE_URL`` (or
``DATABASE_URL``), which must connect as a superuser, with the name
``TEST_DATABASE_NAME`` (default ``bastion_test``), dropped first if present.
The roles ``<name>_owner`` and ``<name>_app`` are set up as
``flask db create-roles`` does, the migrations run as the owner, and the
app connects as the application role, as in production. With
``TEST_USE_EXISTING_DATABASE=1`` the suite uses that database as it finds it
instead: ``make test-compat`` migrates it with newer code, then runs an
older commit's tests on it. Tests make their own accounts, so none depends
on rows another test made.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg import sql

from bastion import create_app, migrate
from bastion.config import Settings
from bastion.devenv import with_user
from bastion.logging import json_formatter
from bastion.mail import wait_for_outgoing_mail
from bastion.migrate import database_name, with_database
from bastion.roles import RoleTimeouts, create_roles

PASSWORD = "correct horse battery staple"

# Keys that must never appear in any JSON body the API returns.
FORBIDDEN_KEYS = {
    "password",
    "password_hash",
    "failed_login_count",
    "locked_until",
    "deleted_at",
    "token_hash",
    "private_key",
    "account_id",
    "version",
    "search_text",
}


def find_forbidden_keys(body: Any, path: str = "$") -> list[str]:
    """Return the paths of forbidden keys anywhere in a decoded JSON body."""
    found: list[str] = []
    if path == "$.error.fields":
        # Validation errors are keyed by the request's own field names.
        return found
    if path == "$" and isinstance(body, dict) and "openapi" in body:
        # The OpenAPI document names request fields such as password; it
        # describes the API and carries no stored data.
        return found
    if isinstance(body, dict):
        for key, value in body.items():
            if key in FORBIDDEN_KEYS:
                found.append(f"{path}.{key}")
            found += find_forbidden_keys(value, f"{path}.{key}")
    elif isinstance(body, list):
        for index, value in enumerate(body):
            found += find_forbidden_keys(value, f"{path}[{index}]")
    return found


class ScanningClient(FlaskClient):
    """A test client that fails on any response leaking a forbidden key."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        # Read and close the body as a WSGI server does, so callbacks
        # registered with call_on_close (such as mail delivery) run.
        response.get_data()
        response.close()
        if response.is_json:
            leaked = find_forbidden_keys(response.get_json(silent=True))
            assert not leaked, f"response leaks {leaked}"
        return response


def random_client_address() -> str:
    """Return an address in 198.18.0.0/15, a range reserved for testing."""
    return str(ipaddress.IPv4Address("198.18.0.0") + secrets.randbelow(2**17))


# Timeouts of the test application role: short, so the timeout tests run
# fast, yet far above what any statement of the suite needs.
TEST_TIMEOUTS = {
    "DB_STATEMENT_TIMEOUT_MS": "2000",
    "DB_LOCK_TIMEOUT_MS": "1000",
    "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": "10000",
}


def database_url_for(name: str) -> str:
    """Return the superuser URL of database ``name``."""
    base = (
        os.environ.get("ADMIN_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/bastion"
    )
    return with_database(base, name)


def role_urls(admin_url: str) -> tuple[str, str]:
    """Return the application and migration URLs for the admin URL's database."""
    name = database_name(admin_url)
    return (
        with_user(admin_url, f"{name}_app"),
        with_user(admin_url, f"{name}_owner"),
    )


def recreate_database(url: str) -> None:
    admin = with_database(url, "postgres")
    name = sql.Identifier(database_name(url))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


# Mail from every app the tests build lands here; tests pick their message
# by its recipient.
OUTBOX_DIR = Path(tempfile.mkdtemp(prefix="bastion-outbox-"))
# Every test shares 127.0.0.1 as its client address, so apps get limits no
# test reaches unless it sets its own; tests of the limits set small ones.
UNREACHED_RATE_LIMITS = {
    name: "100000 per minute"
    for name in (
        "RATELIMIT_DEFAULT",
        "RATELIMIT_LOGIN_PER_ADDRESS",
        "RATELIMIT_LOGIN_PER_EMAIL",
        "RATELIMIT_SIGNUP",
        "RATELIMIT_PASSWORD_RESET_PER_ADDRESS",
        "RATELIMIT_PASSWORD_RESET_PER_EMAIL",
        "RATELIMIT_REFRESH",
        "RATELIMIT_SEARCH",
        "RATELIMIT_IMPORT",
    )
}


def make_settings(database_url: str, **overrides: str) -> Settings:
    owner = database_name(database_url) + "_owner"
    environ = {
        "BASTION_ENV": "test",
        "DATABASE_URL": database_url,
        "MIGRATION_DATABASE_URL": with_user(database_url, owner),
        **TEST_TIMEOUTS,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "JWT_KEY_ENCRYPTION_KEY": secrets.token_urlsafe(32),
        "BCRYPT_ROUNDS": "4",
        "DB_POOL_MAX_SIZE": "4",
        "DB_POOL_TIMEOUT": "2",
        "SIGNING_KEY_CACHE_SECONDS": "0",
        "MAIL_BACKEND": "file",
        "MAIL_OUTBOX_DIR": str(OUTBOX_DIR),
        **UNREACHED_RATE_LIMITS,
        **overrides,
    }
    return Settings.from_env(environ)


def drop_database(url: str) -> None:
    """Drop a scratch database and the two roles made for it."""
    admin = with_database(url, "postgres")
    name = database_name(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )
        for role in (f"{name}_owner", f"{name}_app"):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def configured_database_name() -> str:
    return os.environ.get("TEST_DATABASE_NAME", "bastion_test")


# What a leaked secret looks like in a log line: a password hash, a bearer
# header, or a JWT (its header and payload both start with '{"').
LEAK_PATTERN = re.compile(
    r"\$bcrypt-sha256\$|\$2[aby]?\$\d\d\$|Bearer |eyJ[\w-]{8,}\.eyJ[\w-]{8,}"
)


class LogCollector(logging.Handler):
    """Keep every formatted log line, as the JSON log handler writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(json_formatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="session", autouse=True)
def _suite_logs_carry_no_secrets() -> Iterator[None]:
    """Search every log line the whole run wrote in this process.

    A leak fails the teardown of the run's last test.
    """
    collector = LogCollector()
    logging.getLogger().addHandler(collector)
    yield
    logging.getLogger().removeHandler(collector)
    leaked = [
        line
        for line in collector.lines
        if PASSWORD in line or LEAK_PATTERN.search(line)
    ]
    assert not leaked, f"{len(leaked)} log line(s) carry a secret: {leaked[:3]}"


@pytest.fixture(scope="session", autouse=True)
def _remove_outbox() -> Iterator[None]:
    yield
    shutil.rmtree(OUTBOX_DIR, ignore_errors=True)


def prepare_database(admin_url: str) -> str:
    """Recreate a database, set up its roles, migrate it; return the app URL."""
    recreate_database(admin_url)
    app_url, owner_url = role_urls(admin_url)
    settings = make_settings(app_url)
    create_roles(
        admin_url,
        app_url=app_url,
        migration_url=owner_url,
        timeouts=RoleTimeouts.from_settings(settings),
    )
    migrate.upgrade(owner_url)
    return app_url


@pytest.fixture(scope="session")
def admin_database_url() -> str:
    """The superuser URL of the test database."""
    return database_url_for(configured_database_name())


@pytest.fixture(scope="session")
def database_url(admin_database_url: str) -> str:
    """The application role's URL of the freshly migrated test database."""
    if os.environ.get("TEST_USE_EXISTING_DATABASE", "").lower() in {"1", "true"}:
        return role_urls(admin_database_url)[0]
    return prepare_database(admin_database_url)


@pytest.fixture()
def scratch_database(database_url: str) -> Iterator[Any]:
    """Make empty databases named after the test database; drop them afterwards.

    They are reached as a superuser. Depending on ``database_url`` makes sure
    the cluster-wide role ``bastion_definer``, which the migrations need,
    exists.
    """
    made: list[str] = []

    def create(suffix: str) -> str:
        url = database_url_for(f"{configured_database_name()}_{suffix}")
        recreate_database(url)
        made.append(url)
        return url

    yield create
    for url in made:
        drop_database(url)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    application.test_client_class = ScanningClient
    application.extensions["bastion"].keys.rotate_key()
    yield application
    application.extensions["bastion"].db.close()


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    # Each test's requests come from an address of its own, so the failed
    # logins of one test never lock another test's client out.
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = random_client_address()
    return client


@pytest.fixture()
def db_conn(
    database_url: str, admin_database_url: str
) -> Iterator[psycopg.Connection[Any]]:
    """A direct superuser connection for checking what the API wrote.

    A superuser bypasses row-level security, so it sees every account.
    """
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        yield conn


@dataclass
class Member:
    """A user made by a factory, with a live access token."""

    id: str
    account_id: str
    email: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def read_mail(to: str, outbox: Path = OUTBOX_DIR) -> list[EmailMessage]:
    """Return the messages in the file outbox addressed to ``to``, oldest first."""
    wait_for_outgoing_mail()
    messages = []
    for path in sorted(outbox.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        if message["To"] == to:
            messages.append(message)
    return messages


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


class Factory:
    """Make accounts and users through the API, as a client would."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def owner(self) -> Member:
        email = unique_email("owner")
        response = self.client.post(
            "/api/v1/auth/signup",
            json={
                "account_name": "Test account",
                "name": "Owner",
                "email": email,
                "password": PASSWORD,
            },
        )
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        tokens = login(self.client, email)
        return Member(
            id=body["user"]["id"],
            account_id=body["account"]["id"],
            email=email,
            role="owner",
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
        )

    def user(self, owner: Member, role: str) -> Member:
        email = unique_email(role)
        response = self.client.post(
            "/api/v1/users",
            json={
                "name": role.title(),
                "email": email,
                "role": role,
                "password": PASSWORD,
            },
            headers=owner.headers,
        )
        assert response.status_code == 201, response.get_json()
        tokens = login(self.client, email)
        return Member(
            id=response.get_json()["id"],
            account_id=owner.account_id,
            email=email,
            role=role,
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
        )

    def contact(self, member: Member, **fields: Any) -> dict[str, Any]:
        body = {"name": "Grace Hopper", "email": unique_email("contact"), **fields}
        response = self.client.post(
            "/api/v1/contacts", json=body, headers=member.headers
        )
        assert response.status_code == 201, response.get_json()
        contact: dict[str, Any] = response.get_json()
        return contact


@pytest.fixture()
def factory(client: FlaskClient) -> Factory:
    return Factory(client)


@pytest.fixture()
def team(factory: Factory) -> dict[str, Member]:
    """An account with one user of each role."""
    owner = factory.owner()
    return {
        "owner": owner,
        "admin": factory.user(owner, "admin"),
        "member": factory.user(owner, "member"),
        "viewer": factory.user(owner, "viewer"),
    }


@pytest.fixture(scope="module")
def live_server(
    app: Flask, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real gunicorn with two workers on the test database; yields its URL.

    Module-scoped, so it stops before tests that watch the database's
    connections run.
    """
    from tests.processes import Gunicorn

    server = Gunicorn(
        tmp_path_factory.mktemp("live_server") / "gunicorn.log",
        DATABASE_URL=database_url,
        # The same key as the app fixture, so both read the signing keys.
        JWT_KEY_ENCRYPTION_KEY=app.extensions[
            "bastion"
        ].settings.jwt_key_encryption_key,
        # Tokens outlive the longest fuzz run, which logs in only once.
        ACCESS_TOKEN_TTL_SECONDS="3600",
    ).start()
    try:
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture()
def make_app(database_url: str, settings: Settings) -> Iterator[Any]:
    """Build extra apps with setting overrides; their pools close afterwards.

    They share the signing keys of the session's app, as instances of one
    deployment do.
    """
    made: list[Flask] = []

    def build(**overrides: str) -> Flask:
        overrides.setdefault("JWT_KEY_ENCRYPTION_KEY", settings.jwt_key_encryption_key)
        application = create_app(make_settings(database_url, **overrides))
        application.test_client_class = ScanningClient
        made.append(application)
        return application

    yield build
    for application in made:
        application.extensions["bastion"].db.close()
