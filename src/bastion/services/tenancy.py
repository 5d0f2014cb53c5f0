"""Lookups that find an account before the caller's account is known.

Row-level security hides every tenant row until a transaction names its
account. Login, token refresh, password reset and admin commands start from
an email or a token instead, so each calls one SECURITY DEFINER function
that returns only the account id. The caller then binds the block to that
account with ``bastion.db.bind_account`` and goes on under the policies.
"""

from __future__ import annotations

from typing import Literal

from psycopg import sql

from bastion.db import Cursor

LookupFunction = Literal[
    "account_id_for_email",
    "account_id_for_refresh_token",
    "account_id_for_reset_token",
]


def lookup_account(
    cur: Cursor, function: LookupFunction, value: str | bytes
) -> str | None:
    """Return the account id that ``function`` finds for ``value``, or None."""
    cur.execute(
        sql.SQL("SELECT {}(%(value)s) AS account_id").format(sql.Identifier(function)),
        {"value": value},
    )
    row = cur.fetchone()
    if row is None or row["account_id"] is None:
        return None
    return str(row["account_id"])
