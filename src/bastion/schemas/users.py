"""User schemas: what may be sent, and what each role may see."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from bastion.passwords import PASSWORD_MAX_LENGTH
from bastion.policy import ROLES
from bastion.schemas.common import (
    LoadSchema,
    StrictBoolean,
    UtcDateTime,
    email_field,
    name_field,
    password_field,
)


class UserCreateSchema(LoadSchema):
    name = name_field()
    email = email_field()
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    password = password_field()


class UserUpdateSchema(LoadSchema):
    name = name_field(required=False)
    role = fields.String(validate=validate.OneOf(ROLES))
    is_active = StrictBoolean()


class MeUpdateSchema(LoadSchema):
    name = name_field()


class PasswordChangeSchema(LoadSchema):
    current_password = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=PASSWORD_MAX_LENGTH),
    )
    new_password = password_field()


class UserPublicSchema(Schema):
    """The fields every member of the account may see."""

    id = fields.UUID(dump_only=True)
    name = fields.String(dump_only=True)
    role = fields.String(dump_only=True)


class UserSchema(UserPublicSchema):
    """The fields admins, owners and the user themself may see."""

    email = fields.String(dump_only=True)
    is_active = fields.Boolean(dump_only=True)
    created_at = UtcDateTime(dump_only=True)
    updated_at = UtcDateTime(dump_only=True)
    last_login_at = UtcDateTime(dump_only=True, allow_none=True)
