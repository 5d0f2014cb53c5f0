"""The benchmark's database: generated once with COPY, then cloned per run.

Every account, user and contact id is ``md5(<label> || n)::uuid``, so the
load generator and pgbench can name rows without a lookup. Account 0 is the
big account with about half the contacts, so that a cursor from
500,000 rows in exists within one account (cursors are per account). The
other accounts share the rest evenly. Every account has an owner whose
password is ``PASSWORD``.

The loaded database is kept as a template (``<name>_seed``) whose comment
holds a hash of the migrations and of the size parameters; each run clones
it, so the writes of one run never reach the next, and a changed schema
triggers a fresh load.

Both databases use the roles ``<name>_app`` and ``<name>_owner`` that
``bastion.roles.create_roles`` sets up, as a deployment would: the app
connects as the row-only role under row-level security. The rows are
loaded by the superuser, which row-level security does not bind.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from bastion import migrate
from bastion.config import Settings
from bastion.devenv import with_user
from bastion.migrate import with_database
from bastion.passwords import PasswordHasher
from bastion.roles import RoleTimeouts, create_roles

PASSWORD = "bench password that is long enough"
# Bump when the generated rows change, so cached templates are rebuilt.
GENERATOR_VERSION = 1

FIRST_NAMES = (
    "ada alan anna barbara bjarne carl claude dana dennis edsger emma frances "
    "grace guido hedy ivan james joan john ken linus lisa margaret maria "
    "martin mary niklaus olga peter radia rob sophie tim tony ursula victor "
    "werner xavier yukihiro zoe"
).split()
LAST_NAMES = (
    "allen backus berners cerf dijkstra engelbart floyd gosling hamilton "
    "hopper iverson jobs kay knuth lamport liskov lovelace mccarthy minsky "
    "naur norvig perlman ritchie rossum shannon stallman stroustrup "
    "thompson torvalds turing ullman wirth wozniak"
).split()
COMPANIES = (
    "acme globex initech umbrella hooli stark wayne wonka soylent cyberdyne "
    "tyrell aperture oscorp vandelay dunder massive gringotts monarch "
    "nakatomi oceanic"
).split()
DOMAINS = ("example.com", "example.org", "example.net")


@dataclass(frozen=True)
class Shape:
    """How many rows the generated database holds."""

    contacts: int
    accounts: int
    # Rows before the deep page's cursor, within the big account.
    deep_offset: int
    bcrypt_rounds: int

    @property
    def big_account_contacts(self) -> int:
        return self.contacts - self.per_account * (self.accounts - 1)

    @property
    def per_account(self) -> int:
        # The big account contains the deep offset plus one more page; the
        # others share what is left.
        return (self.contacts - self.deep_offset - 500) // (self.accounts - 1)

    def contact_range(self, account: int) -> tuple[int, int]:
        """Return the first and last contact number of ``account``."""
        if account == 0:
            return 1, self.big_account_contacts
        first = self.big_account_contacts + (account - 1) * self.per_account + 1
        return first, first + self.per_account - 1


FULL = Shape(contacts=1_000_000, accounts=1_000, deep_offset=500_000, bcrypt_rounds=12)
SMOKE = Shape(contacts=3_000, accounts=10, deep_offset=1_000, bcrypt_rounds=4)


def account_id(n: int) -> str:
    return _md5_uuid("bench-account-", n)


def user_id(n: int) -> str:
    return _md5_uuid("bench-user-", n)


def contact_id(n: int) -> str:
    return _md5_uuid("bench-contact-", n)


def owner_email(n: int) -> str:
    return f"owner{n}@bench.example.com"


def _md5_uuid(label: str, n: int) -> str:
    return str(uuid.UUID(hashlib.md5(f"{label}{n}".encode()).hexdigest()))


def schema_hash(shape: Shape) -> str:
    """Hash the migrations, the shape and the generator: the cache key."""
    digest = hashlib.sha256()
    for path in sorted(migrate.MIGRATIONS_DIR.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(json.dumps(asdict(shape), sort_keys=True).encode())
    digest.update(f"generator-{GENERATOR_VERSION}".encode())
    return digest.hexdigest()[:16]


def _log(message: str) -> None:
    print(f"bench: {message}", flush=True)


def _seed_comment(admin_url: str, seed_name: str) -> str | None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datname = %s",
            (seed_name,),
        ).fetchone()
    return None if row is None else (row[0] or "")


def role_urls(admin_url: str, name: str, database: str) -> tuple[str, str]:
    """Return the app and migration role URLs of ``database`` for run ``name``."""
    url = with_database(admin_url, database)
    return with_user(url, f"{name}_app"), with_user(url, f"{name}_owner")


def _create_roles(admin_url: str, name: str, database: str) -> str:
    """Set up the roles on ``database``; return the migration role's URL."""
    app_url, owner_url = role_urls(admin_url, name, database)
    create_roles(
        with_database(admin_url, database),
        app_url=app_url,
        migration_url=owner_url,
        timeouts=RoleTimeouts(
            statement_ms=Settings.db_statement_timeout_ms,
            lock_ms=Settings.db_lock_timeout_ms,
            idle_in_transaction_ms=Settings.db_idle_in_transaction_ms,
        ),
    )
    return owner_url


