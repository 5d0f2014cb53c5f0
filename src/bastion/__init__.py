"""Bastion: a multi-tenant contacts API on PostgreSQL, secure by default."""

from __future__ import annotations

import logging
import os
import threading
import uuid

from flask import Flask, Response, g, request

from bastion.config import Settings
from bastion.db import Database
from bastion.jsonio import StrictJSONProvider

logger = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def create_app(
    settings: Settings | None = None, *, open_pool: bool | None = None
) -> Flask:
    """Build the application from ``settings`` (default: the environment).

    The pool opens here, and start-up fails when no connection can be made.
    Under the ``flask`` command (or with ``open_pool=False``) the pool opens
    on first use instead, because admin commands such as ``flask db
    create-roles`` run before the application role exists.
    """
    from bastion.logging import configure_logging

    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)

    expected_migrations = _expected_migrations(settings)

    # No static folder: Flask would add a /static/<path> route the API never
    # uses; the /docs assets are served from an allowlist instead.
    app = Flask(__name__, static_folder=None)
    app.json_provider_class = StrictJSONProvider
    app.json = StrictJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    db = Database(settings)
    if open_pool is None:
        open_pool = os.environ.get("FLASK_RUN_FROM_CLI") != "true"
    if open_pool:
        db.open()
    _init_services(app, settings, db, expected_migrations, serving=open_pool)
    _init_request_hooks(app, settings)

    from bastion.accesslog import export_route
    from bastion.api import api
    from bastion.api.docs import bp as docs_bp
    from bastion.api.ops import bp as ops_bp
    from bastion.cli import register_commands
    from bastion.cors import init_cors
    from bastion.errors import register_error_handlers
    from bastion.proxy import install_proxy_fix
    from bastion.ratelimit import apply_route_limits, init_rate_limits

    init_cors(app, settings)
    limiter = init_rate_limits(app, settings)
    register_error_handlers(app)
    app.register_blueprint(api)
    app.register_blueprint(ops_bp)
    app.register_blueprint(docs_bp)
    apply_route_limits(app, limiter)
    export_route(app)
    install_proxy_fix(app, settings)
    register_commands(app)
    return app


def _init_services(
    app: Flask,
    settings: Settings,
    db: Database,
    expected_migrations: list[str],
    *,
    serving: bool,
) -> None:
    from bastion.auth import init_jwt, issue_access_token
    from bastion.mail import build_mailer
    from bastion.pagination import CursorCodec
    from bastion.passwords import PasswordHasher
    from bastion.services import Services
    from bastion.services.accounts import AccountService
    from bastion.services.audit import AuditService
    from bastion.services.contacts import ContactService
    from bastion.services.idempotency import IdempotencyService
    from bastion.services.keys import KeyRing, KeyService
    from bastion.services.passwords import PasswordService
    from bastion.services.schema import SchemaService
    from bastion.services.sessions import SessionService
    from bastion.services.users import UserService

    hasher = PasswordHasher(
        settings.bcrypt_rounds, max_concurrent=settings.password_hash_concurrency
    )
    if serving:
        # The first login for an unknown email would otherwise pay for
        # building the dummy hash, which makes it measurably slower than the
        # rest. Admin commands skip it: a bcrypt thread still running when a
        # short command exits aborts the interpreter ("exception not
        # rethrown", exit status 134).
        threading.Thread(
            target=hasher.warm_up, name="hash-warm-up", daemon=True
        ).start()
    cursors = CursorCodec(settings.secret_key)
    keys = KeyService(db, key_encryption_key=settings.jwt_key_encryption_key)
    key_ring = KeyRing(keys, refresh_seconds=settings.signing_key_cache_seconds)
    init_jwt(app, settings, key_ring)

    def issue(user_id: str, session_id: str) -> str:
        return issue_access_token(key_ring, user_id=user_id, session_id=session_id)

    app.extensions["bastion"] = Services(
        settings=settings,
        db=db,
        keys=keys,
        key_ring=key_ring,
        accounts=AccountService(db, hasher),
        users=UserService(db, hasher, cursors),
        contacts=ContactService(db, cursors),
        sessions=SessionService(
            db,
            hasher,
            issue_access_token=issue,
            access_token_ttl=settings.access_token_ttl,
            refresh_token_ttl=settings.refresh_token_ttl,
        ),
        passwords=PasswordService(db, hasher, settings),
        audit=AuditService(db, cursors),
        schema=SchemaService(db, expected_migrations),
        mailer=build_mailer(settings),
        idempotency=IdempotencyService(db),
    )


def _expected_migrations(settings: Settings) -> list[str]:
    from bastion.config import ConfigError
    from bastion.migrate import MIGRATIONS_DIR, migration_ids

    if not settings.readyz_check_migrations:
        return []
    ids = migration_ids()
    if not ids:
        # Fail loudly: without the files /readyz could not tell a current
        # schema from an empty database.
        raise ConfigError(
            f"READYZ_CHECK_MIGRATIONS: no migrations found in {MIGRATIONS_DIR}; "
            "deploy migrations/ with the code or set READYZ_CHECK_MIGRATIONS=false"
        )
    return ids


def _init_request_hooks(app: Flask, settings: Settings) -> None:
    from bastion import observability

    # Only a proxy we trust may name the request; see begin_request.
    trust_request_id = settings.trusted_proxy_count > 0

    @app.before_request
    def start_request() -> None:
        observability.begin_request(trust_request_id=trust_request_id)

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", "no-store")
        if response.status_code == 204:
            response.headers.pop("Content-Type", None)
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = (
                "max-age=63072000; includeSubDomains"
            )
        observability.record_request(response)
        return response

    @app.teardown_request
    def clear_request(_exc: BaseException | None) -> None:
        observability.end_request()
