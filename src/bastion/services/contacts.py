"""Contacts of an account."""

from __future__ import annotations

from typing import Any

from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types.json import Jsonb

from bastion import policy
from bastion.db import Cursor, Database, TxContext
from bastion.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PreconditionFailedError,
)
from bastion.pagination import (
    CursorCodec,
    Position,
    after_params,
    page_scope,
    split_page,
)
from bastion.services.audit import record_event
from bastion.services.sqlparts import versioned_set_clause

CONTACT_COLUMNS = sql.SQL(
    "id, name, email, phone, company, notes, tags, created_by, version, "
    "created_at, updated_at"
)
EMAIL_TAKEN = "A contact with this email already exists in the account."
NOT_FOUND = "The contact was not found."


def like_pattern(text: str) -> str:
    """Return a LIKE pattern matching ``text`` anywhere, case-folded."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_query(
    *, account_id: str, limit: int, after: Position | None, q: str | None
) -> tuple[sql.Composed, dict[str, Any]]:
    """Build the statement for one page of contacts, searched when ``q`` is set.

    A search goes through ``search_contacts``, a definer function that
    filters on the transaction's account itself, because under row-level
    security the trigram index cannot serve LIKE.
    """
    params = {
        "account_id": account_id,
        "pattern": like_pattern(q) if q else None,
        "limit": limit + 1,
        **after_params(after),
    }
    if q:
        source = sql.SQL(
            "search_contacts(%(pattern)s, %(after_created_at)s, %(after_id)s, "
            "%(limit)s)"
        )
    else:
        source = sql.SQL("contacts")
    query = sql.SQL(
        """
        SELECT {columns}
        FROM {source}
        WHERE account_id = %(account_id)s
          AND deleted_at IS NULL
          AND (created_at, id) > (%(after_created_at)s, %(after_id)s)
        ORDER BY created_at, id
        LIMIT %(limit)s
        """
    ).format(columns=CONTACT_COLUMNS, source=source)
    return query, params


class ContactService:
    """List, create, change and remove contacts within the caller's account."""

    def __init__(self, db: Database, cursors: CursorCodec) -> None:
        self.db = db
        self.cursors = cursors

    def list_contacts(
        self, ctx: TxContext, *, limit: int, cursor: str | None, q: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return one page of contacts, oldest first, optionally searched."""
        assert ctx.account_id is not None
        scope = page_scope("contacts", ctx.account_id, q)
        after = self.cursors.decode(cursor, scope=scope) if cursor else None
        query, params = list_query(
            account_id=ctx.account_id, limit=limit, after=after, q=q
        )

        with self.db.read(ctx) as cur:
            cur.execute(query, params)
            rows = cur.fetchall()

        return split_page(rows, limit, self.cursors, scope)

    def get_contact(self, ctx: TxContext, contact_id: str) -> dict[str, Any]:
        """Return one contact of the caller's account; raise NotFoundError."""
        with self.db.read(ctx) as cur:
            return _select_contact(cur, ctx, contact_id)

    def create_contact(self, ctx: TxContext, data: dict[str, Any]) -> dict[str, Any]:
        """Insert a contact created by the caller."""
        columns = [
            name for name in sorted(data) if name in policy.CONTACT_WRITABLE_FIELDS
        ]
        query = sql.SQL(
            """
            INSERT INTO contacts (account_id, created_by, {names})
            VALUES (%(account_id)s, %(user_id)s, {values})
            RETURNING {columns}
            """
        ).format(
            names=sql.SQL(", ").join(map(sql.Identifier, columns)),
            values=sql.SQL(", ").join(map(sql.Placeholder, columns)),
            columns=CONTACT_COLUMNS,
        )
        params = {name: data[name] for name in columns}

        with self.db.write(ctx) as cur:
            try:
                cur.execute(
                    query,
                    {**params, "account_id": ctx.account_id, "user_id": ctx.user_id},
                )
            except pg_errors.UniqueViolation as exc:
                raise ConflictError(EMAIL_TAKEN) from exc
            row = cur.fetchone()

        assert row is not None
        return row

    def import_contacts(
        self, ctx: TxContext, rows: list[dict[str, Any]]
    ) -> dict[str, int]:
        """Upsert validated rows by email in one transaction; return the counts.

        A row whose email matches a live contact of the account, ignoring
        case, updates the fields it names and leaves the others; any other
        row, including one without an email, creates a contact. Two
        set-based statements do the work, whatever the number of rows.
        Waiting on a row another transaction holds ends at the role's
        lock_timeout with ServiceUnavailableError.
        """
        assert ctx.account_id is not None and ctx.user_id is not None
        documents = [
            {name: row[name] for name in row if name in policy.CONTACT_WRITABLE_FIELDS}
            | {"position": position}
            for position, row in enumerate(rows)
        ]
        params = {
            "account_id": ctx.account_id,
            "user_id": ctx.user_id,
            "rows": Jsonb(documents),
        }

        with self.db.write(ctx) as cur:
            # Inserting first, with DO NOTHING on a live email, waits for a
            # concurrent insert of the same email and then skips it, so the
            # UPDATE below finds that row instead of a unique violation.
            cur.execute(_IMPORT_INSERT, params)
            inserted = cur.fetchall()
            # Rows without an email come back as NULL, which would make the
            # <> ALL() test below NULL for every row.
            inserted_emails = [row["email_key"] for row in inserted if row["email_key"]]
            cur.execute(_IMPORT_UPDATE, {**params, "inserted": inserted_emails})
            counts = {"created": len(inserted), "updated": cur.rowcount}
            record_event(
                cur,
                ctx,
                "contact.imported",
                account_id=ctx.account_id,
                target_type="contact",
                details={"rows": len(rows), **counts},
            )

        return counts

    def update_contact(
        self,
        ctx: TxContext,
        contact_id: str,
        changes: dict[str, Any],
        *,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Apply ``changes``; raise PreconditionFailedError on a stale version."""
        assignments, params = versioned_set_clause(
            changes, policy.CONTACT_WRITABLE_FIELDS
        )
        query = sql.SQL(
            """
            UPDATE contacts
            SET {assignments}
            WHERE id = %(contact_id)s
              AND account_id = %(account_id)s
              AND deleted_at IS NULL
              AND version = coalesce(%(expected_version)s, version)
            RETURNING {columns}
            """
        ).format(assignments=assignments, columns=CONTACT_COLUMNS)

        with self.db.write(ctx) as cur:
            try:
                cur.execute(
                    query,
                    {
                        **params,
                        "contact_id": contact_id,
                        "account_id": ctx.account_id,
                        "expected_version": expected_version,
                    },
                )
            except pg_errors.UniqueViolation as exc:
                raise ConflictError(EMAIL_TAKEN) from exc
            row = cur.fetchone()
            if row is None:
                # Tell a stale version apart from a missing contact.
                _select_contact(cur, ctx, contact_id)
                raise PreconditionFailedError()

        return row

    def delete_contact(
        self,
        ctx: TxContext,
        contact_id: str,
        *,
        actor_role: str,
        expected_version: int | None = None,
    ) -> None:
        """Soft-delete a contact; members may delete only their own."""
        assert ctx.user_id is not None

        with self.db.write(ctx) as cur:
            contact = _select_contact(cur, ctx, contact_id, for_update=True)
            created_by = contact["created_by"]
            allowed = policy.can_delete_contact(
                actor_role,
                actor_id=ctx.user_id,
                created_by=str(created_by) if created_by else None,
            )
            if not allowed and policy.can_write_contacts(actor_role):
                raise ForbiddenError("You can delete only contacts you created.")
            if not allowed:
                raise ForbiddenError("Your role cannot delete contacts.")
            if expected_version is not None and contact["version"] != expected_version:
                raise PreconditionFailedError()
            cur.execute(
                """
                UPDATE contacts
                SET deleted_at = now(), updated_at = now(), version = version + 1
                WHERE id = %(contact_id)s
                  AND account_id = %(account_id)s
                """,
                {"contact_id": contact_id, "account_id": ctx.account_id},
            )
            record_event(
                cur,
                ctx,
                "contact.deleted",
                account_id=ctx.account_id,
                target_type="contact",
                target_id=contact_id,
            )


_IMPORT_INSERT = """
    INSERT INTO contacts (
        account_id, created_by, name, email, phone, company, notes, tags
    )
    SELECT %(account_id)s, %(user_id)s, r.name, r.email, r.phone, r.company,
           r.notes, coalesce(r.tags, '{}')
    FROM jsonb_to_recordset(%(rows)s) AS r(
        position integer, name text, email text, phone text, company text,
        notes text, tags text[]
    )
    ORDER BY r.position
    ON CONFLICT (account_id, lower(email))
        WHERE deleted_at IS NULL AND email IS NOT NULL
        DO NOTHING
    RETURNING lower(email) AS email_key
"""

# A field absent from a row keeps its value; a field sent as null clears it.
_IMPORT_UPDATE = """
    UPDATE contacts AS c
    SET name = r.doc ->> 'name',
        phone = CASE WHEN r.doc ? 'phone' THEN r.doc ->> 'phone' ELSE c.phone END,
        company = CASE
            WHEN r.doc ? 'company' THEN r.doc ->> 'company' ELSE c.company
        END,
        notes = CASE WHEN r.doc ? 'notes' THEN r.doc ->> 'notes' ELSE c.notes END,
        tags = CASE
            WHEN r.doc ? 'tags'
            THEN ARRAY(SELECT jsonb_array_elements_text(r.doc -> 'tags'))
            ELSE c.tags
        END,
        updated_at = now(),
        version = c.version + 1
    FROM jsonb_array_elements(%(rows)s) AS r(doc)
    WHERE c.account_id = %(account_id)s
      AND c.deleted_at IS NULL
      AND c.email IS NOT NULL
      AND r.doc ->> 'email' IS NOT NULL
      AND lower(c.email) = lower(r.doc ->> 'email')
      AND lower(r.doc ->> 'email') <> ALL(%(inserted)s::text[])
"""


def _select_contact(
    cur: Cursor, ctx: TxContext, contact_id: str, *, for_update: bool = False
) -> dict[str, Any]:
    query = sql.SQL(
        """
        SELECT {columns}
        FROM contacts
        WHERE id = %(contact_id)s
          AND account_id = %(account_id)s
          AND deleted_at IS NULL
        {lock}
        """
    ).format(columns=CONTACT_COLUMNS, lock=sql.SQL("FOR UPDATE" if for_update else ""))
    cur.execute(query, {"contact_id": contact_id, "account_id": ctx.account_id})
    row = cur.fetchone()
    if row is None:
        raise NotFoundError(NOT_FOUND)
    return row
