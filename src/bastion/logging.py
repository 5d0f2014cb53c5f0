"""JSON logging: one object per line, with the request id on every record.

The app and gunicorn (through ``bastion.gunicorn_hooks``) share one formatter, so
every line on stderr parses as JSON. Secrets are kept out in two ways: no
code logs a body, a header or a token, and the formatter replaces any field
whose name marks it as secret. Exception messages from the database are cut
to their primary message, because the server's DETAIL can quote a whole
row, password hash included.
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask import g, has_request_context
from pythonjsonlogger.json import JsonFormatter

# A field whose name contains one of these is replaced before it is written.
SECRET_FIELD_MARKERS = ("password", "token", "secret", "authorization", "hash")
REDACTED = "[redacted]"


class RequestContextFilter(logging.Filter):
    """Copy the request id and caller ids onto each record in a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            for name in ("request_id", "user_id", "account_id"):
                if not hasattr(record, name):
                    setattr(record, name, g.get(name))
        return True


class BastionJsonFormatter(JsonFormatter):
    """Write a record as one JSON object, with secrets and row values removed."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key in log_data:
            if any(marker in key.lower() for marker in SECRET_FIELD_MARKERS):
                log_data[key] = REDACTED
        return log_data

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # ISO 8601 in UTC with milliseconds: a second is too coarse to order
        # the lines of one request, and time.strftime has no milliseconds.
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        return moment.isoformat(timespec="milliseconds")

    def formatException(self, ei: Any) -> str:
        return format_exception_safely(ei[1])


def format_exception_safely(exc: BaseException) -> str:
    """Format a traceback like Python does, with database messages cut short."""
    return "".join(_format_chain(exc, set())).rstrip("\n")


def _format_chain(exc: BaseException, seen: set[int]) -> list[str]:
    seen.add(id(exc))
    lines: list[str] = []
    cause, context = exc.__cause__, exc.__context__
    if cause is not None and id(cause) not in seen:
        lines += _format_chain(cause, seen)
        lines.append(
            "\nThe above exception was the direct cause of the following exception:\n\n"
        )
    elif (
        context is not None and not exc.__suppress_context__ and id(context) not in seen
    ):
        lines += _format_chain(context, seen)
        lines.append(
            "\nDuring handling of the above exception, another exception occurred:\n\n"
        )
    if exc.__traceback__ is not None:
        lines.append("Traceback (most recent call last):\n")
        lines += traceback.format_tb(exc.__traceback__)
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    lines.append(f"{name}: {_safe_message(exc)}\n")
    return lines


def _safe_message(exc: BaseException) -> str:
    if isinstance(exc, psycopg.Error):
        primary = exc.diag.message_primary if exc.diag else None
        if primary:
            return f"[{exc.sqlstate}] {primary}"
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else ""
    return str(exc)


def json_formatter() -> JsonFormatter:
    return BastionJsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
        rename_fields={
            "asctime": "timestamp",
            "levelname": "level",
            "message": "event",
            "process": "pid",
            "exc_info": "exception",
        },
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
