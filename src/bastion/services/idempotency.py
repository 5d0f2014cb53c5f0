"""Stored responses for POST requests sent with an ``Idempotency-Key``.

The key row is inserted first, in the same transaction as the write it
guards, under the primary key (account, key). A retry racing the first
request waits on that insert until the first transaction ends: after a
commit it finds the stored response and replays it, after a rollback it
performs the write itself. So a key never writes twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from bastion.db import Cursor, Database, TxContext
from bastion.errors import UnprocessableError

# How long a stored response is replayed; ``flask tokens purge-expired``
# deletes older rows, and an expired key may be used again.
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
KEY_REUSED = "This Idempotency-Key was already used with a different request."


@dataclass(frozen=True)
class StoredResponse:
    """The response returned to the first request with a key."""

    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Claim:
    """The result of claiming a key: a response to replay, or the right to write.

    When ``replay`` is None the caller performs the request and calls
    ``store`` before the block ends.
    """

    cur: Cursor | None
    account_id: str | None
    key: str
    replay: StoredResponse | None = None

    def store(self, response: StoredResponse) -> None:
        """Save the response in the transaction that made it."""
        assert self.cur is not None and self.replay is None
        self.cur.execute(
            """
            UPDATE idempotency_keys
            SET response_status = %(status)s,
                response_body = %(body)s,
                response_headers = %(headers)s
            WHERE account_id = %(account_id)s
              AND idempotency_key = %(key)s
            """,
            {
                "status": response.status,
                "body": Jsonb(response.body),
                "headers": Jsonb(response.headers),
                "account_id": self.account_id,
                "key": self.key,
            },
        )


class IdempotencyService:
    """Claim idempotency keys and replay their stored responses."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def claim(self, ctx: TxContext, key: str, request_hash: bytes) -> Iterator[Claim]:
        """Open the shared block for a keyed request and claim ``key`` in it.

        Service calls made inside the ``with`` body join this block, so the
        write and its stored response commit or roll back together. Raise
        UnprocessableError when the key was used for another request.
        """
        assert ctx.account_id is not None

        with self.db.unit_of_work(ctx) as cur:
            cur.execute(
                """
                INSERT INTO idempotency_keys (
                    account_id, idempotency_key, request_hash, expires_at
                )
                VALUES (
                    %(account_id)s, %(key)s, %(request_hash)s,
                    now() + make_interval(secs => %(ttl)s)
                )
                ON CONFLICT (account_id, idempotency_key) DO UPDATE
                SET request_hash = EXCLUDED.request_hash,
                    response_status = 0,
                    response_body = NULL,
                    response_headers = '{}',
                    created_at = now(),
                    expires_at = EXCLUDED.expires_at
                WHERE idempotency_keys.expires_at <= now()
                RETURNING idempotency_key
                """,
                {
                    "account_id": ctx.account_id,
                    "key": key,
                    "request_hash": request_hash,
                    "ttl": IDEMPOTENCY_TTL_SECONDS,
                },
            )
            if cur.fetchone() is not None:
                yield Claim(cur=cur, account_id=ctx.account_id, key=key)
                return
            yield Claim(
                cur=None,
                account_id=ctx.account_id,
                key=key,
                replay=_stored_response(cur, ctx.account_id, key, request_hash),
            )


def _stored_response(
    cur: Cursor, account_id: str, key: str, request_hash: bytes
) -> StoredResponse:
    cur.execute(
        """
        SELECT request_hash, response_status, response_body, response_headers
        FROM idempotency_keys
        WHERE account_id = %(account_id)s
          AND idempotency_key = %(key)s
        """,
        {"account_id": account_id, "key": key},
    )
    row = cur.fetchone()
    # The conflicting row was committed with its response before the
    # INSERT above returned, so it is there and complete.
    assert row is not None
    if bytes(row["request_hash"]) != request_hash:
        raise UnprocessableError(KEY_REUSED, fields={"Idempotency-Key": [KEY_REUSED]})
    return StoredResponse(
        status=row["response_status"],
        body=row["response_body"],
        headers=dict(row["response_headers"]),
    )
