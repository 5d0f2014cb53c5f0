"""Request logs, database error logs, slow queries, metrics and readiness."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
from flask import abort
from prometheus_client import REGISTRY

from bastion.db import TxContext
from bastion.health import redis_url_for
from bastion.logging import RequestContextFilter, json_formatter
from tests.conftest import make_settings
from tests.processes import free_port

CONTACT_ROUTE = "/api/v1/contacts/<uuid:contact_id>"


class JsonLog:
    """The app's log records, formatted exactly as they reach stderr."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(json_formatter())
        self.handler.addFilter(RequestContextFilter())

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self, event: str | None = None) -> list[dict]:
        lines = [json.loads(line) for line in self.text.splitlines()]
        return [line for line in lines if event is None or line["event"] == event]


@pytest.fixture()
def json_log():
    log = JsonLog()
    root = logging.getLogger()
    level = root.level
    root.addHandler(log.handler)
    root.setLevel(logging.DEBUG)
    yield log
    root.removeHandler(log.handler)
    root.setLevel(level)


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_request_line_has_route_template_ids_and_timings(
    client, factory, team, json_log
):
    member = team["member"]
    contact = factory.contact(member)

    response = client.get(f"/api/v1/contacts/{contact['id']}", headers=member.headers)

    assert response.status_code == 200
    [line] = [r for r in json_log.records("request") if r["route"] == CONTACT_ROUTE]
    assert line["level"] == "INFO"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert line["user_id"] == member.id
    assert line["account_id"] == member.account_id
    assert line["duration_ms"] > 0
    assert 0 < line["db_ms"] <= line["duration_ms"]
    assert line["pool_wait_ms"] >= 0
    assert line["db_statements"] >= 3
    assert contact["id"] not in json_log.text
    assert line["timestamp"]


def test_every_log_line_is_one_json_object(client, team, json_log):
    client.get("/api/v1/contacts", headers=team["viewer"].headers)
    client.get("/api/v1/nowhere")

    for line in json_log.text.splitlines():
        assert isinstance(json.loads(line), dict)
    assert len(json_log.records("request")) == 2


def test_unhandled_exception_is_logged_with_stack_trace(make_app, json_log):
    app = make_app()

    @app.get("/boom")
    def boom():
        raise RuntimeError("exploded on purpose")

    response = app.test_client().get("/boom")

    [line] = json_log.records("unhandled_exception")
    assert line["level"] == "ERROR"
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert "Traceback (most recent call last)" in line["exception"]
    assert "RuntimeError: exploded on purpose" in line["exception"]
    assert "in boom" in line["exception"]
    [request_line] = json_log.records("request")
    assert request_line["status"] == 500
    assert request_line["level"] == "WARNING"


def test_db_error_logs_sqlstate_but_no_row_values(make_app, json_log):
    app = make_app()
    db = app.extensions["bastion"].db
    password_hash = "$2b$04$" + "H" * 53
    errors_before = sample("bastion_db_errors_total", sqlstate_class="23")

    # The block acts for the account it inserts into, so that row-level
    # security lets the row reach the check constraint.
    ctx = TxContext(account_id=str(uuid.uuid4()))

    @app.get("/bad-row")
    def bad_row():
        with db.write(ctx) as cur:
            cur.execute(
                """
                INSERT INTO users (account_id, name, email, role, password_hash)
                VALUES (%(account_id)s, 'n', 'x@example.com', 'bogus', %(hash)s)
                """,
                {"account_id": ctx.account_id, "hash": password_hash},
            )
        return {}

    response = app.test_client().get("/bad-row")

    assert response.status_code == 500
    assert password_hash.encode() not in response.data
    [line] = json_log.records("db_error")
    assert line["sqlstate"] == "23514"
    assert line["sqlstate_class"] == "23"
    assert line["constraint"] == "users_role_check"
    assert line["table"] == "users"
    assert "test_observability.test_db_error" in line["statement"]
    assert "violates check constraint" in line["error_message"]
    [crash] = json_log.records("unhandled_exception")
    assert "CheckViolation: [23514]" in crash["exception"]
    assert password_hash not in json_log.text
    assert "H" * 53 not in json_log.text
    after = sample("bastion_db_errors_total", sqlstate_class="23")
    assert after == errors_before + 1


def test_secret_fields_are_redacted(json_log):
    logging.getLogger("bastion.test").info(
        "carelessly_logged",
        extra={
            "password": "hunter2-password",
            "refresh_token": "rt-secret-value",
            "authorization": "Bearer abc.def.ghi",
            "password_hash": "$2b$12$abcdef",
            "route": "/kept",
        },
    )

    [line] = json_log.records("carelessly_logged")
    assert line["password"] == "[redacted]"
    assert line["refresh_token"] == "[redacted]"
    assert line["authorization"] == "[redacted]"
    assert line["password_hash"] == "[redacted]"
    assert line["route"] == "/kept"
    for secret in ("hunter2", "rt-secret", "abc.def", "$2b$12$"):
        assert secret not in json_log.text


