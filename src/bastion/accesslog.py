"""The fields of gunicorn's access line, shaped like the app's request line.

``bastion.gunicorn_hooks.GunicornLogger`` writes the line under the event
``access``. It carries the fields of the app's ``request`` line (timestamp,
level, event, request_id, method, route, status, duration_ms, remote_addr)
plus the bytes sent. The app hands the matched route pattern over in the
WSGI environ, because gunicorn gets only the raw path, which contains ids
and search text.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, request

ROUTE_ENVIRON_KEY = "bastion.route"


def export_route(app: Flask) -> None:
    """Record each request's route pattern in the environ for the access log."""

    @app.after_request
    def store_route(response: Response) -> Response:
        rule = request.url_rule
        request.environ[ROUTE_ENVIRON_KEY] = rule.rule if rule else None
        return response


def _header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def access_fields(
    status: str | int,
    headers: Iterable[tuple[str, str]],
    environ: dict[str, Any],
    request_time: datetime.timedelta,
    sent: int | None,
) -> dict[str, Any]:
    """Build the fields of one access line."""
    code = int(str(status).split(None, 1)[0])
    return {
        "request_id": _header(headers, "x-request-id"),
        "method": environ.get("REQUEST_METHOD"),
        "route": environ.get(ROUTE_ENVIRON_KEY),
        "status": code,
        "duration_ms": round(request_time.total_seconds() * 1000, 2),
        # ProxyFix, when trusted proxies are configured, has already replaced
        # REMOTE_ADDR with the client address in this same environ.
        "remote_addr": environ.get("REMOTE_ADDR"),
        "bytes": sent,
    }