def prepare_database(admin_url: str, name: str, shape: Shape) -> float:
    """Create database ``name`` as a fresh clone of the seed; return seconds spent.

    ``admin_url`` is a superuser URL on any database of the server.
    """
    started = time.perf_counter()
    seed_name = f"{name}_seed"
    wanted = schema_hash(shape)
    if _seed_comment(admin_url, seed_name) != wanted:
        _log(f"loading {shape.contacts:,} contacts into {seed_name} (schema {wanted})")
        _build_seed(admin_url, name, seed_name, shape, wanted)
    else:
        _log(f"reusing {seed_name} (schema {wanted} unchanged)")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )
        # FILE_COPY copies the files instead of WAL-logging every block,
        # which is several times faster for a database of this size.
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(seed_name)
            )
        )
    # The clone belongs to the superuser that made it, and role settings
    # per database do not travel with a template.
    _create_roles(admin_url, name, name)
    return time.perf_counter() - started


def _build_seed(
    admin_url: str, name: str, seed_name: str, shape: Shape, wanted: str
) -> None:
    seed_url = with_database(admin_url, seed_name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(seed_name)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(seed_name)))
    migrate.upgrade(_create_roles(admin_url, name, seed_name))

    started = time.perf_counter()
    password_hash = PasswordHasher(shape.bcrypt_rounds).hash(PASSWORD)
    with psycopg.connect(seed_url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        # Foreign keys are checked by triggers; the generated rows are
        # consistent by construction, so replica mode skips those checks.
        conn.execute("SET session_replication_role = replica")
        indexes = _drop_secondary_indexes(conn)
        _copy_accounts_and_users(conn, shape, password_hash)
        with conn.cursor().copy(
            "COPY contacts (id, account_id, name, email, phone, company, notes, "
            "tags, created_by, created_at, updated_at) FROM STDIN"
        ) as copy:
            for chunk in _contact_chunks(shape):
                copy.write(chunk)
        _log(f"copied contacts in {time.perf_counter() - started:.1f} s")
        for definition in indexes:
            conn.execute(definition)
        conn.execute("VACUUM (ANALYZE)")
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(seed_name), sql.Literal(wanted)
            )
        )
    _log(f"seed ready in {time.perf_counter() - started:.1f} s")


def _drop_secondary_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the contacts indexes that no constraint owns; return their DDL."""
    rows = conn.execute(
        """
        SELECT i.relname, pg_get_indexdef(i.oid)
        FROM pg_index AS x
        JOIN pg_class AS i ON i.oid = x.indexrelid
        WHERE x.indrelid = 'contacts'::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.oid)
        """
    ).fetchall()
    for index_name, _ in rows:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index_name)))
    return [definition for _, definition in rows]


def _copy_accounts_and_users(
    conn: psycopg.Connection[Any], shape: Shape, password_hash: str
) -> None:
    with conn.cursor().copy("COPY accounts (id, name) FROM STDIN") as copy:
        for n in range(shape.accounts):
            copy.write_row((account_id(n), f"Bench account {n}"))
    with conn.cursor().copy(
        "COPY users (id, account_id, name, email, role, password_hash) FROM STDIN"
    ) as copy:
        for n in range(shape.accounts):
            copy.write_row(
                (
                    user_id(n),
                    account_id(n),
                    f"Owner {n}",
                    owner_email(n),
                    "owner",
                    password_hash,
                )
            )


def _contact_chunks(shape: Shape, rows_per_chunk: int = 20_000) -> Iterator[bytes]:
    """Yield COPY text rows for every contact, in account order."""
    rng = random.Random(20_240_101)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    lines: list[str] = []
    for account in range(shape.accounts):
        first, last = shape.contact_range(account)
        owner = user_id(account)
        account_uuid = account_id(account)
        for n in range(first, last + 1):
            given = rng.choice(FIRST_NAMES)
            family = rng.choice(LAST_NAMES)
            company = rng.choice(COMPANIES)
            email = f"{given}.{family}.{n}@{rng.choice(DOMAINS)}"
            created = (base + timedelta(seconds=n)).isoformat()
            notes = "Met at a conference." if n % 10 == 0 else "\\N"
            lines.append(
                f"{contact_id(n)}\t{account_uuid}\t{given.title()} {family.title()}\t"
                f"{email}\t+1 555 {n % 10_000:04d}\t{company.title()}\t{notes}\t"
                f"{{}}\t{owner}\t{created}\t{created}\n"
            )
            if len(lines) >= rows_per_chunk:
                yield "".join(lines).encode()
                lines.clear()
    if lines:
        yield "".join(lines).encode()
