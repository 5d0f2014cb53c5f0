"""gunicorn's access and error logs as JSON lines shaped like the app's log.

``gunicorn.conf.py`` names ``JsonLogger`` as gunicorn's ``logger_class``.
An access line carries the fields of the app's ``request`` line (timestamp,
level, event, request_id, method, route, status, duration_ms, remote_addr)
plus the bytes sent, under the event ``access``. The app hands the matched
route pattern over in the WSGI environ, because gunicorn sees only the raw
path, which holds ids and search text.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, request
from gunicorn.glogging import Logger

from bastion.logging import json_formatter

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


# gunicorn ships no type hints, so mypy sees its Logger as Any.
class JsonLogger(Logger):  # type: ignore[misc]
    """gunicorn logger that writes JSON lines, one object per record."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(json_formatter())

    def access(
        self,
        resp: Any,
        req: Any,
        environ: dict[str, Any],
        request_time: datetime.timedelta,
    ) -> None:
        if not self.access_log_enabled:
            return
        headers = (
            resp.headers.items() if hasattr(resp.headers, "items") else resp.headers
        )
        fields = access_fields(
            resp.status, headers, environ, request_time, getattr(resp, "sent", None)
        )
        self.access_log.log(logging.INFO, "access", extra=fields)
