"""Settings read once from the environment at start-up.

Every setting comes from an environment variable ``NAME``. When ``NAME_FILE``
is set instead, the value is read from that file (trailing whitespace
stripped), which is how platforms mount secrets. No ``.env`` file is read.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from limits import parse_many

T = TypeVar("T")

ENVIRONMENTS = ("production", "development", "test")
MAIL_BACKENDS = ("smtp", "file")
MIN_SECRET_LENGTH = 32
PLACEHOLDER_SECRETS = {"changeme", "secret", "change-me", "dev", "development"}
# Rate-limit storages this deployment supports: memory for one process, Redis
# (plain, TLS, socket, Sentinel or Cluster) to share counts between processes.
RATELIMIT_STORAGE_SCHEMES = (
    "memory",
    "redis",
    "rediss",
    "redis+unix",
    "redis+sentinel",
    "redis+cluster",
)
RATELIMIT_STRATEGIES = ("moving-window", "sliding-window-counter", "fixed-window")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


class ConfigError(Exception):
    """A setting is missing or invalid; the message lists every problem."""


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected one of true/false, yes/no, on/off, 1/0")


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def _parse_non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _parse_positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


# psycopg's own default; typed so that "off" (None) fits the same setting.
_DEFAULT_PREPARE_THRESHOLD: int | None = 5


def _parse_prepare_threshold(raw: str) -> int | None:
    if raw.strip().lower() == "off":
        return None
    return _parse_non_negative_int(raw)


def _parse_database_url(raw: str) -> str:
    if not raw.startswith(("postgresql://", "postgres://")):
        raise ValueError("expected a postgresql:// URL")
    return raw


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_networks(
    raw: str,
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    # strict=False accepts "10.0.0.1/8" as 10.0.0.0/8; a bare address is a /32
    # or /128 network.
    return tuple(ipaddress.ip_network(item, strict=False) for item in _parse_list(raw))


def _parse_rate_limit(raw: str) -> str:
    """Check a flask-limiter limit string such as ``5 per minute; 30 per hour``."""
    parse_many(raw)
    return raw


def _parse_storage_uri(raw: str) -> str:
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in RATELIMIT_STORAGE_SCHEMES:
        raise ValueError(
            "expected a URI starting with one of "
            + ", ".join(f"{name}://" for name in RATELIMIT_STORAGE_SCHEMES)
        )
    return raw


def _parse_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return raw

    return parse


def _parse_origins(raw: str) -> tuple[str, ...]:
    origins = _parse_list(raw)
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(
                f"{origin!r} is not an origin; list each as scheme://host[:port] "
                "with no path and no wildcard"
            )
    return origins


class _Reader:
    """Collect settings and every error found while parsing them."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.errors: list[str] = []
        # Names that already have an error, so "missing" is not added twice.
        self.failed: set[str] = set()

    def raw(self, name: str) -> str | None:
        file_name = self.environ.get(f"{name}_FILE")
        if file_name and self.environ.get(name):
            self.errors.append(f"{name}: set either {name} or {name}_FILE, not both")
            self.failed.add(name)
            return None
        if file_name:
            try:
                with open(file_name, encoding="utf-8") as handle:
                    return handle.read().rstrip()
            except OSError as exc:
                self.errors.append(
                    f"{name}_FILE: cannot read {file_name!r} ({exc.strerror})"
                )
                self.failed.add(name)
                return None
        value = self.environ.get(name)
        if value is None or value == "":
            return None
        return value

    def get(
        self,
        name: str,
        default: T,
        parse: Callable[[str], T],
    ) -> T:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            self.errors.append(f"{name}: invalid value ({exc})")
            self.failed.add(name)
            return default

    def required(self, name: str) -> str:
        raw = self.raw(name)
        if raw is None:
            if name not in self.failed:
                self.errors.append(f"{name}: missing (set {name} or {name}_FILE)")
            return ""
        return raw

    def secret(self, name: str) -> str:
        value = self.required(name)
        if value and (
            len(value) < MIN_SECRET_LENGTH or value.lower() in PLACEHOLDER_SECRETS
        ):
            self.errors.append(
                f"{name}: must be a random value of at least "
                f"{MIN_SECRET_LENGTH} characters"
            )
        return value


