"""gunicorn server hooks and logger class, imported by gunicorn.conf.py.

They keep the metrics directory of prometheus-client's multiprocess mode
consistent: emptied when the server starts, a dead worker's live gauges
dropped, the files removed at exit. gunicorn.conf.py sets
``PROMETHEUS_MULTIPROC_DIR`` (a new ``bastion-metrics-*`` temporary
directory when metrics are on and it is unset) before importing this
module, because prometheus-client reads it once, at its first import.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

from bastion.accesslog import access_fields
from bastion.logging import json_formatter

METRICS_DIR_PREFIX = "bastion-metrics-"


def _metrics_dir() -> Path | None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(path) if path else None


def _remove_sample_files(path: Path) -> None:
    for sample_file in path.glob("*.db"):
        sample_file.unlink(missing_ok=True)


def on_starting(server: Any) -> None:
    """Empty the metrics directory, since samples of old workers would count."""
    path = _metrics_dir()
    if path is None:
        return
    path.mkdir(parents=True, exist_ok=True)
    _remove_sample_files(path)
    server.log.info("metrics_multiprocess_dir", extra={"path": str(path)})


def child_exit(server: Any, worker: Any) -> None:
    """Drop the live gauges (pool size, in use) of a worker that exited."""
    if _metrics_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """Remove the sample files, and the directory when this server made it."""
    path = _metrics_dir()
    if path is None or not path.exists():
        return
    _remove_sample_files(path)
    if path.name.startswith(METRICS_DIR_PREFIX):
        path.rmdir()


class GunicornLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger with its error and access lines written as JSON."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(json_formatter())
                # gunicorn sends "-" access logs to stdout; every other JSON
                # line, the app's included, goes to stderr.
                if isinstance(handler, logging.StreamHandler) and not isinstance(
                    handler, logging.FileHandler
                ):
                    handler.setStream(sys.stderr)

    def access(
        self,
        resp: Any,
        req: Any,
        environ: dict[str, Any],
        request_time: datetime.timedelta,
    ) -> None:
        """Log one access line with the fields of the app's request line."""
        if not self.access_log_enabled:
            return
        headers = (
            resp.headers.items() if hasattr(resp.headers, "items") else resp.headers
        )
        fields = access_fields(
            resp.status, headers, environ, request_time, getattr(resp, "sent", None)
        )
        self.access_log.log(logging.INFO, "access", extra=fields)
