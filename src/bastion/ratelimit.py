"""Rate limits per route, counted by flask-limiter.

Counts live in the storage named by ``RATELIMIT_STORAGE_URI``. With Redis,
every worker of every instance adds to the same counts. With ``memory://``
each process counts alone, so N workers multiply every limit by N.

When Redis fails, each process counts in its own memory with the same
limits, logs ``ratelimit_storage_unavailable`` once, and keeps serving.
flask-limiter pings Redis again after 1, 2, 4, ... 32 seconds. Once Redis
responds, the process logs ``ratelimit_storage_recovered`` and counts there
again.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, has_app_context, request
from flask_jwt_extended import decode_token
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException

from bastion.config import ConfigError, Settings
from bastion.schemas.common import fold_email
from bastion.services.login_throttle import client_network

logger = logging.getLogger(__name__)

# Load balancers and monitoring call the probes often from one address. The
# names stay listed even while a build lacks the route.
EXEMPT_ENDPOINTS = frozenset({"ops.healthz", "ops.readyz", "ops.prometheus_metrics"})

RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

_EXTENSION = "bastion_limiter"


def address_key() -> str:
    """Key a request by the client address (as the trusted proxy saw it).

    IPv6 clients are keyed by their /64, as the login back-off counts them,
    because one host can pick any address in its /64.
    """
    return f"address:{client_network(request.remote_addr) or 'unknown'}"


def email_key() -> str:
    """Key a request by the ``email`` of its JSON body, hashed.

    The email is normalised as login compares it (trimmed, case-folded) and
    hashed, so the storage never contains email addresses. Bodies without a
    usable email share one bucket, because such a request fails validation
    anyway.
    """
    try:
        body = request.get_json(silent=True)
    except HTTPException:
        # The body exceeds the size limit, and the view returns 413 for it.
        body = None
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip():
        return "email:none"
    digest = hashlib.sha256(fold_email(email).encode("utf-8")).hexdigest()
    return f"email:{digest[:32]}"


def user_or_address_key() -> str:
    """Key a request by its user when the access token verifies, else by address.

    Limits are checked before the route's own authentication, so the token
    is verified here (signature, expiry, issuer and audience, no database
    query). A token that fails is keyed by address and rejected later.
    """
    cached: str | None = g.get("ratelimit_key")
    if cached is not None:
        return cached
    key = address_key()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            subject = decode_token(token.strip()).get("sub")
        except Exception:  # noqa: BLE001 - any unreadable token keys by address
            subject = None
        if isinstance(subject, str) and subject:
            key = f"user:{subject}"
    g.ratelimit_key = key
    return key


def _has_search_query() -> bool:
    return bool(request.args.get("q"))


@dataclass(frozen=True)
class RouteLimit:
    """One limit on one route, found by the method and path of the API contract.

    ``setting`` names the Settings field with the limit string. The limit
    replaces the default limit unless ``keeps_default`` is set, and applies
    only to requests for which ``applies`` is true when that is given.
    """

    method: str
    path: str
    setting: str
    key: Callable[[], str]
    applies: Callable[[], bool] | None = None
    keeps_default: bool = False


ROUTE_LIMITS = (
    RouteLimit(
        "POST", "/api/v1/auth/login", "ratelimit_login_per_address", address_key
    ),
    RouteLimit("POST", "/api/v1/auth/login", "ratelimit_login_per_email", email_key),
    RouteLimit("POST", "/api/v1/auth/signup", "ratelimit_signup", address_key),
    RouteLimit(
        "POST",
        "/api/v1/auth/password-reset",
        "ratelimit_password_reset_per_address",
        address_key,
    ),
    RouteLimit(
        "POST",
        "/api/v1/auth/password-reset",
        "ratelimit_password_reset_per_email",
        email_key,
    ),
    RouteLimit(
        "POST",
        "/api/v1/auth/password-reset/confirm",
        "ratelimit_password_reset_per_address",
        address_key,
    ),
    RouteLimit("POST", "/api/v1/auth/refresh", "ratelimit_refresh", address_key),
    RouteLimit(
        "GET",
        "/api/v1/contacts",
        "ratelimit_search",
        user_or_address_key,
        applies=_has_search_query,
        keeps_default=True,
    ),
    RouteLimit(
        "POST", "/api/v1/contacts/import", "ratelimit_import", user_or_address_key
    ),
    # Authenticated routes that run bcrypt: without a limit of their own,
    # one user could keep every hashing slot of a worker busy.
    RouteLimit(
        "POST", "/api/v1/me/password", "ratelimit_password_hashing", user_or_address_key
    ),
    RouteLimit(
        "POST", "/api/v1/users", "ratelimit_password_hashing", user_or_address_key
    ),
)


class StorageHealth:
    """Whether this process last found the shared storage reachable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._healthy = True

    def change(self, *, healthy: bool) -> bool:
        """Record the state; return whether it differs from the last one."""
        with self._lock:
            changed = self._healthy != healthy
            self._healthy = healthy
            return changed


