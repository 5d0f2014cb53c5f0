"""The ``/api/v1`` blueprint: every route requires a token unless marked public."""

from __future__ import annotations

from flask import Blueprint, current_app, request
from flask_jwt_extended import verify_jwt_in_request

from bastion.api import audit, auth, contacts, me, users

api = Blueprint("api", __name__, url_prefix="/api/v1")


@api.before_request
def require_token() -> None:
    """Deny by default: verify the access token unless the view is public."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "is_public", False):
        return
    verify_jwt_in_request()


for module in (auth, me, users, contacts, audit):
    api.register_blueprint(module.bp)
