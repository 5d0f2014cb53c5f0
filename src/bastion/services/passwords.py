"""Password changes by the user and resets through a mailed token.

A reset token is 32 random bytes, stored only as its SHA-256 digest, valid
for ``PASSWORD_RESET_TTL_SECONDS`` and usable once. Asking for a new token
deletes the user's unused ones, and any password change deletes them all.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from email.message import EmailMessage
from typing import Any

from bastion.config import Settings
from bastion.db import Cursor, Database, TxContext, bind_account
from bastion.errors import BadRequestError, ForbiddenError, NotFoundError
from bastion.mail import make_message
from bastion.passwords import PasswordHasher, enforce_password_policy
from bastion.services.audit import record_event
from bastion.services.login_throttle import record_account_failure
from bastion.services.sessions import hash_token, revoke_user_sessions
from bastion.services.tenancy import lookup_account


class InvalidResetTokenError(BadRequestError):
    code = "invalid_reset_token"
    message = "The password reset token is invalid, expired or already used."


@dataclass(frozen=True)
class ResetRequest:
    """The outcome of a reset request: a message to send, or nothing."""

    message: EmailMessage | None


class PasswordService:
    """Change passwords and run the reset flow."""

    def __init__(
        self, db: Database, hasher: PasswordHasher, settings: Settings
    ) -> None:
        self.db = db
        self.hasher = hasher
        self.settings = settings

    def change_password(
        self,
        ctx: TxContext,
        *,
        session_id: str,
        current_password: str,
        new_password: str,
    ) -> None:
        """Replace the caller's password and end their other sessions.

        A wrong current password counts towards the account lock, as a
        failed login does, so a stolen access token cannot be used to guess
        it. A locked account gets the same error as a wrong password.
        """
        with self.db.read(ctx) as cur:
            user = _select_caller(cur, ctx)
        enforce_password_policy(
            new_password,
            field="new_password",
            user_inputs=[user["email"], user["name"], user["account_name"]],
        )
        if user["locked"]:
            # No bcrypt for a locked account: the caller is already known,
            # and skipping the hash keeps a flood from filling the slots.
            self._record_change_failure(ctx, reason="locked")
            raise ForbiddenError("The current password is incorrect.")
        matches, _ = self.hasher.verify(current_password, user["password_hash"])
        if not matches:
            self._record_change_failure(ctx, reason="wrong_password")
            raise ForbiddenError("The current password is incorrect.")
        password_hash = self.hasher.hash(new_password)

        with self.db.write(ctx) as cur:
            _store_password(cur, str(ctx.user_id), password_hash)
            revoke_user_sessions(
                cur,
                user_id=str(ctx.user_id),
                reason="password_changed",
                keep_session_id=session_id,
            )
            record_event(
                cur,
                ctx,
                "password.changed",
                account_id=ctx.account_id,
                target_type="user",
                target_id=ctx.user_id,
            )

    def _record_change_failure(self, ctx: TxContext, *, reason: str) -> None:
        with self.db.write(ctx) as cur:
            if reason == "wrong_password":
                record_account_failure(cur, str(ctx.user_id))
            record_event(
                cur,
                ctx,
                "password.change_failed",
                account_id=ctx.account_id,
                target_type="user",
                target_id=ctx.user_id,
                details={"reason": reason},
            )

    def request_reset(self, ctx: TxContext, *, email: str) -> ResetRequest:
        """Store a reset token for an active user with ``email``.

        Returns the message that carries the token, or no message when no
        active user has the email. Callers must respond alike in both cases.
        """
        token = secrets.token_urlsafe(32)

        with self.db.write(ctx) as cur:
            account_id = lookup_account(cur, "account_id_for_email", email)
            if account_id is not None:
                bind_account(cur, account_id)
            cur.execute(
                """
                SELECT id, account_id, email
                FROM users
                WHERE lower(email) = lower(%(email)s)
                  AND deleted_at IS NULL
                  AND is_active
                """,
                {"email": email},
            )
            user = cur.fetchone()
            # NOTE: a known email runs three more statements than an unknown
            # one, about a millisecond on loopback; mail delivery, the slow
            # part, happens after the response.
            if user is None:
                return ResetRequest(message=None)
            user_id = str(user["id"])
            delete_unused_reset_tokens(cur, user_id)
            cur.execute(
                """
                INSERT INTO password_reset_tokens (token_hash, user_id, expires_at)
                VALUES (
                    %(token_hash)s, %(user_id)s,
                    now() + make_interval(secs => %(ttl)s)
                )
                """,
                {
                    "token_hash": hash_token(token),
                    "user_id": user_id,
                    "ttl": self.settings.password_reset_ttl,
                },
            )
            record_event(
                cur,
                ctx,
                "password_reset.requested",
                account_id=str(user["account_id"]),
                actor_id=user_id,
                target_type="user",
                target_id=user_id,
            )

        return ResetRequest(message=self._reset_message(user["email"], token))

    def _reset_message(self, to: str, token: str) -> EmailMessage:
        minutes = max(1, self.settings.password_reset_ttl // 60)
        lines = [
            "Someone asked to reset the password of your Bastion account.",
            "If it was not you, ignore this message; your password stays.",
            "",
        ]
        if self.settings.password_reset_url:
            # The token goes in the fragment, which browsers do not send to
            # the server that hosts the page, so it stays out of access logs.
            lines.append(f"Reset it here: {self.settings.password_reset_url}#{token}")
        else:
            lines.append(f"Your reset token: {token}")
        lines.append(f"It works once, within {minutes} minutes.")
        return make_message(
            self.settings,
            to=to,
            subject="Reset your Bastion password",
            body="\n".join(lines) + "\n",
        )

    def confirm_reset(self, ctx: TxContext, *, token: str, password: str) -> None:
        """Set a new password with a reset token and end every session."""
        token_hash = hash_token(token)

        with self.db.read(ctx) as cur:
            account_id = lookup_account(cur, "account_id_for_reset_token", token_hash)
            if account_id is not None:
                bind_account(cur, account_id)
            user = _select_token_user(cur, token_hash)
        if user is None:
            raise InvalidResetTokenError()
        ctx = replace(ctx, account_id=str(user["account_id"]))
        enforce_password_policy(
            password,
            field="password",
            user_inputs=[user["email"], user["name"], user["account_name"]],
        )
        password_hash = self.hasher.hash(password)

        with self.db.write(ctx) as cur:
            # The token is spent here, under a row lock, so two concurrent
            # confirmations cannot both succeed.
            cur.execute(
                """
                UPDATE password_reset_tokens
                SET used_at = now()
                WHERE token_hash = %(token_hash)s
                  AND used_at IS NULL
                  AND expires_at > now()
                RETURNING user_id
                """,
                {"token_hash": token_hash},
            )
            spent = cur.fetchone()
            if spent is None:
                raise InvalidResetTokenError()
            user_id = str(spent["user_id"])
            try:
                _store_password(cur, user_id, password_hash)
            except NotFoundError:
                raise InvalidResetTokenError() from None
            revoke_user_sessions(cur, user_id=user_id, reason="password_reset")
            record_event(
                cur,
                ctx,
                "password.reset",
                account_id=str(user["account_id"]),
                actor_id=user_id,
                target_type="user",
                target_id=user_id,
            )


def _select_caller(cur: Cursor, ctx: TxContext) -> dict[str, Any]:
    cur.execute(
        """
        SELECT u.email, u.name, u.password_hash, a.name AS account_name,
               u.locked_until IS NOT NULL AND u.locked_until > now() AS locked
        FROM users AS u
        JOIN accounts AS a ON a.id = u.account_id
        WHERE u.id = %(user_id)s
          AND u.account_id = %(account_id)s
          AND u.deleted_at IS NULL
        """,
        {"user_id": ctx.user_id, "account_id": ctx.account_id},
    )
    row = cur.fetchone()
    if row is None:
        raise NotFoundError("The user was not found.")
    return row


def _select_token_user(cur: Cursor, token_hash: bytes) -> dict[str, Any] | None:
    cur.execute(
        """
        SELECT u.id, u.account_id, u.email, u.name, a.name AS account_name
        FROM password_reset_tokens AS t
        JOIN users AS u ON u.id = t.user_id
        JOIN accounts AS a ON a.id = u.account_id
        WHERE t.token_hash = %(token_hash)s
          AND t.used_at IS NULL
          AND t.expires_at > now()
          AND u.is_active
          AND u.deleted_at IS NULL
        """,
        {"token_hash": token_hash},
    )
    row: dict[str, Any] | None = cur.fetchone()
    return row


def _store_password(cur: Cursor, user_id: str, password_hash: str) -> None:
    """Set a new hash, clear the account lock and void pending reset tokens."""
    cur.execute(
        """
        UPDATE users
        SET password_hash = %(password_hash)s, updated_at = now(),
            failed_login_count = 0, locked_until = NULL
        WHERE id = %(user_id)s
          AND is_active
          AND deleted_at IS NULL
        RETURNING id
        """,
        {"user_id": user_id, "password_hash": password_hash},
    )
    if cur.fetchone() is None:
        raise NotFoundError("The user was not found.")
    delete_unused_reset_tokens(cur, user_id)


def delete_unused_reset_tokens(cur: Cursor, user_id: str) -> None:
    """Void the user's pending reset tokens, as any password change does."""
    cur.execute(
        """
        DELETE FROM password_reset_tokens
        WHERE user_id = %(user_id)s
          AND used_at IS NULL
        """,
        {"user_id": user_id},
    )
