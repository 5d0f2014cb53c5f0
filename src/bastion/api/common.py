"""Request and response helpers shared by the blueprints."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Response, current_app, jsonify, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

from bastion.errors import BadRequestError, ForbiddenError, PreconditionFailedError
from bastion.jsonio import has_unstorable_text
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
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in {"utf-8", "utf8"}:
        raise UnsupportedMediaType()
    _reject_truncated_stream()
    try:
        data = request.get_json()
    except RequestEntityTooLarge:
        raise
    except BadRequest:
        raise BadRequestError(
            "The request body is not valid JSON (duplicate keys, NaN and "
            "deeply nested values are rejected)."
        ) from None
    if has_unstorable_text(data):
        raise BadRequestError(
            "The request body contains a NUL character or an unpaired surrogate."
        )
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


def _reject_truncated_stream() -> None:
    """Raise 413 for a chunked body that reached the size limit.

    Werkzeug stops reading a body without Content-Length at
    MAX_CONTENT_LENGTH and returns what it has, so a longer body would
    otherwise reach the JSON parser cut short and look malformed.
    """
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is not None or not limit:
        return
    if len(request.get_data(cache=True)) >= limit:
        raise RequestEntityTooLarge()


def load_query(schema: Schema) -> dict[str, Any]:
    """Validate the query string; a bad parameter is a 400 naming it.

    An empty value counts as absent; a repeated parameter is rejected
    rather than silently reduced to one of its values.
    """
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise BadRequestError(
            "Query parameters may appear only once: " + ", ".join(repeated) + "."
        )
    params = {name: value for name, value in request.args.items() if value != ""}
    if has_unstorable_text(params):
        raise BadRequestError(
            "A query parameter contains a NUL character or an unpaired surrogate."
        )
    try:
        loaded: dict[str, Any] = schema.load(params)
    except ValidationError as exc:
        raise BadRequestError(_describe_query_errors(exc)) from None
    return loaded


def _describe_query_errors(exc: ValidationError) -> str:
    if not isinstance(exc.messages, dict):
        return "Invalid query string."
    parts = []
    for name, problems in sorted(exc.messages.items()):
        detail = " ".join(problems) if isinstance(problems, list) else str(problems)
        parts.append(f"{name}: {detail}")
    return "Invalid query parameter " + "; ".join(parts)


# A strong ETag is the row version, plus a suffix naming the representation
# when a role sees a reduced one, so two different bodies never share a tag.
_ETAG = re.compile(r'"(?P<version>[0-9]{1,10})(?:\.[a-z]+)?"')


def etag_for(row: dict[str, Any], representation: str = "") -> str:
    suffix = f".{representation}" if representation else ""
    return f'"{row["version"]}{suffix}"'


def if_match_version() -> int | None:
    """Return the version named by ``If-Match``, or None when absent or ``*``.

    Bastion takes one ETag here. A list, a weak tag or a value that is not
    one of our ETags is a 400, so a client bug is not mistaken for a stale
    copy.
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    match = _ETAG.fullmatch(header.strip())
    if match is None:
        raise BadRequestError(
            'If-Match must be "*" or one ETag as returned by this API, such as "3".'
        )
    return int(match["version"])


def require_version(row: dict[str, Any], expected_version: int | None) -> None:
    """Raise PreconditionFailedError unless ``row`` is the expected version.

    The routes call it when a PATCH changes nothing and skips the write,
    so If-Match is checked there too.
    """
    if expected_version is not None and row["version"] != expected_version:
        raise PreconditionFailedError()


def resource_response(
    body: dict[str, Any],
    row: dict[str, Any],
    status: int = 200,
    *,
    representation: str = "",
) -> Response:
    """Return a single resource with its ``ETag``."""
    response = jsonify(body)
    response.status_code = status
    response.headers["ETag"] = etag_for(row, representation)
    return response


def page_response(items: list[dict[str, Any]], next_cursor: str | None) -> Response:
    return jsonify({"items": items, "next_cursor": next_cursor})


def no_content() -> Response:
    return Response(status=204)
