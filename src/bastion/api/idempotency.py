"""The ``Idempotency-Key`` header on POST routes that create things.

A retry with the same key and the same request gets the first response
again, marked with ``Idempotent-Replayed: true``, and writes nothing. The
same key with another body, route or user gets 422. Views raise their
errors, which rolls the key back together with the write, so only
successful responses are stored and a retry after an error runs again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, current_app, jsonify, request
from werkzeug.exceptions import UnsupportedMediaType

from bastion.auth import caller_context
from bastion.errors import BadRequestError
from bastion.services import registry
from bastion.services.idempotency import StoredResponse

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Visible ASCII, so a key fits a log line and an HTTP header unchanged.
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
STORED_HEADERS = ("Location", "ETag")


def request_hash(user_id: str | None) -> bytes:
    """Hash who sends what where; JSON bodies count by value, not by layout.

    The digest is an HMAC keyed by the app secret: a body can carry a new
    user's password, and a plain hash stored beside the rest of the body
    could be brute-forced offline by anyone who reads the table.
    """
    raw = request.get_data(cache=True)
    try:
        body = json.dumps(
            json.loads(raw), sort_keys=True, separators=(",", ":")
        ).encode()
    except ValueError:
        body = raw
    key = hashlib.sha256(
        b"bastion-idempotency:" + registry().settings.secret_key.encode()
    ).digest()
    digest = hmac.new(key, digestmod=hashlib.sha256)
    for part in (user_id or "", request.method, request.path):
        digest.update(part.encode() + b"\x00")
    digest.update(body)
    return digest.digest()


def _replay(stored: StoredResponse) -> Response:
    response = jsonify(stored.body)
    response.status_code = stored.status
    for name, value in stored.headers.items():
        response.headers[name] = value
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _check_replayable_request() -> None:
    """Apply the checks every body gets before a stored response is replayed.

    A request that would now be rejected (a body of another media type, or
    JSON the API refuses to parse) gets its error, not the stored response.
    """
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    try:
        current_app.json.loads(request.get_data(cache=True))
    except ValueError:
        raise BadRequestError("The request body is not valid JSON.") from None


def idempotent(
    guard: Callable[[], object],
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Honour ``Idempotency-Key`` on a POST view of an authenticated caller.

    ``guard`` is the view's permission check. It runs before any replay,
    so a caller who lost the role since the first request is refused.
    """

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            return _run(view, guard, *args, **kwargs)

        return wrapper

    return decorate


def _run(
    view: Callable[..., Response],
    guard: Callable[[], object],
    *args: Any,
    **kwargs: Any,
) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        return view(*args, **kwargs)
    if not KEY_PATTERN.fullmatch(key):
        raise BadRequestError(
            f"The {HEADER} header must be 1 to 255 visible ASCII characters."
        )
    guard()
    _check_replayable_request()
    ctx = caller_context()

    # NOTE: the view runs inside the claim's transaction, so POST /users
    # keeps a pooled connection checked out while bcrypt hashes the password.
    with registry().idempotency.claim(ctx, key, request_hash(ctx.user_id)) as claim:
        if claim.replay is not None:
            return _replay(claim.replay)
        response = view(*args, **kwargs)
        claim.store(
            StoredResponse(
                status=response.status_code,
                body=response.get_json(),
                headers={
                    name: response.headers[name]
                    for name in STORED_HEADERS
                    if name in response.headers
                },
            )
        )
    return response
