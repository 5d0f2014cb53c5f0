"""Users of an account, under the role rules in ``bastion.policy``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from psycopg import errors as pg_errors
from psycopg import sql

from bastion import policy
from bastion.db import Cursor, Database, TxContext, bind_account
from bastion.errors import (
    ForbiddenError,
    NotFoundError,
    PreconditionFailedError,
    UnauthorizedError,
)
from bastion.pagination import CursorCodec, after_params, page_scope, split_page
from bastion.passwords import PasswordHasher, enforce_password_policy
from bastion.services.accounts import insert_user, unique_violation_error
from bastion.services.audit import record_event
from bastion.services.passwords import delete_unused_reset_tokens
from bastion.services.sessions import revoke_user_sessions
from bastion.services.sqlparts import versioned_set_clause
from bastion.services.tenancy import lookup_account

USER_COLUMNS = sql.SQL(
    "id, account_id, name, email, role, is_active, version, "
    "created_at, updated_at, last_login_at"
)

OWNER_STAYS = (
    "The owner cannot be demoted, deactivated or deleted; "
    "hand ownership to another user first."
)


class UserService:
    """List, create, change and remove users within the caller's account."""

    def __init__(
        self, db: Database, hasher: PasswordHasher, cursors: CursorCodec
    ) -> None:
        self.db = db
        self.hasher = hasher
        self.cursors = cursors

    def list_users(
        self, ctx: TxContext, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return one page of the account's users, oldest first."""
        assert ctx.account_id is not None
        scope = page_scope("users", ctx.account_id)
        after = self.cursors.decode(cursor, scope=scope) if cursor else None

        with self.db.read(ctx) as cur:
            cur.execute(
                sql.SQL(
                    """
                    SELECT {columns}
                    FROM users
                    WHERE account_id = %(account_id)s
                      AND deleted_at IS NULL
                      AND (created_at, id) > (%(after_created_at)s, %(after_id)s)
                    ORDER BY created_at, id
                    LIMIT %(limit)s
                    """
                ).format(columns=USER_COLUMNS),
                {
                    "account_id": ctx.account_id,
                    "limit": limit + 1,
                    **after_params(after),
                },
            )
            rows = cur.fetchall()

        return split_page(rows, limit, self.cursors, scope)

    def get_user(self, ctx: TxContext, user_id: str) -> dict[str, Any]:
        """Return one user of the caller's account; raise NotFoundError."""
        with self.db.read(ctx) as cur:
            return _select_user(cur, ctx, user_id)

    def create_user(
        self,
        ctx: TxContext,
        *,
        actor_role: str,
        name: str,
        email: str,
        role: str,
        password: str,
    ) -> dict[str, Any]:
        """Create a user; a new owner takes ownership from the current one."""
        assert ctx.account_id is not None
        if not policy.can_create_user(actor_role, role):
            raise ForbiddenError(f"Your role cannot create a user with role {role!r}.")
        enforce_password_policy(password, field="password", user_inputs=[email, name])
        password_hash = self.hasher.hash(password)

        with self.db.write(ctx) as cur:
            actor_role = _lock_actor_role(cur, ctx, actor_role)
            if not policy.can_create_user(actor_role, role):
                raise ForbiddenError(
                    f"Your role cannot create a user with role {role!r}."
                )
            if role == policy.OWNER:
                _demote_owner(cur, ctx)
            user = insert_user(
                cur,
                account_id=ctx.account_id,
                name=name,
                email=email,
                role=role,
                password_hash=password_hash,
            )
            record_event(
                cur,
                ctx,
                "user.created",
                account_id=ctx.account_id,
                target_type="user",
                target_id=str(user["id"]),
                details={"role": role},
            )

        return user

    def update_user(
        self,
        ctx: TxContext,
        user_id: str,
        changes: dict[str, Any],
        *,
        actor_role: str,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Apply ``changes`` (name, role, is_active) to a user of the account."""
        new_role = changes.get("role")

        with self.db.write(ctx) as cur:
            actor_role = _lock_actor_role(cur, ctx, actor_role)
            target = _select_user(cur, ctx, user_id, for_update=True)
            _check_version(target, expected_version)
            allowed = policy.can_update_user(
                actor_role,
                target_role=target["role"],
                new_role=new_role,
                ends_active=changes.get("is_active", target["is_active"]),
            )
            if not allowed and target["role"] == policy.OWNER:
                raise ForbiddenError(OWNER_STAYS)
            if not allowed:
                raise ForbiddenError("Your role cannot make this change to this user.")
            if new_role == policy.OWNER and target["role"] != policy.OWNER:
                _demote_owner(cur, ctx)
            user = _apply_changes(cur, ctx, user_id, changes)
            _audit_changes(cur, ctx, target, changes)

        return user

    def delete_user(
        self,
        ctx: TxContext,
        user_id: str,
        *,
        actor_role: str,
        expected_version: int | None = None,
    ) -> None:
        """Soft-delete a user and end their sessions."""
        assert ctx.user_id is not None

        with self.db.write(ctx) as cur:
            actor_role = _lock_actor_role(cur, ctx, actor_role)
            target = _select_user(cur, ctx, user_id, for_update=True)
            _check_version(target, expected_version)
            allowed = policy.can_delete_user(
                actor_role,
                actor_id=ctx.user_id,
                target_id=str(target["id"]),
                target_role=target["role"],
            )
            if not allowed and target["role"] == policy.OWNER:
                raise ForbiddenError(OWNER_STAYS)
            if not allowed and str(target["id"]) == ctx.user_id:
                raise ForbiddenError("You cannot delete yourself.")
            if not allowed:
                raise ForbiddenError("Your role cannot delete this user.")
            cur.execute(
                """
                UPDATE users
                SET deleted_at = now(), is_active = false, updated_at = now(),
                    version = version + 1
                WHERE id = %(user_id)s
                  AND account_id = %(account_id)s
                """,
                {"user_id": user_id, "account_id": ctx.account_id},
            )
            revoke_user_sessions(cur, user_id=user_id, reason="user_deleted")
            record_event(
                cur,
                ctx,
                "user.deleted",
                account_id=ctx.account_id,
                target_type="user",
                target_id=user_id,
            )

    def set_password(self, ctx: TxContext, *, email: str, password: str) -> None:
        """Replace a user's password (any account) and end their sessions."""
        enforce_password_policy(password, field="password", user_inputs=[email])
        password_hash = self.hasher.hash(password)

        with self.db.write(ctx) as cur:
            _bind_account_of_email(cur, email)
            cur.execute(
                """
                UPDATE users
                SET password_hash = %(password_hash)s, updated_at = now(),
                    failed_login_count = 0, locked_until = NULL
                WHERE lower(email) = lower(%(email)s)
                  AND deleted_at IS NULL
                RETURNING id, account_id
                """,
                {"email": email, "password_hash": password_hash},
            )
            user = cur.fetchone()
            if user is None:
                raise NotFoundError("No user has this email.")
            revoke_user_sessions(cur, user_id=str(user["id"]), reason="password_set")
            delete_unused_reset_tokens(cur, str(user["id"]))
            record_event(
                cur,
                ctx,
                "password.changed",
                account_id=str(user["account_id"]),
                target_type="user",
                target_id=str(user["id"]),
            )

    def deactivate_by_email(self, ctx: TxContext, *, email: str) -> None:
        """Deactivate a user (any account but not an owner) and end sessions."""
        with self.db.write(ctx) as cur:
            _bind_account_of_email(cur, email)
            cur.execute(
                """
                SELECT id, account_id, role, is_active
                FROM users
                WHERE lower(email) = lower(%(email)s)
                  AND deleted_at IS NULL
                FOR UPDATE
                """,
                {"email": email},
            )
            user = cur.fetchone()
            if user is None:
                raise NotFoundError("No user has this email.")
            if user["role"] == policy.OWNER:
                raise ForbiddenError("The owner cannot be deactivated.")
            account_ctx = replace(ctx, account_id=str(user["account_id"]))
            _apply_changes(cur, account_ctx, str(user["id"]), {"is_active": False})
            _audit_changes(cur, account_ctx, user, {"is_active": False})

    def update_me(self, ctx: TxContext, *, name: str) -> dict[str, Any]:
        """Change the caller's own display name."""
        with self.db.write(ctx) as cur:
            return _apply_changes(cur, ctx, str(ctx.user_id), {"name": name})


def _bind_account_of_email(cur: Cursor, email: str) -> None:
    """Scope the block to the account of the user with ``email``, if any."""
    account_id = lookup_account(cur, "account_id_for_email", email)
    if account_id is None:
        raise NotFoundError("No user has this email.")
    bind_account(cur, account_id)


def _select_user(
    cur: Cursor, ctx: TxContext, user_id: str, *, for_update: bool = False
) -> dict[str, Any]:
    query = sql.SQL(
        """
        SELECT {columns}
        FROM users
        WHERE id = %(user_id)s
          AND account_id = %(account_id)s
          AND deleted_at IS NULL
        {lock}
        """
    ).format(
        columns=USER_COLUMNS,
        lock=sql.SQL("FOR UPDATE" if for_update else ""),
    )
    cur.execute(query, {"user_id": user_id, "account_id": ctx.account_id})
    row = cur.fetchone()
    if row is None:
        raise NotFoundError("The user was not found.")
    return row


def _lock_actor_role(cur: Cursor, ctx: TxContext, actor_role: str) -> str:
    """Re-read the caller's role under a row lock for this transaction.

    The role loaded at the start of the request can be stale by the time
    the write runs: two concurrent hand-overs by the same owner would both
    pass the policy. Locking the caller's row serializes such changes, and
    the fresh role is the one the policy sees. Admin commands have no
    calling user and keep the role they were given.
    """
    if ctx.user_id is None:
        return actor_role
    cur.execute(
        """
        SELECT role
        FROM users
        WHERE id = %(user_id)s
          AND account_id = %(account_id)s
          AND is_active
          AND deleted_at IS NULL
        FOR UPDATE
        """,
        {"user_id": ctx.user_id, "account_id": ctx.account_id},
    )
    row = cur.fetchone()
    if row is None:
        raise UnauthorizedError()
    role: str = row["role"]
    return role


def _check_version(row: dict[str, Any], expected_version: int | None) -> None:
    if expected_version is not None and row["version"] != expected_version:
        raise PreconditionFailedError()


def _demote_owner(cur: Cursor, ctx: TxContext) -> None:
    """Make the account's current owner an admin, ahead of a hand-over."""
    cur.execute(
        """
        UPDATE users
        SET role = 'admin', updated_at = now(), version = version + 1
        WHERE account_id = %(account_id)s
          AND role = 'owner'
          AND deleted_at IS NULL
        RETURNING id
        """,
        {"account_id": ctx.account_id},
    )
    for row in cur.fetchall():
        record_event(
            cur,
            ctx,
            "user.role_changed",
            account_id=ctx.account_id,
            target_type="user",
            target_id=str(row["id"]),
            details={"from": policy.OWNER, "to": policy.ADMIN},
        )


def _apply_changes(
    cur: Cursor, ctx: TxContext, user_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    assignments, params = versioned_set_clause(changes, policy.USER_WRITABLE_FIELDS)
    query = sql.SQL(
        """
        UPDATE users
        SET {assignments}
        WHERE id = %(user_id)s
          AND account_id = %(account_id)s
          AND deleted_at IS NULL
        RETURNING {columns}
        """
    ).format(assignments=assignments, columns=USER_COLUMNS)
    try:
        cur.execute(query, {**params, "user_id": user_id, "account_id": ctx.account_id})
    except pg_errors.UniqueViolation as exc:
        raise unique_violation_error(exc) from exc
    row = cur.fetchone()
    if row is None:
        raise NotFoundError("The user was not found.")
    return row


def _audit_changes(
    cur: Cursor, ctx: TxContext, before: dict[str, Any], changes: dict[str, Any]
) -> None:
    target_id = str(before["id"])
    new_role = changes.get("role")
    if new_role is not None and new_role != before["role"]:
        record_event(
            cur,
            ctx,
            "user.role_changed",
            account_id=ctx.account_id,
            target_type="user",
            target_id=target_id,
            details={"from": before["role"], "to": new_role},
        )
    if changes.get("is_active") is True and not before["is_active"]:
        record_event(
            cur,
            ctx,
            "user.reactivated",
            account_id=ctx.account_id,
            target_type="user",
            target_id=target_id,
        )
    if changes.get("is_active") is False and before["is_active"]:
        revoke_user_sessions(cur, user_id=target_id, reason="user_deactivated")
        record_event(
            cur,
            ctx,
            "user.deactivated",
            account_id=ctx.account_id,
            target_type="user",
            target_id=target_id,
        )