@dataclass(frozen=True)
class Settings:
    """Typed settings for one process."""

    env: str
    database_url: str
    migration_database_url: str
    secret_key: str
    jwt_key_encryption_key: str
    jwt_issuer: str = "bastion"
    jwt_audience: str = "bastion-api"
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 24 * 3600
    signing_key_cache_seconds: int = 30
    # Access tokens whose verified claims each process keeps (0: none).
    verified_token_cache_size: int = 2048
    db_pool_min_size: int = 1
    db_pool_max_size: int = 4
    db_pool_timeout: float = 5.0
    db_connect_timeout: int = 5
    # Set per session by the pool and on the application role by
    # ``flask db create-roles``, as is db_statement_timeout_ms.
    db_lock_timeout_ms: int = 3000
    db_idle_in_transaction_ms: int = 60_000
    # Executions of one statement before psycopg prepares it on the server;
    # None never prepares, which a transaction-mode pgbouncer older than
    # 1.21 needs because it cannot follow prepared statements.
    db_prepare_threshold: int | None = 5
    max_content_length: int = 1024 * 1024
    signup_enabled: bool = True
    bcrypt_rounds: int = 12
    password_hash_concurrency: int = 2
    log_level: str = "INFO"
    readyz_check_migrations: bool = True
    # Proxies in front that set X-Forwarded-* and X-Request-ID; 0 trusts none.
    trusted_proxy_count: int = 0
    # Networks allowed to read /metrics; empty turns the endpoint off (404).
    metrics_allowed_networks: tuple[
        ipaddress.IPv4Network | ipaddress.IPv6Network, ...
    ] = ()
    slow_query_threshold_ms: int = 500
    db_statement_timeout_ms: int = 10_000
    db_reconnect_timeout: float = 10.0
    ratelimit_storage_uri: str = "memory://"
    redis_url: str | None = None
    readiness_timeout: float = 1.0
    password_reset_ttl: int = 1800
    password_reset_url: str | None = None
    mail_backend: str = "smtp"
    mail_outbox_dir: str = "var/outbox"
    mail_from: str = "Bastion <bastion@localhost>"
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_timeout: float = 10.0
    cors_allowed_origins: tuple[str, ...] = ()
    ratelimit_storage_timeout: float = 0.5
    ratelimit_strategy: str = "moving-window"
    ratelimit_default: str = "300 per minute"
    ratelimit_login_per_address: str = "30 per minute; 300 per hour"
    ratelimit_login_per_email: str = "5 per minute; 30 per hour"
    ratelimit_signup: str = "5 per hour; 20 per day"
    # The two below are limit strings, not passwords.
    ratelimit_password_reset_per_address: str = "10 per hour"  # noqa: S105
    ratelimit_password_reset_per_email: str = "3 per hour"  # noqa: S105
    ratelimit_refresh: str = "60 per minute"
    ratelimit_search: str = "60 per minute"
    ratelimit_import: str = "20 per hour"
    ratelimit_password_hashing: str = "10 per minute; 60 per hour"  # noqa: S105

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def ratelimit_storage_is_shared(self) -> bool:
        """Whether every process counts against the same rate-limit storage."""
        return not self.ratelimit_storage_uri.startswith("memory://")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``).

        Raises ConfigError naming every missing or invalid setting.
        """
        reader = _Reader(os.environ if environ is None else environ)
        env = reader.get("BASTION_ENV", "production", str)
        if env not in ENVIRONMENTS:
            reader.errors.append(
                f"BASTION_ENV: invalid value {env!r} "
                f"(expected one of {', '.join(ENVIRONMENTS)})"
            )
        database_url = reader.get("DATABASE_URL", "", _parse_database_url)
        if not database_url and "DATABASE_URL" not in reader.failed:
            reader.required("DATABASE_URL")
        settings = cls(
            env=env,
            database_url=database_url,
            migration_database_url=reader.get(
                "MIGRATION_DATABASE_URL", database_url, _parse_database_url
            ),
            secret_key=reader.secret("SECRET_KEY"),
            jwt_key_encryption_key=reader.secret("JWT_KEY_ENCRYPTION_KEY"),
            jwt_issuer=reader.get("JWT_ISSUER", "bastion", str),
            jwt_audience=reader.get("JWT_AUDIENCE", "bastion-api", str),
            access_token_ttl=reader.get(
                "ACCESS_TOKEN_TTL_SECONDS", 900, _parse_positive_int
            ),
            refresh_token_ttl=reader.get(
                "REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600, _parse_positive_int
            ),
            verified_token_cache_size=reader.get(
                "VERIFIED_TOKEN_CACHE_SIZE", 2048, _parse_non_negative_int
            ),
            signing_key_cache_seconds=reader.get(
                "SIGNING_KEY_CACHE_SECONDS", 30, _parse_non_negative_int
            ),
            db_pool_min_size=reader.get("DB_POOL_MIN_SIZE", 1, _parse_positive_int),
            db_pool_max_size=reader.get("DB_POOL_MAX_SIZE", 4, _parse_positive_int),
            db_pool_timeout=reader.get("DB_POOL_TIMEOUT", 5.0, _parse_positive_float),
            db_connect_timeout=reader.get("DB_CONNECT_TIMEOUT", 5, _parse_positive_int),
            db_lock_timeout_ms=reader.get(
                "DB_LOCK_TIMEOUT_MS", 3000, _parse_non_negative_int
            ),
            db_idle_in_transaction_ms=reader.get(
                "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60_000, _parse_non_negative_int
            ),
            db_prepare_threshold=reader.get(
                "DB_PREPARE_THRESHOLD",
                _DEFAULT_PREPARE_THRESHOLD,
                _parse_prepare_threshold,
            ),
            max_content_length=reader.get(
                "MAX_CONTENT_LENGTH", 1024 * 1024, _parse_positive_int
            ),
            signup_enabled=reader.get("SIGNUP_ENABLED", True, _parse_bool),
            bcrypt_rounds=reader.get("BCRYPT_ROUNDS", 12, _parse_positive_int),
            password_hash_concurrency=reader.get(
                "PASSWORD_HASH_CONCURRENCY", 2, _parse_positive_int
            ),
            log_level=reader.get("LOG_LEVEL", "INFO", str.upper),
            readyz_check_migrations=reader.get(
                "READYZ_CHECK_MIGRATIONS", True, _parse_bool
            ),
            trusted_proxy_count=reader.get(
                "TRUSTED_PROXY_COUNT", 0, _parse_non_negative_int
            ),
            metrics_allowed_networks=reader.get(
                "METRICS_ALLOWED_NETWORKS", (), _parse_networks
            ),
            slow_query_threshold_ms=reader.get(
                "SLOW_QUERY_THRESHOLD_MS", 500, _parse_non_negative_int
            ),
            db_statement_timeout_ms=reader.get(
                "DB_STATEMENT_TIMEOUT_MS", 10_000, _parse_non_negative_int
            ),
            db_reconnect_timeout=reader.get(
                "DB_RECONNECT_TIMEOUT", 10.0, _parse_positive_float
            ),
            redis_url=reader.get("REDIS_URL", None, str),
            readiness_timeout=reader.get(
                "READINESS_TIMEOUT", 1.0, _parse_positive_float
            ),
            password_reset_ttl=reader.get(
                "PASSWORD_RESET_TTL_SECONDS", 1800, _parse_positive_int
            ),
            password_reset_url=reader.get("PASSWORD_RESET_URL", None, str),
            # Production sends real mail by default; elsewhere mail lands in
            # files that a developer or a test can read.
            mail_backend=reader.get(
                "MAIL_BACKEND", "smtp" if env == "production" else "file", str.lower
            ),
            mail_outbox_dir=reader.get("MAIL_OUTBOX_DIR", "var/outbox", str),
            mail_from=reader.get("MAIL_FROM", "Bastion <bastion@localhost>", str),
            smtp_host=reader.get("SMTP_HOST", "localhost", str),
            smtp_port=reader.get("SMTP_PORT", 587, _parse_positive_int),
            smtp_starttls=reader.get("SMTP_STARTTLS", True, _parse_bool),
            smtp_username=reader.get("SMTP_USERNAME", None, str),
            smtp_password=reader.get("SMTP_PASSWORD", None, str),
            smtp_timeout=reader.get("SMTP_TIMEOUT", 10.0, _parse_positive_float),
            cors_allowed_origins=reader.get("CORS_ALLOWED_ORIGINS", (), _parse_origins),
            ratelimit_storage_uri=reader.get(
                "RATELIMIT_STORAGE_URI", "memory://", _parse_storage_uri
            ),
            ratelimit_storage_timeout=reader.get(
                "RATELIMIT_STORAGE_TIMEOUT", 0.5, _parse_positive_float
            ),
            ratelimit_strategy=reader.get(
                "RATELIMIT_STRATEGY",
                "moving-window",
                _parse_choice(RATELIMIT_STRATEGIES),
            ),
            ratelimit_default=reader.get(
                "RATELIMIT_DEFAULT", "300 per minute", _parse_rate_limit
            ),
            ratelimit_login_per_address=reader.get(
                "RATELIMIT_LOGIN_PER_ADDRESS",
                "30 per minute; 300 per hour",
                _parse_rate_limit,
            ),
            ratelimit_login_per_email=reader.get(
                "RATELIMIT_LOGIN_PER_EMAIL",
                "5 per minute; 30 per hour",
                _parse_rate_limit,
            ),
            ratelimit_signup=reader.get(
                "RATELIMIT_SIGNUP", "5 per hour; 20 per day", _parse_rate_limit
            ),
            ratelimit_password_reset_per_address=reader.get(
                "RATELIMIT_PASSWORD_RESET_PER_ADDRESS", "10 per hour", _parse_rate_limit
            ),
            ratelimit_password_reset_per_email=reader.get(
                "RATELIMIT_PASSWORD_RESET_PER_EMAIL", "3 per hour", _parse_rate_limit
            ),
            ratelimit_refresh=reader.get(
                "RATELIMIT_REFRESH", "60 per minute", _parse_rate_limit
            ),
            ratelimit_search=reader.get(
                "RATELIMIT_SEARCH", "60 per minute", _parse_rate_limit
            ),
            ratelimit_import=reader.get(
                "RATELIMIT_IMPORT", "20 per hour", _parse_rate_limit
            ),
            ratelimit_password_hashing=reader.get(
                "RATELIMIT_PASSWORD_HASHING",
                "10 per minute; 60 per hour",
                _parse_rate_limit,
            ),
        )
        if settings.db_pool_min_size > settings.db_pool_max_size:
            reader.errors.append("DB_POOL_MIN_SIZE: must not exceed DB_POOL_MAX_SIZE")
        if not 4 <= settings.bcrypt_rounds <= 31:
            reader.errors.append("BCRYPT_ROUNDS: must be between 4 and 31")
        if settings.is_production and settings.bcrypt_rounds < 12:
            reader.errors.append("BCRYPT_ROUNDS: must be at least 12 in production")
        _check_mail(settings, reader)
        if reader.errors:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(reader.errors))
        return settings


def _check_mail(settings: Settings, reader: _Reader) -> None:
    if settings.mail_backend not in MAIL_BACKENDS:
        reader.errors.append(
            f"MAIL_BACKEND: invalid value {settings.mail_backend!r} "
            f"(expected one of {', '.join(MAIL_BACKENDS)})"
        )
    if bool(settings.smtp_username) != bool(settings.smtp_password):
        reader.errors.append("SMTP_USERNAME, SMTP_PASSWORD: set both or neither")
    # Credentials never travel over a connection that STARTTLS did not
    # encrypt.
    if settings.smtp_password and not settings.smtp_starttls:
        reader.errors.append("SMTP_PASSWORD: requires SMTP_STARTTLS=true")
    # The reset link carries a secret, so production only sends https links.
    schemes = ("https://",) if settings.is_production else ("https://", "http://")
    url = settings.password_reset_url
    if url is not None and not url.startswith(schemes):
        reader.errors.append(
            f"PASSWORD_RESET_URL: must start with {' or '.join(schemes)}"
        )
