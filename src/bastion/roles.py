"""Set up the PostgreSQL roles Bastion runs under: ``flask db create-roles``.

Three roles, so that a faulty query in the application cannot change the
schema or read across accounts:

- the migration role (the user of ``MIGRATION_DATABASE_URL``) owns the
  database, its schema and every table, and runs the migrations. Row-level
  security is forced on tenant tables, so the policies bind it too.
- the application role (the user of ``DATABASE_URL``) can only select,
  insert, update and delete rows and execute functions: no DDL, no TRUNCATE,
  no ownership, no superuser, no BYPASSRLS. Its statement, lock and
  idle-in-transaction timeouts are set on the role in this database.
- ``bastion_definer`` cannot log in. It has BYPASSRLS and owns only the
  SECURITY DEFINER functions through which the application looks up the
  account of an email, token or session before any account is bound.

Everything here is idempotent: run it again after changing a timeout or a
password, or after migrations made by another role.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from bastion.config import Settings
from bastion.migrate import database_name, with_database

DEFINER_ROLE = "bastion_definer"


@dataclass(frozen=True)
class RoleTimeouts:
    """The application role's timeouts, in milliseconds."""

    statement_ms: int
    lock_ms: int
    idle_in_transaction_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RoleTimeouts:
        return cls(
            statement_ms=settings.db_statement_timeout_ms,
            lock_ms=settings.db_lock_timeout_ms,
            idle_in_transaction_ms=settings.db_idle_in_transaction_ms,
        )


@dataclass(frozen=True)
class RoleNames:
    """The login roles and their passwords, as named by the two URLs."""

    app: str
    app_password: str | None
    owner: str
    owner_password: str | None
    database: str


def role_names(app_url: str, migration_url: str) -> RoleNames:
    """Read the role names from ``DATABASE_URL`` and ``MIGRATION_DATABASE_URL``."""
    app = urlsplit(app_url)
    owner = urlsplit(migration_url)
    if not app.username or not owner.username:
        raise ValueError("DATABASE_URL and MIGRATION_DATABASE_URL must name a user")
    if app.username == owner.username:
        raise ValueError(
            "DATABASE_URL and MIGRATION_DATABASE_URL must name different users"
        )
    database = database_name(app_url)
    if database != database_name(migration_url):
        raise ValueError(
            "DATABASE_URL and MIGRATION_DATABASE_URL must name the same database"
        )
    return RoleNames(
        app=unquote(app.username),
        app_password=unquote(app.password) if app.password else None,
        owner=unquote(owner.username),
        owner_password=unquote(owner.password) if owner.password else None,
        database=database,
    )


def _ensure_role(
    conn: psycopg.Connection[tuple[object, ...]],
    name: str,
    attributes: str,
    password: str | None,
) -> None:
    role = sql.Identifier(name)
    exists = conn.execute(
        "SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)
    ).fetchone()
    if not exists:
        try:
            conn.execute(sql.SQL("CREATE ROLE {}").format(role))
        except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            # Another process created it between the check and here.
            pass
    conn.execute(sql.SQL("ALTER ROLE {} " + attributes).format(role))
    if password is not None:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password))
        )


def create_roles(
    admin_url: str, *, app_url: str, migration_url: str, timeouts: RoleTimeouts
) -> RoleNames:
    """Create or update the three roles and their rights on the database.

    ``admin_url`` must connect as a superuser (BYPASSRLS and the database
    owner change need one); only its server, user and password are used.
    The roles and the database are those that ``app_url`` and
    ``migration_url`` name.
    """
    names = role_names(app_url, migration_url)
    app = sql.Identifier(names.app)
    owner = sql.Identifier(names.owner)
    definer = sql.Identifier(DEFINER_ROLE)
    database = sql.Identifier(names.database)

    with psycopg.connect(
        with_database(admin_url, names.database), autocommit=True
    ) as conn:
        _ensure_role(
            conn,
            names.owner,
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
            names.owner_password,
        )
        _ensure_role(
            conn,
            names.app,
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
            "NOINHERIT",
            names.app_password,
        )
        _ensure_role(
            conn,
            DEFINER_ROLE,
            "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS",
            None,
        )
        statements: list[sql.Composed] = [
            # Migrations hand the definer functions over to bastion_definer,
            # which needs membership.
            sql.SQL("GRANT {} TO {}").format(definer, owner),
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, owner),
            sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database),
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, app),
            sql.Composed([sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC")]),
            sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(app, definer),
            *_row_rights(owner, app),
            *_timeouts(app, database, timeouts),
        ]
        for statement in statements:
            conn.execute(statement)
        _hand_tables_to_owner(conn, names.owner)
    return names


def _row_rights(owner: sql.Identifier, app: sql.Identifier) -> list[sql.Composed]:
    """Return the grants of row rights on current and future objects."""
    # NOTE: this includes yoyo's bookkeeping tables, so the application role
    # could edit the migration log; it still cannot change the schema.
    rights = [
        ("SELECT, INSERT, UPDATE, DELETE", "TABLES"),
        ("USAGE, SELECT", "SEQUENCES"),
        ("EXECUTE", "FUNCTIONS"),
    ]
    statements = []
    for privileges, kind in rights:
        statements.append(
            sql.SQL("GRANT {} ON ALL {} IN SCHEMA public TO {}").format(
                sql.SQL(privileges), sql.SQL(kind), app
            )
        )
        statements.append(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                "GRANT {} ON {} TO {}"
            ).format(owner, sql.SQL(privileges), sql.SQL(kind), app)
        )
    return statements


def _timeouts(
    app: sql.Identifier, database: sql.Identifier, timeouts: RoleTimeouts
) -> list[sql.Composed]:
    """Return the per-role timeouts, which apply from the next connection on.

    Set on the role rather than per connection, they also hold behind a
    transaction-pooling pgbouncer, which drops connection options.
    """
    values = {
        "statement_timeout": timeouts.statement_ms,
        "lock_timeout": timeouts.lock_ms,
        "idle_in_transaction_session_timeout": timeouts.idle_in_transaction_ms,
    }
    return [
        sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} = {}").format(
            app, database, sql.Identifier(name), sql.Literal(f"{value}ms")
        )
        for name, value in values.items()
    ]


def _hand_tables_to_owner(
    conn: psycopg.Connection[tuple[object, ...]], owner: str
) -> None:
    """Make the migration role own tables an earlier set-up made as another role."""
    rows = conn.execute(
        """
        SELECT c.oid::regclass::text
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
          AND c.relkind IN ('r', 'p')
          AND pg_get_userbyid(c.relowner) <> %s
        """,
        (owner,),
    ).fetchall()
    for (table,) in rows:
        # regclass output is already a quoted, schema-qualified name.
        conn.execute(
            sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                sql.SQL(str(table)), sql.Identifier(owner)
            )
        )
