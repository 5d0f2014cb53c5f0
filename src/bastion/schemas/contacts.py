"""Contact schemas."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from bastion.schemas.common import (
    LoadSchema,
    PageQuerySchema,
    UtcDateTime,
    email_field,
    fold_email,
    name_field,
)

MAX_TAGS = 50
MAX_IMPORT_ROWS = 1000


def unique_items(values: list[str]) -> None:
    if len(set(values)) != len(values):
        raise ValidationError("Tags must be unique.")


def _optional_text(max_length: int) -> fields.String:
    return fields.String(allow_none=True, validate=validate.Length(max=max_length))


class ContactWriteSchema(LoadSchema):
    """Body of ``POST /contacts``; ``PATCH`` loads it with ``partial=True``."""

    name = name_field()
    email = email_field(required=False, allow_none=True)
    phone = _optional_text(50)
    company = _optional_text(200)
    notes = _optional_text(10_000)
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=50)),
        validate=[validate.Length(max=MAX_TAGS), unique_items],
    )


class ContactImportResultSchema(Schema):
    """How many rows of an import were created and how many updated."""

    created = fields.Integer(dump_only=True)
    updated = fields.Integer(dump_only=True)


class ContactImportSchema(LoadSchema):
    """Body of ``POST /contacts/import``; rows are checked by ``load_import_rows``."""

    contacts = fields.List(
        fields.Raw(),
        required=True,
        validate=validate.Length(min=1, max=MAX_IMPORT_ROWS),
    )


def load_import_rows(rows: list[Any], schema: Schema) -> list[dict[str, Any]]:
    """Validate every import row; raise one ValidationError keyed by row index.

    Two rows with the same email, compared case-insensitively, are an error
    on the later row: an import never depends on which of them wins.
    """
    loaded: list[dict[str, Any]] = []
    errors: dict[str, Any] = {}
    first_row_of_email: dict[str, int] = {}
    for index, row in enumerate(rows):
        try:
            data: dict[str, Any] = schema.load(row)
        except ValidationError as exc:
            errors[str(index)] = exc.messages
            continue
        loaded.append(data)
        email = fold_email(data.get("email") or "")
        if not email:
            continue
        if email in first_row_of_email:
            errors[str(index)] = {
                "email": [f"Duplicates the email of row {first_row_of_email[email]}."]
            }
        else:
            first_row_of_email[email] = index
    if errors:
        raise ValidationError(errors)
    return loaded


class ContactListQuerySchema(PageQuerySchema):
    q = fields.String(
        load_default=None, allow_none=False, validate=validate.Length(min=1, max=100)
    )


class ContactSchema(Schema):
    """A contact as members, admins and owners see it."""

    id = fields.UUID(dump_only=True)
    name = fields.String(dump_only=True)
    email = fields.String(dump_only=True, allow_none=True)
    phone = fields.String(dump_only=True, allow_none=True)
    company = fields.String(dump_only=True, allow_none=True)
    notes = fields.String(dump_only=True, allow_none=True)
    tags = fields.List(fields.String(), dump_only=True)
    created_by = fields.UUID(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)
    updated_at = UtcDateTime(dump_only=True)
