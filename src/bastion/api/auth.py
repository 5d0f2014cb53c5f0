"""Sign-up, login, token refresh, logout and password reset."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from bastion.api.common import load_json, no_content, public
from bastion.auth import anonymous_context, caller_context, current_user
from bastion.errors import BadRequestError, NotFoundError
from bastion.mail import send_in_background
from bastion.openapi import operation
from bastion.schemas.auth import (
    AccountWithUserSchema,
    LoginSchema,
    MessageSchema,
    PasswordResetConfirmSchema,
    PasswordResetRequestSchema,
    RefreshSchema,
    SignupSchema,
    TokenPairSchema,
)
from bastion.services import registry
from bastion.services.sessions import TokenPair

bp = Blueprint("auth", __name__, url_prefix="/auth")

signup_schema = SignupSchema()
login_schema = LoginSchema()
refresh_schema = RefreshSchema()
token_pair_schema = TokenPairSchema()
account_with_user_schema = AccountWithUserSchema()
reset_request_schema = PasswordResetRequestSchema()
reset_confirm_schema = PasswordResetConfirmSchema()
message_schema = MessageSchema()

RESET_ACCEPTED = (
    "If an active user has this email, a password reset token is on its way."
)


def _token_body(pair: TokenPair) -> Response:
    return jsonify(
        token_pair_schema.dump(
            {
                "access_token": pair.access_token,
                "refresh_token": pair.refresh_token,
                "token_type": "Bearer",
                "expires_in": pair.expires_in,
            }
        )
    )


@bp.post("/signup")
@public
@operation(
    status=201,
    body=SignupSchema,
    response=AccountWithUserSchema,
    errors=(404, 409),
)
def signup() -> tuple[Response, int]:
    """Create an account and its owner."""
    services = registry()
    if not services.settings.signup_enabled:
        raise NotFoundError("The requested URL was not found.")
    data = load_json(signup_schema)
    account, owner = services.accounts.create_account(
        anonymous_context(),
        account_name=data["account_name"],
        owner_name=data["name"],
        owner_email=data["email"],
        password=data["password"],
    )
    return jsonify(
        account_with_user_schema.dump({"account": account, "user": owner})
    ), 201


@bp.post("/login")
@public
@operation(body=LoginSchema, response=TokenPairSchema, errors=(401,))
def login() -> Response:
    """Exchange an email and password for a token pair."""
    data = load_json(login_schema)
    pair = registry().sessions.login(
        anonymous_context(), email=data["email"], password=data["password"]
    )
    return _token_body(pair)


@bp.post("/refresh")
@public
@operation(body=RefreshSchema, response=TokenPairSchema, errors=(401,))
def refresh() -> Response:
    """Exchange a refresh token for a new pair."""
    data = load_json(refresh_schema)
    pair = registry().sessions.refresh(
        anonymous_context(), refresh_token=data["refresh_token"]
    )
    return _token_body(pair)


@bp.post("/logout")
@operation(status=204, errors=(400,))
def logout() -> Response:
    """End the caller's session."""
    if request.get_data():
        raise BadRequestError("This request takes no body.")
    registry().sessions.logout(caller_context(), session_id=current_user().session_id)
    return no_content()


@bp.post("/password-reset")
@public
@operation(status=202, body=PasswordResetRequestSchema, response=MessageSchema)
def request_password_reset() -> tuple[Response, int]:
    """Mail a reset token if an active user has the email; return 202 always."""
    data = load_json(reset_request_schema)
    services = registry()
    reset = services.passwords.request_reset(anonymous_context(), email=data["email"])
    response = jsonify(message_schema.dump({"message": RESET_ACCEPTED}))
    message = reset.message
    if message is not None:
        send_in_background(services.mailer, message, event="password_reset")
    return response, 202


@bp.post("/password-reset/confirm")
@public
@operation(status=204, body=PasswordResetConfirmSchema)
def confirm_password_reset() -> Response:
    """Set a new password with a reset token; every session of the user ends."""
    data = load_json(reset_confirm_schema)
    registry().passwords.confirm_reset(
        anonymous_context(), token=data["token"], password=data["password"]
    )
    return no_content()
