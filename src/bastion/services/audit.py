"""The audit trail: one row per security-relevant change.

Events are written with the cursor of the change they record, so an event
exists exactly when its change was committed.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from bastion.db import Cursor, Database, TxContext
from bastion.pagination import CursorCodec, after_params, page_scope, split_page

CLI_ACTOR = "cli"


def record_event(
    cur: Cursor,
    ctx: TxContext,
    action: str,
    *,
    account_id: str | None,
    actor_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Insert one audit event inside the caller's transaction."""
    cur.execute(
        """
        INSERT INTO audit_events (
            account_id, action, actor_id, target_type, target_id, ip,
            request_id, details
        )
        VALUES (
            %(account_id)s, %(action)s, %(actor_id)s, %(target_type)s,
            %(target_id)s, %(ip)s, %(request_id)s, %(details)s
        )
        """,
        {
            "account_id": account_id,
            "action": action,
            "actor_id": actor_id or ctx.user_id or ctx.actor,
            "target_type": target_type,
            "target_id": target_id,
            "ip": ctx.ip,
            "request_id": ctx.request_id,
            "details": Jsonb(details or {}),
        },
    )


class AuditService:
    """Read the audit trail of an account."""

    def __init__(self, db: Database, cursors: CursorCodec) -> None:
        self.db = db
        self.cursors = cursors

    def list_events(
        self, ctx: TxContext, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return one page of the account's events, oldest first."""
        assert ctx.account_id is not None
        scope = page_scope("audit_events", ctx.account_id)
        after = self.cursors.decode(cursor, scope=scope) if cursor else None

        with self.db.read(ctx) as cur:
            cur.execute(
                """
                SELECT id, action, actor_id, target_type, target_id,
                       host(ip) AS ip, request_id, created_at, details
                FROM audit_events
                WHERE account_id = %(account_id)s
                  AND (created_at, id) > (%(after_created_at)s, %(after_id)s)
                ORDER BY created_at, id
                LIMIT %(limit)s
                """,
                {
                    "account_id": ctx.account_id,
                    "limit": limit + 1,
                    **after_params(after),
                },
            )
            rows = cur.fetchall()

        return split_page(rows, limit, self.cursors, scope)
