"""Admin commands: ``flask db|accounts|users|keys|tokens ...``.

Commands that take a password read it from a prompt, or from the first line
of standard input when that is not a terminal. A password is never an option.
"""

from __future__ import annotations

import os
import sys
from uuid import UUID

import click
from flask import Flask
from flask.cli import AppGroup
from marshmallow import ValidationError

from bastion import migrate
from bastion.db import TxContext
from bastion.errors import BastionError
from bastion.passwords import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from bastion.policy import ROLES
from bastion.services import registry
from bastion.services.audit import CLI_ACTOR

db_cli = AppGroup("db", help="Apply and inspect schema migrations.")
accounts_cli = AppGroup("accounts", help="Manage accounts.")
users_cli = AppGroup("users", help="Manage users.")
keys_cli = AppGroup("keys", help="Manage the keys that sign access tokens.")
tokens_cli = AppGroup("tokens", help="Maintain stored tokens.")


def register_commands(app: Flask) -> None:
    for group in (db_cli, accounts_cli, users_cli, keys_cli, tokens_cli):
        app.cli.add_command(group)


def _cli_context(account_id: str | None = None) -> TxContext:
    return TxContext(account_id=account_id, actor=CLI_ACTOR)


def _read_password() -> str:
    if sys.stdin.isatty():
        password: str = click.prompt(
            "Password", hide_input=True, confirmation_prompt=True
        )
    else:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException(
                "no password on standard input; pipe one line, or run the "
                "command in a terminal to be prompted"
            )
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise click.ClickException(
            f"the password must be between {PASSWORD_MIN_LENGTH} and "
            f"{PASSWORD_MAX_LENGTH} characters long"
        )
    return password


def _fail_on_domain_error(exc: BastionError | ValidationError) -> click.ClickException:
    if isinstance(exc, ValidationError) and isinstance(exc.messages, dict):
        problems = [
            f"{name}: {' '.join(map(str, messages))}"
            for name, messages in sorted(exc.messages.items())
        ]
        return click.ClickException("invalid input: " + "; ".join(problems))
    if isinstance(exc, ValidationError):
        return click.ClickException(f"invalid input: {exc.messages}")
    return click.ClickException(exc.message)


# -- db ------------------------------------------------------------------------


@db_cli.command("upgrade")
@click.option(
    "--attempts",
    type=click.IntRange(min=1, max=20),
    default=migrate.DEFAULT_ATTEMPTS,
    show_default=True,
    help="Tries per run when a migration times out waiting for a lock.",
)
@click.option(
    "--retry-delay",
    type=click.FloatRange(min=0),
    default=migrate.DEFAULT_RETRY_DELAY,
    show_default=True,
    help="Seconds to wait after the first lock timeout; doubles on each retry.",
)
def db_upgrade(attempts: int, retry_delay: float) -> None:
    """Apply every pending migration, retrying on lock timeouts."""

    def report_retry(retry: migrate.Retry) -> None:
        click.echo(
            f"migration {retry.migration_id}: {retry.error} "
            f"(attempt {retry.attempt} of {retry.attempts}); "
            f"retrying in {retry.delay:g} s",
            err=True,
        )

    try:
        applied = migrate.upgrade(
            registry().settings.migration_database_url,
            attempts=attempts,
            retry_delay=retry_delay,
            on_retry=report_retry,
        )
    except migrate.MigrationLockError as exc:
        raise click.ClickException(str(exc)) from None
    for migration_id in applied:
        click.echo(f"applied {migration_id}")
    click.echo(f"applied {len(applied)} migration(s)")


