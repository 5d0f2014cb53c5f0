"""Request and response helpers shared by the blueprints."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Response, jsonify, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from bastion.errors import BadRequestError, ForbiddenError, PreconditionFailedError
from bastion.policy import protected_fields

F = TypeVar("F", bound=Callable[..., Any])


def public(view: F) -> F:
    """Mark a view as reachable without an access token."""
    view.is_public = True  # type: ignore[attr-defined]
    return view


def load_json(
    schema: Schema,
    *,
    protected: frozenset[str] = frozenset(),
    allowed: Iterable[str] | None = None,
    partial: bool = False,
) -> dict[str, Any]:
    """Parse and validate the JSON body.

    Keys in ``protected``, or outside ``allowed`` when given, name fields the
    caller may not write: 403 naming them, before any other validation.
    """
    if not request.is_json:
        raise UnsupportedMediaType()
    try:
        data = request.get_json()
    except BadRequest:
        raise BadRequestError("The request body is not valid JSON.") from None
    if isinstance(data, dict):
        denied = protected_fields(data, protected)
        if allowed is not None:
            permitted = set(allowed)
            denied += sorted(
                key for key in data if key not in permitted and key in schema.fields
            )
        if denied:
            raise ForbiddenError(
                "You may not set these fields: " + ", ".join(sorted(set(denied))) + "."
            )
    loaded: dict[str, Any] = schema.load(data, partial=partial)
    return loaded


def load_query(schema: Schema) -> dict[str, Any]:
    """Validate the query string; a bad parameter is a 400 naming it."""
    try:
        loaded: dict[str, Any] = schema.load(request.args.to_dict())
    except ValidationError as exc:
        names = sorted(exc.messages) if isinstance(exc.messages, dict) else []
        raise BadRequestError(
            "Invalid query parameter: " + ", ".join(names) + "."
        ) from None
    return loaded


def etag_for(row: dict[str, Any]) -> str:
    return f'"{row["version"]}"'


def if_match_version() -> int | None:
    """Return the version named by ``If-Match``, or None when absent or ``*``.

    A value that cannot be one of our strong ETags can never match, so it
    fails the precondition.
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    value = header.strip()
    if len(value) < 3 or not (value.startswith('"') and value.endswith('"')):
        raise PreconditionFailedError()
    try:
        return int(value[1:-1])
    except ValueError:
        raise PreconditionFailedError() from None


def resource_response(
    body: dict[str, Any], row: dict[str, Any], status: int = 200
) -> Response:
    """Return a single resource with its ``ETag``."""
    response = jsonify(body)
    response.status_code = status
    response.headers["ETag"] = etag_for(row)
    return response


def page_response(items: list[dict[str, Any]], next_cursor: str | None) -> Response:
    return jsonify({"items": items, "next_cursor": next_cursor})


def no_content() -> Response:
    return Response(status=204)
