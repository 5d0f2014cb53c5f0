"""Readiness checks of PostgreSQL and Redis, with one warning per outage."""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bastion.config import Settings
from bastion.db import Database

logger = logging.getLogger(__name__)

# Rate-limit storage URIs (Flask-Limiter's `limits` syntax) that name a
# single Redis server, and the scheme redis-py calls it by.
_REDIS_SCHEMES = {"redis": "redis", "rediss": "rediss", "redis+unix": "unix"}


def redis_url_for(settings: Settings) -> str | None:
    """Return the Redis URL readiness checks, or None when none is used.

    ``REDIS_URL`` wins; otherwise a Redis ``RATELIMIT_STORAGE_URI`` is used.
    """
    if settings.redis_url:
        return settings.redis_url
    uri = settings.ratelimit_storage_uri
    scheme = urlsplit(uri).scheme
    if scheme in _REDIS_SCHEMES:
        return _REDIS_SCHEMES[scheme] + uri[len(scheme) :]
    # NOTE: redis+sentinel and redis+cluster storage is not checked; readiness
    # then covers PostgreSQL only.
    return None


class DependencyState:
    """Remember which dependencies are down, to log each outage once.

    The state lives in one worker process, so each worker that notices an
    outage logs it once.
    """

    def __init__(self) -> None:
        self._down: set[str] = set()
        self._lock = threading.Lock()

    def mark(self, name: str, *, up: bool, error: BaseException | None = None) -> None:
        """Record a check result; log when it changes the state."""
        with self._lock:
            was_down = name in self._down
            if up:
                self._down.discard(name)
            else:
                self._down.add(name)
        if not up and not was_down:
            logger.warning(
                "dependency_down",
                extra={
                    "dependency": name,
                    "error_type": type(error).__name__ if error else None,
                },
            )
        elif up and was_down:
            logger.info("dependency_recovered", extra={"dependency": name})


class Readiness:
    """Check that this instance's dependencies respond within a short timeout."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.db = db
        self.timeout = settings.readiness_timeout
        self.state = DependencyState()
        url = redis_url_for(settings)
        self.redis: redis.Redis | None = None
        if url:
            self.redis = redis.Redis.from_url(
                url,
                socket_connect_timeout=self.timeout,
                socket_timeout=self.timeout,
                # One attempt: a retry would stretch the check past its timeout.
                retry=Retry(NoBackoff(), 0),
            )

    def failed_dependencies(self) -> list[str]:
        """Return the names of the dependencies that did not respond."""
        failed = []
        try:
            self.db.ping(timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            self.state.mark("postgresql", up=False, error=exc)
            failed.append("postgresql")
        else:
            self.state.mark("postgresql", up=True)
        if self.redis is not None:
            try:
                self.redis.ping()
            except redis.RedisError as exc:
                self.state.mark("redis", up=False, error=exc)
                failed.append("redis")
            else:
                self.state.mark("redis", up=True)
        return failed