class _LimiterLogFilter(logging.Filter):
    """Turn flask-limiter's storage messages into one event per state change.

    flask-limiter logs its fall-back and recovery in prose, and threads of
    one process can each log the fall-back; only the first passes here. Its
    per-breach message, which carries client addresses and email hashes, is
    dropped because the request log line already records every 429.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("ratelimit ") and " exceeded at endpoint" in message:
            return False
        if message.startswith("Rate limit storage unreachable"):
            return self._rewrite(record, healthy=False)
        if message == "Rate limit storage recovered":
            return self._rewrite(record, healthy=True)
        return True

    def _rewrite(self, record: logging.LogRecord, *, healthy: bool) -> bool:
        if not has_app_context() or _EXTENSION not in current_app.extensions:
            return True
        limiter: BastionLimiter = current_app.extensions[_EXTENSION]
        if not limiter.health.change(healthy=healthy):
            return False
        record.msg = (
            "ratelimit_storage_recovered"
            if healthy
            else "ratelimit_storage_unavailable"
        )
        record.args = ()
        setattr(record, "storage", limiter.storage_scheme)  # noqa: B010 - mypy
        return True


_log_filter = _LimiterLogFilter()


class _FallbackLimiter(Limiter):
    """flask-limiter with the fall-back made safe for threaded workers.

    When Redis fails, the first thread to notice switches the process to
    memory storage. Any other thread whose Redis call was already under way
    gets the storage error from flask-limiter, which would be a 500. Such a
    request is checked again here, against memory storage.
    """

    def _check_request_limit(
        self, callable_name: str | None = None, in_middleware: bool = True
    ) -> None:
        try:
            super()._check_request_limit(callable_name, in_middleware)
        except RateLimitExceeded:
            raise
        except Exception:
            if not (self._in_memory_fallback_enabled and self._storage_dead):
                raise
            self.context.seen_limits.clear()
            super()._check_request_limit(callable_name, in_middleware)


class BastionLimiter:
    """The flask-limiter extension of one app and what Bastion keeps beside it."""

    def __init__(self, limiter: Limiter, settings: Settings) -> None:
        self.limiter = limiter
        self.storage_scheme = settings.ratelimit_storage_uri.split("://", 1)[0]
        self.health = StorageHealth()


def current_limiter() -> BastionLimiter:
    """Return the rate limiter of the current application."""
    bastion_limiter: BastionLimiter = current_app.extensions[_EXTENSION]
    return bastion_limiter


def _storage_options(settings: Settings) -> dict[str, Any]:
    if not settings.ratelimit_storage_is_shared:
        return {}
    # redis-py 7 retries a failed command three times with back-off of up to
    # seconds by default. One immediate retry replaces a stale pooled
    # connection, and a dead server is noticed within the timeout.
    return {
        "socket_connect_timeout": settings.ratelimit_storage_timeout,
        "socket_timeout": settings.ratelimit_storage_timeout,
        "retry": Retry(NoBackoff(), 1),
    }


def is_rate_limited(endpoint: str) -> bool:
    """Tell whether requests to ``endpoint`` count against a rate limit.

    The OpenAPI document uses this too, to list 429 where it can happen.
    """
    return endpoint not in EXEMPT_ENDPOINTS


def _is_exempt() -> bool:
    # A CORS preflight does no work and must not spend the route's limit.
    return request.method == "OPTIONS" or not is_rate_limited(request.endpoint or "")


def init_rate_limits(app: Flask, settings: Settings) -> BastionLimiter:
    """Attach flask-limiter with the default limit; see apply_route_limits."""
    limiter = _FallbackLimiter(
        key_func=user_or_address_key,
        default_limits=[settings.ratelimit_default],
        storage_uri=settings.ratelimit_storage_uri,
        storage_options=_storage_options(settings),
        strategy=settings.ratelimit_strategy,
        in_memory_fallback_enabled=settings.ratelimit_storage_is_shared,
        key_prefix="bastion",
        headers_enabled=False,
    )
    limiter.init_app(app)
    limiter.request_filter(_is_exempt)
    bastion_limiter = BastionLimiter(limiter, settings)
    app.extensions[_EXTENSION] = bastion_limiter
    app.after_request(_add_rate_limit_headers)
    limiter_logger = logging.getLogger("flask-limiter")
    if _log_filter not in limiter_logger.filters:
        limiter_logger.addFilter(_log_filter)
    return bastion_limiter


def _negate(predicate: Callable[[], bool]) -> Callable[[], bool]:
    return lambda: not predicate()


def apply_route_limits(app: Flask, bastion_limiter: BastionLimiter) -> None:
    """Wrap each view that ROUTE_LIMITS names with its limits.

    Routes are found by method and path after every blueprint is
    registered, so a limit applies as soon as its route exists.
    """
    settings: Settings = app.extensions["bastion"].settings
    endpoints: dict[tuple[str, str], str] = {}
    for rule in app.url_map.iter_rules():
        for method in rule.methods or ():
            endpoints[(method, rule.rule)] = rule.endpoint
    for spec in ROUTE_LIMITS:
        endpoint = endpoints.get((spec.method, spec.path))
        if endpoint is None:
            continue
        decorate = bastion_limiter.limiter.limit(
            getattr(settings, spec.setting),
            key_func=spec.key,
            methods=[spec.method],
            exempt_when=_negate(spec.applies) if spec.applies else None,
            override_defaults=not spec.keeps_default,
        )
        wrapped: Any = decorate(app.view_functions[endpoint])
        app.view_functions[endpoint] = wrapped


def _add_rate_limit_headers(response: Response) -> Response:
    """Describe the request's limit in RateLimit-* headers, and Retry-After on 429.

    The headers follow the IETF httpapi draft's RateLimit-Limit, -Remaining
    and -Reset, with Reset in seconds from now.
    """
    current: RequestLimit | None = current_limiter().limiter.current_limit
    if current is None:
        return response
    try:
        reset_at, remaining = current.reset_at, current.remaining
    except Exception:  # noqa: BLE001 - the storage failed after the check passed
        return response
    reset = max(1, math.ceil(reset_at - time.time()))
    response.headers["RateLimit-Limit"] = str(current.limit.amount)
    response.headers["RateLimit-Remaining"] = str(max(0, remaining))
    response.headers["RateLimit-Reset"] = str(reset)
    if response.status_code == 429:
        response.headers["Retry-After"] = str(reset)
    return response


def check_worker_storage(settings: Settings, workers: int) -> None:
    """Warn, or in production raise ConfigError, when memory storage serves workers.

    Each worker process would count on its own, multiplying every limit.
    """
    if settings.ratelimit_storage_is_shared or workers <= 1:
        return
    if settings.is_production:
        raise ConfigError(
            f"RATELIMIT_STORAGE_URI: memory storage with {workers} workers "
            f"multiplies every rate limit by {workers}; set a redis:// URI "
            "or run one worker"
        )
    logger.warning(
        "ratelimit_storage_per_process",
        extra={"workers": workers, "storage": "memory"},
    )
