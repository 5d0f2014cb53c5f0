"""The shared parts of the document: security scheme, headers, error responses."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from bastion.schemas.errors import ErrorSchema, ValidationErrorSchema

BEARER_SCHEME = "bearerAuth"
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed JSON, text with NUL or an unpaired surrogate, an invalid "
    "query parameter or cursor, or an `If-Match` that is not one ETag.",
    401: "The access token is missing, expired, revoked or invalid.",
    403: "The caller's role does not allow this, or the body sets a field "
    "the caller may not write (the message names it).",
    404: "Not found, deleted, or in another account.",
    409: "Conflicts with an existing resource, such as a duplicate email.",
    412: "`If-Match` names a version that is no longer current.",
    413: "The request body exceeds the configured size limit.",
    415: "The request body is not `application/json`.",
    422: "The request body is invalid; `fields` names each invalid field.",
    429: "Too many requests; retry after `Retry-After` seconds.",
    500: "The server failed; the body carries no detail of the failure.",
    503: "The database is unreachable or timed out; retry after `Retry-After` seconds.",
}

RETRY_STATUSES = frozenset({429, 503})
# Statuses gunicorn returns itself, before the application sees the request.
SERVER_ERROR_DESCRIPTIONS: dict[int, str] = {
    414: "The request line exceeds gunicorn's limit (8,190 bytes by default). "
    "gunicorn answers with an HTML page, not the JSON error shape.",
}

_STRING = {"type": "string"}
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id, also in the logs and error bodies.",
        "required": True,
        "schema": _STRING,
    },
    "ETag": {
        "description": "The strong entity tag of this representation of the "
        "resource: its version, plus a suffix when the caller's role sees a "
        "reduced body.",
        "required": True,
        "schema": {"type": "string", "pattern": '^"[0-9a-z.]+"$'},
    },
    "Location": {
        "description": "The URL of the new resource.",
        "required": True,
        "schema": _STRING,
    },
    "Idempotent-Replayed": {
        "description": "`true` when the response is a replay of the first "
        "response to the same `Idempotency-Key`.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "RateLimit-Limit": {
        "description": "Requests allowed in the current window of the "
        "tightest limit that applies.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Remaining": {
        "description": "Requests left in that window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Reset": {
        "description": "Seconds until that window resets.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW-Authenticate": {
        "description": "The authentication scheme the API expects.",
        "required": True,
        "schema": {"type": "string", "pattern": "^Bearer "},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
}
REQUEST_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "A client-chosen id of 8 to 128 characters from "
        "`A-Z a-z 0-9 . _ : -`, echoed back. Any other value is replaced by a "
        "generated id.",
        "schema": _STRING,
    },
    "If-Match": {
        "description": "The `ETag` the change is based on. A stale one gets "
        "412 and changes nothing, and `*` or no header skips the check. Users "
        "and contacts reject any other value (a list, a weak tag) with 400; "
        "`/me` compares the value with its current `ETag`, so there any other "
        "value is a 412.",
        "schema": {"type": "string", "pattern": r'^(\*|"[0-9a-z.]{1,64}")$'},
    },
    "Idempotency-Key": {
        "description": "1 to 255 visible ASCII characters. A retry with the "
        "same key and body returns the first successful response, with "
        "`Idempotent-Replayed: true`, and writes nothing. The same key with "
        "another body gets 422, and a malformed key 400.",
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    },
}


def add_components(spec: APISpec) -> None:
    """Register the security scheme, headers and error responses on ``spec``."""
    spec.components.security_scheme(
        BEARER_SCHEME,
        {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An ES256 access token from `POST /api/v1/auth/login`.",
        },
    )
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.schema("ValidationError", schema=ValidationErrorSchema)
    for name, header in RESPONSE_HEADERS.items():
        spec.components.header(name, header)
    for name, parameter in REQUEST_HEADERS.items():
        spec.components.parameter(name, "header", parameter)

    for status, text in ERROR_DESCRIPTIONS.items():
        headers = {"X-Request-ID": {"$ref": header_ref("X-Request-ID")}}
        if status in RETRY_STATUSES:
            headers["Retry-After"] = {"$ref": header_ref("Retry-After")}
        if status == 401:
            headers["WWW-Authenticate"] = {"$ref": header_ref("WWW-Authenticate")}
        schema = "ValidationError" if status == 422 else "Error"
        content = {"schema": {"$ref": f"#/components/schemas/{schema}"}}
        spec.components.response(
            error_response_name(status),
            {
                "description": text,
                "headers": headers,
                "content": {"application/json": content},
            },
        )
    for status, text in SERVER_ERROR_DESCRIPTIONS.items():
        html = {"text/html": {"schema": _STRING}}
        spec.components.response(
            error_response_name(status), {"description": text, "content": html}
        )


def header_ref(name: str) -> str:
    return f"#/components/headers/{name}"


def error_response_name(status: int) -> str:
    return f"Error{status}"
