"""Opaque, signed keyset cursors.

A cursor holds the sort key of the last row of a page. It is signed with
the application secret and bound to the account and the list it came from,
so a tampered cursor or one from another account or list is rejected with
400 before it reaches SQL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from bastion.errors import BadRequestError

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


@dataclass(frozen=True)
class Position:
    """The sort key ``(created_at, id)`` of the last row already returned."""

    created_at: datetime
    id: UUID


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Encode and verify cursors with an HMAC keyed by the app secret."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"bastion-cursor:" + secret.encode()).digest()

    def _sign(self, scope: str, payload: bytes) -> bytes:
        message = scope.encode() + b"\x00" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:16]

    def encode(self, position: Position, *, scope: str) -> str:
        payload = json.dumps(
            [position.created_at.isoformat(), str(position.id)],
            separators=(",", ":"),
        ).encode()
        return f"{_b64encode(payload)}.{_b64encode(self._sign(scope, payload))}"

    def decode(self, cursor: str, *, scope: str) -> Position:
        """Return the position in ``cursor``; raise BadRequestError if invalid."""
        invalid = BadRequestError("The cursor is invalid or belongs to another list.")
        try:
            payload_text, signature_text = cursor.split(".")
            payload = _b64decode(payload_text)
            signature = _b64decode(signature_text)
        except (ValueError, binascii.Error):
            raise invalid from None
        if not hmac.compare_digest(signature, self._sign(scope, payload)):
            raise invalid
        try:
            created_at_text, id_text = json.loads(payload)
            return Position(datetime.fromisoformat(created_at_text), UUID(id_text))
        except (ValueError, TypeError):
            raise invalid from None


def page_scope(resource: str, account_id: str, query: str | None = None) -> str:
    """Name the list a cursor belongs to: resource, account and search text."""
    return f"{resource}:{account_id}:{query or ''}"


_FIRST_ID = UUID(int=0)


def after_params(after: Position | None) -> dict[str, Any]:
    """Return the query parameters for rows after ``after`` (or the first page).

    Queries always compare ``(created_at, id) > (%(after_created_at)s,
    %(after_id)s)``; for the first page the bound sorts before every row, so
    one statement serves every page and keeps its index plan.
    """
    if after is None:
        return {"after_created_at": "-infinity", "after_id": _FIRST_ID}
    return {"after_created_at": after.created_at, "after_id": after.id}


def split_page(
    rows: list[Any], limit: int, cursors: CursorCodec, scope: str
) -> tuple[list[dict[str, Any]], str | None]:
    """Cut a ``limit + 1`` row fetch into a page and the next page's cursor."""
    if len(rows) <= limit:
        return list(rows), None
    page = list(rows[:limit])
    last = page[-1]
    return page, cursors.encode(Position(last["created_at"], last["id"]), scope=scope)
