"""Domain errors and the one error body that every layer returns.

Body: ``{"error": {"code", "message", "request_id", "fields"?}}``. Messages
are ours; exception and driver text only reaches the server log.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from bastion.schemas.errors import ErrorSchema, ValidationErrorSchema

logger = logging.getLogger(__name__)


class BastionError(Exception):
    """Base for errors that map to one HTTP status and error code."""

    status = 500
    code = "internal_error"
    message = "The server failed to handle the request."

    def __init__(
        self,
        message: str | None = None,
        *,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.fields = fields
        self.headers = headers or {}


class BadRequestError(BastionError):
    status = 400
    code = "bad_request"
    message = "The request is malformed."


class UnauthorizedError(BastionError):
    status = 401
    code = "unauthorized"
    message = "Authentication is required or the credentials are invalid."


class ForbiddenError(BastionError):
    status = 403
    code = "forbidden"
    message = "You are not allowed to perform this action."


class NotFoundError(BastionError):
    status = 404
    code = "not_found"
    message = "The resource was not found."


class ConflictError(BastionError):
    status = 409
    code = "conflict"
    message = "The resource conflicts with an existing one."


class PreconditionFailedError(BastionError):
    status = 412
    code = "precondition_failed"
    message = "The resource has changed since it was read."


class UnprocessableError(BastionError):
    status = 422
    code = "validation_failed"
    message = "The request body is invalid."


class ServiceUnavailableError(BastionError):
    status = 503
    code = "service_unavailable"
    message = "The service is temporarily unavailable; retry later."

    def __init__(self, message: str | None = None, *, retry_after: int = 2) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


# Codes and messages for statuses raised by Werkzeug or Flask itself.
_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request is malformed."),
    401: ("unauthorized", UnauthorizedError.message),
    403: ("forbidden", ForbiddenError.message),
    404: ("not_found", "The requested URL was not found."),
    405: ("method_not_allowed", "The method is not allowed for this URL."),
    406: ("not_acceptable", "The server can only produce application/json."),
    409: ("conflict", ConflictError.message),
    412: ("precondition_failed", PreconditionFailedError.message),
    413: ("payload_too_large", "The request body exceeds the size limit."),
    415: (
        "unsupported_media_type",
        "The request body must be sent as application/json.",
    ),
    422: ("validation_failed", UnprocessableError.message),
    429: ("rate_limited", "Too many requests; retry after the given delay."),
    500: ("internal_error", BastionError.message),
    503: ("service_unavailable", ServiceUnavailableError.message),
}

_error_schema = ErrorSchema()
_validation_error_schema = ValidationErrorSchema()


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    fields: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build a response in the contract's error shape."""
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "request_id": g.get("request_id"),
    }
    schema: Schema = _error_schema
    if fields is not None:
        body["fields"] = fields
        schema = _validation_error_schema
    response = jsonify(schema.dump({"error": body}))
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="bastion"'
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def http_error_response(status: int, headers: dict[str, str] | None = None) -> Response:
    """Build the error body for a bare HTTP status."""
    code, message = _HTTP_CODES.get(status, _HTTP_CODES[500])
    return error_response(status, code, message, headers=headers)


def _handle_bastion_error(exc: BastionError) -> Response:
    # A 503 is load shedding or an outage, and its cause is logged where it
    # is detected. Logging each one at ERROR would flood the log.
    if exc.status == 503:
        logger.warning("request_shed", extra={"error_code": exc.code})
    elif exc.status >= 500:
        logger.error("request_failed", extra={"error_code": exc.code})
    return error_response(
        exc.status, exc.code, exc.message, fields=exc.fields, headers=exc.headers
    )


def _handle_validation_error(exc: ValidationError) -> Response:
    messages = exc.messages
    fields = messages if isinstance(messages, dict) else {"_schema": messages}
    return error_response(
        422, "validation_failed", UnprocessableError.message, fields=fields
    )


def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    headers: dict[str, str] = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    retry_after = exc.response.headers.get("Retry-After") if exc.response else None
    if retry_after:
        headers["Retry-After"] = retry_after
    return http_error_response(status, headers)


def _handle_unexpected(exc: Exception) -> Response:
    logger.exception("unhandled_exception")
    return http_error_response(500)


def register_error_handlers(app: Flask) -> None:
    """Install the handlers that give every error the contract's shape."""
    app.register_error_handler(BastionError, _handle_bastion_error)
    app.register_error_handler(ValidationError, _handle_validation_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
