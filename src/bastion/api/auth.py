"""Sign-up, login, token refresh and logout."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from bastion.api.common import load_json, no_content, public
from bastion.auth import anonymous_context, caller_context, current_user
from bastion.errors import NotFoundError
from bastion.schemas.auth import (
    AccountWithUserSchema,
    LoginSchema,
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
def login() -> Response:
    """Exchange an email and password for a token pair."""
    data = load_json(login_schema)
    pair = registry().sessions.login(
        anonymous_context(), email=data["email"], password=data["password"]
    )
    return _token_body(pair)


@bp.post("/refresh")
@public
def refresh() -> Response:
    """Exchange a refresh token for a new pair."""
    data = load_json(refresh_schema)
    pair = registry().sessions.refresh(
        anonymous_context(), refresh_token=data["refresh_token"]
    )
    return _token_body(pair)


@bp.post("/logout")
def logout() -> Response:
    """End the caller's session."""
    registry().sessions.logout(caller_context(), session_id=current_user().session_id)
    return no_content()
