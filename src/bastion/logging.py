"""JSON logging: one object per line, with the request id on every record."""

from __future__ import annotations

import logging
import sys

from flask import g, has_request_context
from pythonjsonlogger.json import JsonFormatter


class RequestContextFilter(logging.Filter):
    """Copy the request id and caller ids onto each record in a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            for name in ("request_id", "user_id", "account_id"):
                if not hasattr(record, name):
                    setattr(record, name, g.get(name))
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={
            "asctime": "timestamp",
            "levelname": "level",
            "message": "event",
        },
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure_logging(level: str) -> None:
    """Send every log record to stderr as one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_bastion", False):
            root.removeHandler(existing)
    handler._bastion = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # psycopg_pool logs connection strings' hosts at INFO; keep warnings.
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)
