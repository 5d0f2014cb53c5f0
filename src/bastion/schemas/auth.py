"""Sign-up, login and token schemas."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from bastion.passwords import PASSWORD_MAX_LENGTH
from bastion.schemas.accounts import AccountSchema
from bastion.schemas.common import (
    LoadSchema,
    email_field,
    name_field,
    password_field,
)
from bastion.schemas.users import UserSchema


class SignupSchema(LoadSchema):
    account_name = name_field()
    name = name_field()
    email = email_field()
    password = password_field()


class LoginSchema(LoadSchema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))
    password = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=PASSWORD_MAX_LENGTH),
    )


class RefreshSchema(LoadSchema):
    refresh_token = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=200)
    )


class PasswordResetRequestSchema(LoadSchema):
    email = email_field()


class PasswordResetConfirmSchema(LoadSchema):
    token = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=200)
    )
    password = password_field()


class MessageSchema(Schema):
    """A body that only carries a sentence for the user."""

    message = fields.String(dump_only=True)


class TokenPairSchema(Schema):
    access_token = fields.String(dump_only=True)
    refresh_token = fields.String(dump_only=True)
    token_type = fields.String(dump_only=True)
    expires_in = fields.Integer(dump_only=True)


class AccountWithUserSchema(Schema):
    account = fields.Nested(AccountSchema, dump_only=True)
    user = fields.Nested(UserSchema, dump_only=True)
