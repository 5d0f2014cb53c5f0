"""Login sessions: passwords in, token pairs out, and their revocation.

A session is one login. Its refresh tokens form a family: each refresh
marks the presented token used and issues the next one. Presenting a used
token again means it was copied, so the whole family is revoked.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bastion import metrics
from bastion.auth import CurrentUser
from bastion.db import Cursor, Database, TxContext, bind_account
from bastion.errors import UnauthorizedError
from bastion.passwords import PasswordHasher
from bastion.services.audit import record_event
from bastion.services.login_throttle import (
    client_network,
    is_client_locked,
    purge_client_failures,
    record_account_failure,
    record_client_failure,
)
from bastion.services.tenancy import lookup_account

logger = logging.getLogger(__name__)

AccessTokenIssuer = Callable[[str, str], str]

# The per-request caller lookup: two primary-key probes. A module constant
# so that bench/caller_lookup.py measures the statement the app runs.
# The caller's account is not known yet, so the lookup goes through a
# definer function. It joins the user and the session by primary key and
# returns a row only while the user is active and the session live.
CALLER_LOOKUP = """
    SELECT account_id, role
    FROM caller_for_session(%(user_id)s, %(session_id)s)
"""


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def hash_token(token: str) -> bytes:
    """Return the SHA-256 digest under which an opaque token is stored."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def revoke_user_sessions(
    cur: Cursor, *, user_id: str, reason: str, keep_session_id: str | None = None
) -> None:
    """Revoke every live session of a user, except ``keep_session_id``."""
    cur.execute(
        """
        UPDATE auth_sessions
        SET revoked_at = now(), revoked_reason = %(reason)s
        WHERE user_id = %(user_id)s
          AND revoked_at IS NULL
          AND id IS DISTINCT FROM %(keep_session_id)s
        """,
        {"user_id": user_id, "reason": reason, "keep_session_id": keep_session_id},
    )


