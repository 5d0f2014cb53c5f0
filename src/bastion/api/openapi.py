"""The OpenAPI document of the whole API, public."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from bastion.api.common import public
from bastion.openapi import build_document, operation

bp = Blueprint("openapi", __name__)

_CACHE_KEY = "bastion.openapi"


def openapi_document() -> dict[str, Any]:
    """Return the application's document, built once per process."""
    from bastion.api import requires_token
    from bastion.ratelimit import is_rate_limited

    document: dict[str, Any] | None = current_app.extensions.get(_CACHE_KEY)
    if document is None:
        document = build_document(
            current_app,
            requires_token=requires_token,
            is_rate_limited=is_rate_limited,
        )
        current_app.extensions[_CACHE_KEY] = document
    return document


@bp.get("/openapi.json")
@public
@operation(
    response={"type": "object", "description": "An OpenAPI 3.1 document."},
    database=False,
)
def get_openapi_document() -> Response:
    """Return this OpenAPI document."""
    return jsonify(openapi_document())
