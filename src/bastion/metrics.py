"""Prometheus metrics, and the /metrics view's network allowlist.

Under gunicorn every worker is a process of its own, so prometheus-client
runs in its multiprocess mode: each worker writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` and a scrape, served by whichever worker gets
it, adds them up. gunicorn.conf.py sets that directory before anything
imports this module, because prometheus-client chooses the mode at import.
Without the variable (tests, ``flask run``) the samples stay in-process.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Seconds; from a cache-hit read to a request stuck behind the pool timeout.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "bastion_http_requests_total",
    "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "bastion_http_request_duration_seconds",
    "Time from the start of a request to its response, in seconds.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
# "livesum" adds up the live workers' values and drops a dead worker's.
DB_POOL_CONNECTIONS = Gauge(
    "bastion_db_pool_connections",
    "Open connections in the pools of the live workers.",
    multiprocess_mode="livesum",
)
DB_POOL_IN_USE = Gauge(
    "bastion_db_pool_connections_in_use",
    "Pooled connections checked out by a request.",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "bastion_db_pool_requests_waiting",
    "Requests waiting for a pooled connection.",
    multiprocess_mode="livesum",
)
DB_POOL_WAIT = Histogram(
    "bastion_db_pool_wait_seconds",
    "Time a transaction waited for a pooled connection, in seconds.",
    buckets=_LATENCY_BUCKETS,
)
DB_ERRORS = Counter(
    "bastion_db_errors_total",
    "Database errors by SQLSTATE class; 'none' when the driver or pool "
    "failed without a server SQLSTATE (connection refused, pool timeout).",
    ["sqlstate_class"],
)
RATE_LIMIT_REJECTIONS = Counter(
    "bastion_rate_limit_rejections_total",
    "Requests answered 429, by route template.",
    ["route"],
)
LOGIN_FAILURES = Counter(
    "bastion_login_failures_total",
    "Failed logins by reason.",
    ["reason"],
)


def observe_pool(stats: Mapping[str, int]) -> None:
    """Set the pool gauges from ``ConnectionPool.get_stats()``."""
    size = stats.get("pool_size", 0)
    DB_POOL_CONNECTIONS.set(size)
    DB_POOL_IN_USE.set(size - stats.get("pool_available", 0))
    DB_POOL_WAITING.set(stats.get("requests_waiting", 0))


def sqlstate_class(sqlstate: str | None) -> str:
    """Return the two-character class of a SQLSTATE, or "none"."""
    return sqlstate[:2] if sqlstate else "none"


def is_allowed(remote_addr: str | None, networks: Iterable[Network]) -> bool:
    """Tell whether ``remote_addr`` lies in one of ``networks``."""
    if not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in network for network in networks)


def render() -> tuple[bytes, str]:
    """Return the exposition text of every worker's metrics and its type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
