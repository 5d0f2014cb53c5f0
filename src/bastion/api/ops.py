"""Health checks and the public signing keys, outside ``/api/v1``."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from bastion.errors import ServiceUnavailableError
from bastion.services import registry

logger = logging.getLogger(__name__)

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Report that the process is running; checks no dependency."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Report whether PostgreSQL runs a query and no migration is pending."""
    services = registry()
    try:
        services.db.ping(timeout=2.0)
    except Exception as exc:
        logger.warning(
            "readiness_failed",
            extra={"dependency": "postgresql", "error_type": type(exc).__name__},
        )
        raise ServiceUnavailableError("The service is not ready.") from exc
    if services.settings.readyz_check_migrations:
        pending = services.schema.pending_migrations()
        if pending:
            logger.warning(
                "readiness_failed",
                extra={"dependency": "migrations", "pending": pending},
            )
            raise ServiceUnavailableError("The service is not ready.")
    return jsonify({"status": "ready"})


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    """Publish the public keys that verify access tokens."""
    response = jsonify({"keys": registry().key_ring.public_jwks()})
    response.headers["Cache-Control"] = "public, max-age=60"
    return response