def _admin_database_url() -> str:
    """Read the superuser URL from ADMIN_DATABASE_URL or its _FILE.

    It may hold a password, so it never comes from the command line.
    """
    file_name = os.environ.get("ADMIN_DATABASE_URL_FILE")
    if file_name:
        try:
            with open(file_name, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise click.ClickException(
                f"cannot read ADMIN_DATABASE_URL_FILE {file_name!r}: {exc.strerror}"
            ) from None
    url = os.environ.get("ADMIN_DATABASE_URL")
    if not url:
        raise click.ClickException(
            "set ADMIN_DATABASE_URL (or ADMIN_DATABASE_URL_FILE) to a superuser "
            "URL on the server"
        )
    return url


@db_cli.command("create-roles")
def db_create_roles() -> None:
    """Create or update the migration, application and definer roles.

    Connects as the superuser of ADMIN_DATABASE_URL (or the file named by
    ADMIN_DATABASE_URL_FILE); only its host, port, user and password are used.
    """
    from bastion.roles import DEFINER_ROLE, RoleTimeouts, create_roles

    admin_url = _admin_database_url()
    settings = registry().settings
    try:
        names = create_roles(
            admin_url,
            app_url=settings.database_url,
            migration_url=settings.migration_database_url,
            timeouts=RoleTimeouts.from_settings(settings),
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"roles ready: owner {names.owner}, application {names.app}, "
        f"definer {DEFINER_ROLE} on database {names.database}"
    )


@db_cli.command("status")
def db_status() -> None:
    """List applied and pending migrations; exit 1 if any is pending."""
    states = migrate.status(registry().settings.migration_database_url)
    for migration_id, state in states:
        click.echo(f"{state:8} {migration_id}")
    pending = sum(state == "pending" for _, state in states)
    if pending:
        raise click.ClickException(f"{pending} migration(s) pending")


# -- accounts and users --------------------------------------------------------


@accounts_cli.command("create")
@click.option("--name", required=True, help="Account name.")
@click.option("--owner-email", required=True, help="Login email of the owner.")
@click.option("--owner-name", required=True, help="Display name of the owner.")
def accounts_create(name: str, owner_email: str, owner_name: str) -> None:
    """Create an account with its owner; the password is read from a prompt or stdin."""
    from bastion.schemas.auth import SignupSchema

    password = _read_password()
    try:
        data = SignupSchema().load(
            {
                "account_name": name,
                "name": owner_name,
                "email": owner_email,
                "password": password,
            }
        )
        account, owner = registry().accounts.create_account(
            _cli_context(),
            account_name=data["account_name"],
            owner_name=data["name"],
            owner_email=data["email"],
            password=data["password"],
            actor_id=CLI_ACTOR,
        )
    except (BastionError, ValidationError) as exc:
        raise _fail_on_domain_error(exc) from None
    click.echo(f"account {account['id']}")
    click.echo(f"owner   {owner['id']}")


@users_cli.command("create")
@click.option(
    "--account", "account_id", required=True, type=click.UUID, help="Account id."
)
@click.option("--email", required=True, help="Login email of the new user.")
@click.option("--name", required=True, help="Display name.")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="member",
    show_default=True,
    help="Role; 'owner' hands ownership over from the current owner.",
)
def users_create(account_id: UUID, email: str, name: str, role: str) -> None:
    """Create a user; the password is read from a prompt or stdin."""
    from bastion.schemas.users import UserCreateSchema

    password = _read_password()
    try:
        data = UserCreateSchema().load(
            {"name": name, "email": email, "role": role, "password": password}
        )
        user = registry().users.create_user(
            _cli_context(str(account_id)), actor_role="owner", **data
        )
    except (BastionError, ValidationError) as exc:
        raise _fail_on_domain_error(exc) from None
    click.echo(str(user["id"]))


@users_cli.command("set-password")
@click.option("--email", required=True, help="Login email of the user.")
def users_set_password(email: str) -> None:
    """Set a user's password and end their sessions."""
    password = _read_password()
    try:
        registry().users.set_password(_cli_context(), email=email, password=password)
    except BastionError as exc:
        raise _fail_on_domain_error(exc) from None
    click.echo("password updated; the user's sessions have ended")


@users_cli.command("deactivate")
@click.option("--email", required=True, help="Login email of the user.")
def users_deactivate(email: str) -> None:
    """Deactivate a user and end their sessions (not the owner)."""
    try:
        registry().users.deactivate_by_email(_cli_context(), email=email)
    except BastionError as exc:
        raise _fail_on_domain_error(exc) from None
    click.echo("user deactivated")


# -- keys and tokens -----------------------------------------------------------


@keys_cli.command("rotate")
@click.option(
    "--if-missing", is_flag=True, help="Only create a key when none is active."
)
def keys_rotate(if_missing: bool) -> None:
    """Create a new signing key; instances start signing with it shortly."""
    keys = registry().keys
    # Only a key this instance can decrypt counts: after the key-encryption
    # key changes, the stored keys are unusable and a new one is needed.
    if if_missing and keys.load_active_keys():
        click.echo("a usable signing key exists; nothing to do")
        return
    click.echo(f"created signing key {keys.rotate_key()}")


@keys_cli.command("list")
def keys_list() -> None:
    """List signing keys, newest first."""
    for key in registry().keys.list_keys():
        state = "retired" if key["retired_at"] else "active"
        created = f"{key['created_at']:%Y-%m-%dT%H:%M:%SZ}"
        click.echo(f"{key['kid']}  {key['algorithm']}  {state:7}  {created}")


@keys_cli.command("retire")
@click.argument("kid")
@click.option(
    "--force",
    is_flag=True,
    help="Retire even the last usable key, which stops every login.",
)
def keys_retire(kid: str, force: bool) -> None:
    """Stop a key from signing or verifying; its tokens become invalid."""
    keys = registry().keys
    others = [key for key in keys.load_active_keys() if key.kid != kid]
    if not others and not force:
        raise click.ClickException(
            f"{kid!r} is the last usable signing key, so logins would fail; "
            "run `flask keys rotate` first, or pass --force"
        )
    if not keys.retire_key(kid):
        raise click.ClickException(f"no active key with id {kid!r}")
    click.echo(f"retired {kid}")


@tokens_cli.command("purge-expired")
def tokens_purge_expired() -> None:
    """Delete expired sessions, tokens, idempotency keys and login counters."""
    counts = registry().sessions.purge_expired()
    click.echo(
        f"deleted {counts['sessions']} expired session(s) with their refresh "
        f"tokens, {counts['reset_tokens']} reset token(s), "
        f"{counts['idempotency_keys']} idempotency key(s) and "
        f"{counts['login_failures']} login failure counter(s)"
    )
