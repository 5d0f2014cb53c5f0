"""The caller's own user and account."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, Response, jsonify, request

from bastion.api.common import load_json, no_content
from bastion.auth import caller_context, current_user
from bastion.errors import PreconditionFailedError
from bastion.openapi import operation
from bastion.policy import USER_PROTECTED_FIELDS
from bastion.schemas.accounts import AccountSchema
from bastion.schemas.auth import AccountWithUserSchema
from bastion.schemas.users import MeUpdateSchema, PasswordChangeSchema, UserSchema
from bastion.services import registry

bp = Blueprint("me", __name__, url_prefix="/me")

user_schema = UserSchema()
account_schema = AccountSchema()
me_update_schema = MeUpdateSchema()
password_change_schema = PasswordChangeSchema()


def _me_response(user: dict[str, Any], account: dict[str, Any]) -> Response:
    body = {"user": user_schema.dump(user), "account": account_schema.dump(account)}
    response = jsonify(body)
    # /me combines two rows and fields such as last_login_at that change
    # without a version bump, so its ETag is a digest of the body itself.
    response.headers["ETag"] = (
        '"' + hashlib.sha256(response.get_data()).hexdigest()[:32] + '"'
    )
    return response


def _current_me() -> Response:
    services = registry()
    ctx = caller_context()
    user = services.users.get_user(ctx, current_user().id)
    account = services.accounts.get_account(ctx)
    return _me_response(user, account)


def _check_if_match() -> None:
    """Raise 412 when ``If-Match`` names another version of /me."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return
    # NOTE: the check and the update run in separate transactions, so a
    # change landing between them goes unnoticed; /me holds only the name.
    if header.strip() != _current_me().headers["ETag"]:
        raise PreconditionFailedError()


@bp.get("")
@operation(response=AccountWithUserSchema, etag=True)
def get_me() -> Response:
    """Return the caller's user and account."""
    return _current_me()


@bp.patch("")
@operation(
    body=MeUpdateSchema,
    response=AccountWithUserSchema,
    etag=True,
    if_match=True,
    errors=(403,),
)
def update_me() -> Response:
    """Change the caller's display name."""
    data = load_json(
        me_update_schema,
        protected=USER_PROTECTED_FIELDS | {"role", "is_active"},
    )
    _check_if_match()
    services = registry()
    ctx = caller_context()
    user = services.users.update_me(ctx, name=data["name"])
    account = services.accounts.get_account(ctx)
    return _me_response(user, account)


@bp.post("/password")
@operation(status=204, body=PasswordChangeSchema, errors=(403,))
def change_password() -> Response:
    """Change the caller's password; their other sessions end."""
    data = load_json(password_change_schema)
    registry().passwords.change_password(
        caller_context(),
        session_id=current_user().session_id,
        current_password=data["current_password"],
        new_password=data["new_password"],
    )
    return no_content()