def test_slow_query_is_logged_with_name_not_parameters(make_app, json_log):
    db = make_app(SLOW_QUERY_THRESHOLD_MS="50").extensions["bastion"].db

    with db.read() as cur:
        cur.execute("SELECT 1 AS fast")
        cur.execute(
            "SELECT pg_sleep(0.08), %(marker)s::text AS marker",
            {"marker": "parameter-value-7f3a"},
        )

    [line] = json_log.records("slow_query")
    assert line["level"] == "WARNING"
    assert line["statement"].startswith(
        "tests.test_observability.test_slow_query_is_logged_with_name_not_parameters:"
    )
    assert line["duration_ms"] >= 50
    assert "parameter-value-7f3a" not in json_log.text
    assert "pg_sleep" not in json_log.text


def test_slow_query_threshold_zero_logs_nothing(make_app, json_log):
    db = make_app(SLOW_QUERY_THRESHOLD_MS="0").extensions["bastion"].db

    with db.read() as cur:
        cur.execute("SELECT pg_sleep(0.02)")

    assert json_log.records("slow_query") == []


def test_metrics_are_off_by_default(client):
    response = client.get("/metrics")

    assert response.status_code == 404
    assert response.get_json() == {
        "error": {
            "code": "not_found",
            "message": "The requested URL was not found.",
            "request_id": response.headers["X-Request-ID"],
        }
    }


def test_metrics_from_outside_allowlist_is_404(make_app):
    client = make_app(METRICS_ALLOWED_NETWORKS="127.0.0.0/8, ::1").test_client()

    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})

    assert response.status_code == 404
    assert b"bastion_" not in response.data


def test_metrics_count_requests_by_route_template_and_status(
    make_app, settings, factory, team
):
    app = make_app(
        METRICS_ALLOWED_NETWORKS="127.0.0.0/8",
        # The team's tokens are signed with keys under the main app's key.
        JWT_KEY_ENCRYPTION_KEY=settings.jwt_key_encryption_key,
    )
    client = app.test_client()
    member = team["member"]
    contact = factory.contact(member)
    labels = {"method": "GET", "route": CONTACT_ROUTE, "status": "200"}
    before = sample("bastion_http_requests_total", **labels)

    for _ in range(3):
        client.get(f"/api/v1/contacts/{contact['id']}", headers=member.headers)
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert sample("bastion_http_requests_total", **labels) == before + 3
    assert sample("bastion_http_request_duration_seconds_count", **labels) >= 3
    text = response.get_data(as_text=True)
    assert 'route="/api/v1/contacts/<uuid:contact_id>"' in text
    assert contact["id"] not in text
    assert "bastion_db_pool_connections " in text
    assert "bastion_db_pool_wait_seconds_bucket" in text
    assert sample("bastion_db_pool_connections_in_use") == 0
    assert sample("bastion_db_pool_requests_waiting") == 0


def test_odd_methods_share_one_metric_label(make_app):
    client = make_app().test_client()
    labels = {"method": "other", "route": "unmatched", "status": "405"}
    before = sample("bastion_http_requests_total", **labels)

    client.open("/healthz", method="BREW")

    assert sample("bastion_http_requests_total", **labels) == before + 1


def test_login_failures_are_counted_by_reason(client, team):
    wrong = sample("bastion_login_failures_total", reason="wrong_password")
    unknown = sample("bastion_login_failures_total", reason="unknown_email")

    client.post(
        "/api/v1/auth/login", json={"email": team["viewer"].email, "password": "nope"}
    )
    client.post(
        "/api/v1/auth/login",
        json={"email": "nobody-at-all@example.com", "password": "nope"},
    )

    assert sample("bastion_login_failures_total", reason="wrong_password") == wrong + 1
    assert sample("bastion_login_failures_total", reason="unknown_email") == unknown + 1


def test_rate_limit_rejections_are_counted(make_app):
    app = make_app()

    @app.get("/limited")
    def limited():
        abort(429)

    before = sample("bastion_rate_limit_rejections_total", route="/limited")
    response = app.test_client().get("/limited")

    assert response.status_code == 429
    assert sample("bastion_rate_limit_rejections_total", route="/limited") == before + 1


def test_readyz_checks_configured_redis(make_app):
    client = make_app(REDIS_URL="redis://127.0.0.1:6379/0").test_client()

    assert client.get("/readyz").status_code == 200


def test_readyz_unreachable_redis_is_503_naming_nothing(make_app, json_log):
    app = make_app(
        RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0",
        READINESS_TIMEOUT="0.5",
    )
    client = app.test_client()

    responses = [client.get("/readyz") for _ in range(3)]

    for response in responses:
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert b"redis" not in response.data.lower()
        assert b"postgres" not in response.data.lower()
    [down] = json_log.records("dependency_down")
    assert down["dependency"] == "redis"
    assert down["level"] == "WARNING"
    failures = json_log.records("readiness_failed")
    assert [line["dependencies"] for line in failures] == [["redis"]] * 3


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"RATELIMIT_STORAGE_URI": "memory://"}, None),
        ({"RATELIMIT_STORAGE_URI": "redis://r:6379/1"}, "redis://r:6379/1"),
        ({"RATELIMIT_STORAGE_URI": "redis+unix:///run/r.sock"}, "unix:///run/r.sock"),
        (
            {"RATELIMIT_STORAGE_URI": "redis://a:1", "REDIS_URL": "redis://b:2"},
            "redis://b:2",
        ),
    ],
)
def test_redis_url_for_readiness(database_url, env, expected):
    assert redis_url_for(make_settings(database_url, **env)) == expected
