"""Accounts and their owners."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from psycopg import errors as pg_errors

from bastion.db import Cursor, Database, TxContext
from bastion.errors import ConflictError, NotFoundError
from bastion.passwords import PasswordHasher, enforce_password_policy
from bastion.policy import OWNER
from bastion.services.audit import record_event

EMAIL_TAKEN = "A user with this email already exists."


def unique_violation_error(exc: pg_errors.UniqueViolation) -> ConflictError:
    """Translate a unique violation on users into the matching conflict."""
    if exc.diag.constraint_name == "users_one_owner_key":
        return ConflictError("The account already has an owner.")
    return ConflictError(EMAIL_TAKEN)


def insert_user(
    cur: Cursor,
    *,
    account_id: str,
    name: str,
    email: str,
    role: str,
    password_hash: str,
) -> dict[str, Any]:
    """Insert a user row; raise ConflictError if the email is taken."""
    try:
        cur.execute(
            """
            INSERT INTO users (account_id, name, email, role, password_hash)
            VALUES (%(account_id)s, %(name)s, %(email)s, %(role)s, %(password_hash)s)
            RETURNING id, account_id, name, email, role, is_active, version,
                      created_at, updated_at, last_login_at
            """,
            {
                "account_id": account_id,
                "name": name,
                "email": email,
                "role": role,
                "password_hash": password_hash,
            },
        )
    except pg_errors.UniqueViolation as exc:
        raise unique_violation_error(exc) from exc
    except pg_errors.ForeignKeyViolation as exc:
        raise NotFoundError("The account was not found.") from exc
    row = cur.fetchone()
    assert row is not None
    return row


class AccountService:
    """Create accounts with their owner and read them."""

    def __init__(self, db: Database, hasher: PasswordHasher) -> None:
        self.db = db
        self.hasher = hasher

    def create_account(
        self,
        ctx: TxContext,
        *,
        account_name: str,
        owner_name: str,
        owner_email: str,
        password: str,
        actor_id: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Create an account and its owner in one transaction."""
        enforce_password_policy(
            password,
            field="password",
            user_inputs=[owner_email, owner_name, account_name],
        )
        password_hash = self.hasher.hash(password)
        # The id is made here so that the block runs as the new account,
        # which the accounts and users policies require of the INSERTs.
        account_id = str(uuid.uuid4())

        with self.db.write(replace(ctx, account_id=account_id)) as cur:
            cur.execute(
                """
                INSERT INTO accounts (id, name)
                VALUES (%(account_id)s, %(name)s)
                RETURNING id, name, created_at
                """,
                {"account_id": account_id, "name": account_name},
            )
            account = cur.fetchone()
            assert account is not None
            owner = insert_user(
                cur,
                account_id=account_id,
                name=owner_name,
                email=owner_email,
                role=OWNER,
                password_hash=password_hash,
            )
            record_event(
                cur,
                ctx,
                "account.created",
                account_id=account_id,
                actor_id=actor_id or str(owner["id"]),
                target_type="account",
                target_id=account_id,
            )

        return account, owner

    def get_account(self, ctx: TxContext) -> dict[str, Any]:
        """Return the caller's account."""
        with self.db.read(ctx) as cur:
            cur.execute(
                """
                SELECT id, name, created_at
                FROM accounts
                WHERE id = %(account_id)s
                """,
                {"account_id": ctx.account_id},
            )
            account = cur.fetchone()
        if account is None:
            raise NotFoundError()
        return account
