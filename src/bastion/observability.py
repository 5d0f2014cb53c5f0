"""Per-request observability: the request id, the request log line, metrics.

Every request ends in one ``request`` log line with its route template,
status, timings and caller ids, and in the request counter and latency
histogram of ``bastion.metrics``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Response, g, request

from bastion import metrics
from bastion.db import QueryStats, start_query_stats, stop_query_stats

logger = logging.getLogger(__name__)

# Characters that cannot break a log line or a header, in a length that fits
# a UUID or a proxy's trace id.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{8,128}")
# Metric labels take only these methods, so odd methods sent by clients
# cannot create new time series without bound.
_METHOD_LABELS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def begin_request(*, trust_request_id: bool) -> None:
    """Start the clock and choose the request id.

    An incoming ``X-Request-ID`` is kept only when a trusted proxy is in
    front and the value is well formed. Without that rule a client could
    pick ids that collide with other requests in the logs.
    """
    g.started_at = time.perf_counter()
    g.query_stats = start_query_stats()
    incoming = request.headers.get("X-Request-ID", "")
    if trust_request_id and REQUEST_ID_PATTERN.fullmatch(incoming):
        g.request_id = incoming
    else:
        g.request_id = uuid.uuid4().hex


def end_request() -> None:
    stop_query_stats()


def record_request(response: Response) -> None:
    """Log the request line and count it in the metrics."""
    started = g.get("started_at")
    seconds = time.perf_counter() - started if started is not None else 0.0
    route = request.url_rule.rule if request.url_rule else None
    status = response.status_code
    stats: QueryStats = g.get("query_stats") or QueryStats()

    method = request.method if request.method in _METHOD_LABELS else "other"
    route_label = route or "unmatched"
    metrics.HTTP_REQUESTS.labels(method, route_label, str(status)).inc()
    metrics.HTTP_REQUEST_DURATION.labels(method, route_label, str(status)).observe(
        seconds
    )
    if status == 429:
        metrics.RATE_LIMIT_REJECTIONS.labels(route_label).inc()

    logger.log(
        logging.WARNING if status >= 500 else logging.INFO,
        "request",
        extra={
            "method": request.method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "db_ms": round(stats.db_ms, 2),
            "pool_wait_ms": round(stats.pool_wait_ms, 2),
            "db_statements": stats.statements,
            "remote_addr": request.remote_addr,
        },
    )
