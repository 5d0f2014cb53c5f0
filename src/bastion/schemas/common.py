"""Fields and base schemas shared by every resource."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from bastion.pagination import DEFAULT_LIMIT, MAX_LIMIT
from bastion.passwords import (
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    TOO_LONG,
    TOO_SHORT,
)


class LoadSchema(Schema):
    """Base for request schemas: unknown fields are an error, never dropped."""

    class Meta:
        unknown = RAISE


class UtcDateTime(fields.DateTime):
    """An RFC 3339 timestamp in UTC with a ``Z`` suffix."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError("expected a datetime")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class StrictBoolean(fields.Boolean):
    """A boolean that accepts only JSON ``true`` and ``false``."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> Any:
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean.")
        return value


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


def name_field(*, required: bool = True) -> fields.String:
    return fields.String(
        required=required,
        validate=[validate.Length(min=1, max=200), not_blank],
    )


def email_field(*, required: bool = True, allow_none: bool = False) -> fields.Email:
    return fields.Email(
        required=required,
        allow_none=allow_none,
        validate=validate.Length(max=320),
    )


def check_password_length(value: str) -> None:
    # Services check the rest of the password policy, which needs the
    # user's email and name; the length check here bounds their work.
    if len(value) < PASSWORD_MIN_LENGTH:
        raise ValidationError(TOO_SHORT)
    if len(value) > PASSWORD_MAX_LENGTH:
        raise ValidationError(TOO_LONG)


def password_field() -> fields.String:
    return fields.String(required=True, load_only=True, validate=check_password_length)


class PageQuerySchema(LoadSchema):
    """Query parameters of every list."""

    limit = fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=validate.Range(min=1, max=MAX_LIMIT),
    )
    # Cursors are base64url pieces joined by a dot (see pagination.py), so
    # any other character is a 400 before the cursor is even decoded.
    cursor = fields.String(
        load_default=None,
        allow_none=False,
        validate=[validate.Length(max=512), validate.Regexp(r"^[A-Za-z0-9_.-]*$")],
    )


def fold_email(email: str) -> str:
    """Case-fold an email the way PostgreSQL's lower() does under C.UTF-8.

    Python lowers U+0130 (capital I with dot) to "i" plus a combining dot,
    and PostgreSQL lowers it to a plain "i". Comparing Python 3.11 with
    PostgreSQL 15 (C.UTF-8) over U+0020 to U+2FFFF found no other
    difference. Folding both spellings to "i" can only merge more emails
    than the database does, never fewer.
    """
    return email.strip().lower().replace("i\u0307", "i")