class SessionService:
    """Log users in, rotate refresh tokens and end sessions."""

    def __init__(
        self,
        db: Database,
        hasher: PasswordHasher,
        *,
        issue_access_token: AccessTokenIssuer,
        access_token_ttl: int,
        refresh_token_ttl: int,
    ) -> None:
        self.db = db
        self.hasher = hasher
        self.issue_access_token = issue_access_token
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl

    def login(self, ctx: TxContext, *, email: str, password: str) -> TokenPair:
        """Check the credentials and open a session; raise UnauthorizedError.

        Every failure (unknown email, wrong password, inactive user, locked
        user or locked client network) raises the same error after the same
        hashing work.
        """
        # NOTE: ctx.ip is REMOTE_ADDR. Behind a proxy that does not rewrite
        # it to the client's address, all clients share the proxy's counter.
        network = client_network(ctx.ip)

        with self.db.read(ctx) as cur:
            client_locked = is_client_locked(cur, network)
            account_id = lookup_account(cur, "account_id_for_email", email)
            if account_id is not None:
                bind_account(cur, account_id)
            cur.execute(
                """
                SELECT id, account_id, password_hash, is_active,
                       locked_until IS NOT NULL AND locked_until > now() AS locked
                FROM users
                WHERE lower(email) = lower(%(email)s)
                  AND deleted_at IS NULL
                """,
                {"email": email},
            )
            user = cur.fetchone()

        # Hash outside any transaction: a connection is never held while
        # bcrypt runs.
        if user is None:
            self.hasher.verify_dummy(password)
            self._record_unknown_email(ctx, network)
            raise UnauthorizedError("The email or password is incorrect.")
        ctx = replace(ctx, account_id=str(user["account_id"]))
        matches, new_hash = self.hasher.verify(password, user["password_hash"])
        if not matches:
            reason = "wrong_password"
        elif not user["is_active"]:
            reason = "inactive"
        elif user["locked"]:
            reason = "locked"
        elif client_locked:
            reason = "client_locked"
        else:
            return self._open_session(ctx, user, new_hash)

        self._record_failure(ctx, user, network, reason=reason)
        raise UnauthorizedError("The email or password is incorrect.")

    def _record_unknown_email(self, ctx: TxContext, network: str | None) -> None:
        # Nothing here names or creates an account: the counter is keyed by
        # the client network and the event has no account.
        metrics.LOGIN_FAILURES.labels("unknown_email").inc()
        with self.db.write(ctx) as cur:
            record_client_failure(cur, network)
            record_event(
                cur,
                ctx,
                "login.failed",
                account_id=None,
                details={"reason": "unknown_email"},
            )

    def _record_failure(
        self,
        ctx: TxContext,
        user: dict[str, Any],
        network: str | None,
        *,
        reason: str,
    ) -> None:
        metrics.LOGIN_FAILURES.labels(reason).inc()
        with self.db.write(ctx) as cur:
            if reason == "wrong_password":
                record_account_failure(cur, str(user["id"]))
                record_client_failure(cur, network)
            record_event(
                cur,
                ctx,
                "login.failed",
                account_id=str(user["account_id"]),
                target_type="user",
                target_id=str(user["id"]),
                details={"reason": reason},
            )

    def _open_session(
        self, ctx: TxContext, user: dict[str, Any], new_hash: str | None
    ) -> TokenPair:
        refresh_token = secrets.token_urlsafe(32)
        user_id = str(user["id"])

        with self.db.write(ctx) as cur:
            cur.execute(
                """
                UPDATE users
                SET last_login_at = now(),
                    failed_login_count = 0,
                    locked_until = NULL,
                    password_hash = coalesce(%(new_hash)s, password_hash)
                WHERE id = %(user_id)s
                """,
                {"user_id": user_id, "new_hash": new_hash},
            )
            cur.execute(
                """
                INSERT INTO auth_sessions (user_id, expires_at)
                VALUES (%(user_id)s, now() + make_interval(secs => %(ttl)s))
                RETURNING id
                """,
                {"user_id": user_id, "ttl": self.refresh_token_ttl},
            )
            session = cur.fetchone()
            assert session is not None
            session_id = str(session["id"])
            self._insert_refresh_token(cur, session_id, refresh_token)
            record_event(
                cur,
                ctx,
                "login.succeeded",
                account_id=str(user["account_id"]),
                actor_id=user_id,
                target_type="user",
                target_id=user_id,
            )
            # Signed inside the block: without a usable signing key the
            # login rolls back instead of being recorded as a success.
            pair = self._token_pair(user_id, session_id, refresh_token)

        return pair

    def _insert_refresh_token(self, cur: Cursor, session_id: str, token: str) -> None:
        cur.execute(
            """
            INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
            SELECT %(token_hash)s, id, expires_at
            FROM auth_sessions
            WHERE id = %(session_id)s
            """,
            {"token_hash": hash_token(token), "session_id": session_id},
        )

    def _token_pair(self, user_id: str, session_id: str, refresh: str) -> TokenPair:
        return TokenPair(
            access_token=self.issue_access_token(user_id, session_id),
            refresh_token=refresh,
            expires_in=self.access_token_ttl,
        )

    def refresh(self, ctx: TxContext, *, refresh_token: str) -> TokenPair:
        """Swap a refresh token for a new pair; reuse revokes the session."""
        new_token = secrets.token_urlsafe(32)
        reused = False

        with self.db.write(ctx) as cur:
            account_id = lookup_account(
                cur, "account_id_for_refresh_token", hash_token(refresh_token)
            )
            if account_id is not None:
                bind_account(cur, account_id)
            cur.execute(
                """
                SELECT rt.session_id, rt.used_at, u.id AS user_id, u.account_id
                FROM refresh_tokens AS rt
                JOIN auth_sessions AS s ON s.id = rt.session_id
                JOIN users AS u ON u.id = s.user_id
                WHERE rt.token_hash = %(token_hash)s
                  AND rt.expires_at > now()
                  AND s.revoked_at IS NULL
                  AND u.is_active
                  AND u.deleted_at IS NULL
                FOR UPDATE OF rt, s
                """,
                {"token_hash": hash_token(refresh_token)},
            )
            row = cur.fetchone()
            if row is not None:
                session_id = str(row["session_id"])
                user_id = str(row["user_id"])
                reused = row["used_at"] is not None
                if reused:
                    self._revoke_reused_family(cur, ctx, row)
                else:
                    cur.execute(
                        """
                        UPDATE refresh_tokens
                        SET used_at = now()
                        WHERE token_hash = %(token_hash)s
                        """,
                        {"token_hash": hash_token(refresh_token)},
                    )
                    self._insert_refresh_token(cur, session_id, new_token)

        # Raised after the block so that the revocation above is committed.
        if row is None or reused:
            raise UnauthorizedError("The refresh token is invalid or expired.")
        return self._token_pair(user_id, session_id, new_token)

    def _revoke_reused_family(
        self, cur: Cursor, ctx: TxContext, row: dict[str, Any]
    ) -> None:
        cur.execute(
            """
            UPDATE auth_sessions
            SET revoked_at = now(), revoked_reason = 'refresh_token_reused'
            WHERE id = %(session_id)s
            """,
            {"session_id": row["session_id"]},
        )
        logger.warning(
            "refresh_token_reused",
            extra={
                "user_id": str(row["user_id"]),
                "session_id": str(row["session_id"]),
            },
        )
        record_event(
            cur,
            ctx,
            "refresh_token.reused",
            account_id=str(row["account_id"]),
            actor_id=str(row["user_id"]),
            target_type="session",
            target_id=str(row["session_id"]),
        )

    def logout(self, ctx: TxContext, *, session_id: str) -> None:
        """Revoke the caller's session and with it every token of the family."""
        with self.db.write(ctx) as cur:
            cur.execute(
                """
                UPDATE auth_sessions
                SET revoked_at = now(), revoked_reason = 'logout'
                WHERE id = %(session_id)s
                  AND user_id = %(user_id)s
                  AND revoked_at IS NULL
                """,
                {"session_id": session_id, "user_id": ctx.user_id},
            )
            record_event(
                cur,
                ctx,
                "logout",
                account_id=ctx.account_id,
                target_type="session",
                target_id=session_id,
            )

    def load_current_user(self, *, user_id: str, session_id: str) -> CurrentUser | None:
        """Load the caller if the user is active and the session is live.

        One statement over two primary keys; this is the per-request cost of
        immediate revocation.
        """
        with self.db.read() as cur:
            cur.execute(CALLER_LOOKUP, {"user_id": user_id, "session_id": session_id})
            row = cur.fetchone()
        if row is None:
            return None
        return CurrentUser(
            id=user_id,
            account_id=str(row["account_id"]),
            role=row["role"],
            session_id=session_id,
        )

    def purge_expired(self) -> dict[str, int]:
        """Delete expired rows; return the counts by kind.

        Expired sessions (their refresh tokens cascade), reset tokens and
        stored idempotent responses of every account go through one definer
        function. Stale login counters, which belong to no account, follow.
        """
        with self.db.write() as cur:
            cur.execute(
                """
                SELECT sessions, reset_tokens, idempotency_keys
                FROM purge_expired_rows()
                """
            )
            row = cur.fetchone()
            assert row is not None
            counts = dict(row)
            counts["login_failures"] = purge_client_failures(cur)
        return counts
