"""The ``/api/v1`` blueprint: every route requires a token unless marked public."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, request
from flask_jwt_extended import verify_jwt_in_request

from bastion.api import audit, auth, contacts, me, openapi, users

api = Blueprint("api", __name__, url_prefix="/api/v1")


def requires_token(endpoint: str, view: Callable[..., Any] | None) -> bool:
    """Tell whether a request to ``endpoint`` must carry a valid access token.

    The token check below and the OpenAPI document's security both use this,
    so the document cannot mark a route public that the server protects, or
    the reverse.
    """
    if not endpoint.startswith(f"{api.name}."):
        return False
    return view is not None and not getattr(view, "is_public", False)


@api.before_request
def require_token() -> None:
    """Deny by default: verify the access token unless the view is public."""
    endpoint = request.endpoint or ""
    if requires_token(endpoint, current_app.view_functions.get(endpoint)):
        verify_jwt_in_request()


for module in (auth, me, users, contacts, audit, openapi):
    api.register_blueprint(module.bp)
