"""Health checks, metrics and the public signing keys, outside ``/api/v1``."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from bastion import metrics
from bastion.errors import ServiceUnavailableError
from bastion.health import Readiness
from bastion.openapi import operation
from bastion.schemas.ops import HealthSchema, JwksSchema, ReadinessSchema
from bastion.services import registry

logger = logging.getLogger(__name__)

bp = Blueprint("ops", __name__)

health_schema = HealthSchema()
readiness_schema = ReadinessSchema()
jwks_schema = JwksSchema()


@bp.record_once
def _init_readiness(state: BlueprintSetupState) -> None:
    services = state.app.extensions["bastion"]
    state.app.extensions["bastion_readiness"] = Readiness(
        services.settings, services.db
    )


@bp.get("/healthz")
@operation(response=HealthSchema, database=False)
def healthz() -> Response:
    """Report that the process is running; checks no dependency."""
    return jsonify(health_schema.dump({"status": "ok"}))


@bp.get("/readyz")
@operation(response=ReadinessSchema)
def readyz() -> Response:
    """Report whether PostgreSQL and Redis, when used, respond in time.

    With READYZ_CHECK_MIGRATIONS it also reports whether a migration is
    pending. The body never names the failed dependency; the log does.
    """
    services = registry()
    readiness: Readiness = current_app.extensions["bastion_readiness"]
    failed = readiness.failed_dependencies()
    if "postgresql" not in failed and services.settings.readyz_check_migrations:
        pending = services.schema.pending_migrations()
        if pending:
            logger.warning(
                "readiness_failed",
                extra={"dependencies": ["migrations"], "pending": pending},
            )
            raise ServiceUnavailableError("The service is not ready.")
    if "postgresql" not in failed and not services.key_ring.has_signing_key():
        failed.append("signing_key")
    if failed:
        logger.warning("readiness_failed", extra={"dependencies": failed})
        raise ServiceUnavailableError("The service is not ready.")
    return jsonify(readiness_schema.dump({"status": "ready"}))


@bp.get("/metrics")
@operation(media_types=("text/plain",), errors=(404,), database=False)
def prometheus_metrics() -> Response:
    """Serve Prometheus metrics to allowed networks; 404 to everyone else."""
    services = registry()
    if not metrics.is_allowed(
        request.remote_addr, services.settings.metrics_allowed_networks
    ):
        abort(404)
    metrics.observe_pool(services.db.pool.get_stats())
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


@bp.get("/.well-known/jwks.json")
@operation(response=JwksSchema)
def jwks() -> Response:
    """Publish the public keys that verify access tokens."""
    response = jsonify(jwks_schema.dump({"keys": registry().key_ring.public_jwks()}))
    response.headers["Cache-Control"] = "public, max-age=60"
    return response
