"""Pieces of SQL that several services compose."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import sql


def versioned_set_clause(
    changes: Mapping[str, Any], writable: frozenset[str]
) -> tuple[sql.Composable, dict[str, Any]]:
    """Build the SET list of an UPDATE and its parameters.

    Column names come from ``writable`` (a policy allowlist), never from the
    request's keys. The list also stamps ``updated_at`` and bumps
    ``version``, so every write changes the row's ETag.
    """
    columns = [name for name in sorted(changes) if name in writable]
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name))
        for name in columns
    ]
    assignments.append(sql.SQL("updated_at = now(), version = version + 1"))
    return sql.SQL(", ").join(assignments), {name: changes[name] for name in columns}
