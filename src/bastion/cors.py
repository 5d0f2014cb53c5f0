"""Cross-origin requests: off unless ``CORS_ALLOWED_ORIGINS`` lists origins.

Only an exact origin from the list gets ``Access-Control-Allow-Origin``;
any other origin gets no CORS header, so browsers keep its pages from
reading responses. Tokens travel in the Authorization header, never in
cookies, so credentials mode is never allowed.
"""

from __future__ import annotations

from flask import Flask, Response, request

from bastion.config import Settings

ALLOWED_METHODS = "GET, POST, PATCH, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type, If-Match, Idempotency-Key, X-Request-ID"
EXPOSED_HEADERS = (
    "ETag, Location, Retry-After, X-Request-ID, "
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
# Seconds a browser may cache a preflight response.
PREFLIGHT_MAX_AGE = 600


def _is_preflight() -> bool:
    return (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


def init_cors(app: Flask, settings: Settings) -> None:
    """Respond to preflights and add CORS headers for the allowed origins."""
    allowed = frozenset(settings.cors_allowed_origins)
    if not allowed:
        return

    @app.before_request
    def answer_preflight() -> Response | None:
        if not _is_preflight() or request.headers["Origin"] not in allowed:
            return None
        response = Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        return response

    @app.after_request
    def add_cors_headers(response: Response) -> Response:
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return response
