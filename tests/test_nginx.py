"""The deployment for real: nginx from deploy/nginx.conf in front of two gunicorn
instances sharing one PostgreSQL database and a Redis of the test's own.

Requests leave from chosen loopback addresses (127.0.0.2 and up) so the
address the app records can be distinguished from nginx's own 127.0.0.1. The
tests run in file order against one stack; the last one stops Redis.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from pathlib import Path

import pytest

from tests.processes import RedisServer
from tests.servers import Gunicorn, Nginx, gunicorn_env, request

pytestmark = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
    reason="no nginx binary: install Debian's nginx package (.ci/run does)",
)

PASSWORD = "correct horse battery staple"
LOGIN_LIMIT = 6
WORKERS_PER_INSTANCE = 2


class Stack:
    def __init__(self, nginx: Nginx, instances: list[Gunicorn], redis: RedisServer):
        self.nginx = nginx
        self.instances = instances
        self.redis = redis

    def call(self, method, path, *, source="127.0.0.2", body=None, headers=None):
        status, response_headers, raw = request(
            "127.0.0.1",
            self.nginx.https_port,
            method,
            path,
            body=body,
            headers=headers,
            source=source,
            tls=self.nginx.tls_context(),
        )
        decoded = json.loads(raw) if raw.startswith(b"{") else None
        return status, response_headers, decoded

    def records(self, event: str, request_id: str | None = None) -> list[dict]:
        found = []
        for instance in self.instances:
            found += [
                r
                for r in instance.log_records()
                if r.get("event") == event
                and (request_id is None or r.get("request_id") == request_id)
            ]
        return found

    def wait_for_records(self, event: str, request_id: str) -> list[dict]:
        # gunicorn writes the access line after the response has been sent.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = self.records(event, request_id)
            if found:
                return found
            time.sleep(0.05)
        return []


@pytest.fixture(scope="module")
def stack(app, database_url, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("nginx-stack")
    redis_server = RedisServer()
    redis_server.start()
    env = gunicorn_env(
        database_url,
        app.extensions["bastion"].settings.jwt_key_encryption_key,
        TRUSTED_PROXY_COUNT="1",
        RATELIMIT_STORAGE_URI=redis_server.url,
        RATELIMIT_LOGIN_PER_ADDRESS=f"{LOGIN_LIMIT} per minute",
        RATELIMIT_LOGIN_PER_EMAIL="1000 per minute",
        RATELIMIT_SIGNUP="1000 per minute",
        RATELIMIT_DEFAULT="1000 per minute",
        GUNICORN_WORKERS=str(WORKERS_PER_INSTANCE),
    )
    instances = [Gunicorn(env, workdir / f"gunicorn-{n}.log") for n in (1, 2)]
    nginx = Nginx(workdir / "nginx", [instance.port for instance in instances])
    try:
        for instance in instances:
            instance.start()
        nginx.start()
        yield Stack(nginx, instances, redis_server)
    finally:
        nginx.stop()
        for instance in instances:
            instance.stop()
        redis_server.stop()


@pytest.fixture(scope="module")
def owner(stack):
    email = f"nginx-{secrets.token_hex(4)}@example.com"
    status, _, _ = stack.call(
        "POST",
        "/api/v1/auth/signup",
        body={
            "account_name": "Edge",
            "name": "Ada",
            "email": email,
            "password": PASSWORD,
        },
    )
    assert status == 201
    status, _, tokens = stack.call(
        "POST", "/api/v1/auth/login", body={"email": email, "password": PASSWORD}
    )
    assert status == 200
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def test_https_response_has_hsts_and_no_server_version(stack):
    status, headers, _ = stack.call("GET", "/healthz")

    assert status == 200
    assert headers["Server"] == "nginx"
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_plain_http_redirects_to_https(stack):
    status, headers, _ = request(
        "127.0.0.1", stack.nginx.http_port, "GET", "/healthz", source="127.0.0.2"
    )

    assert status == 301
    assert headers["Location"].startswith("https://")


def test_app_logs_client_address_seen_by_nginx(stack):
    request_id = f"client-address-{secrets.token_hex(6)}"
    status, headers, _ = stack.call(
        "GET",
        "/healthz",
        source="127.0.0.5",
        headers={"X-Request-ID": request_id, "X-Forwarded-For": "203.0.113.9"},
    )

    assert status == 200
    assert headers["X-Request-ID"] == request_id
    app_lines = stack.wait_for_records("request", request_id)
    access_lines = stack.wait_for_records("access", request_id)
    assert [line["remote_addr"] for line in app_lines] == ["127.0.0.5"]
    assert [line["remote_addr"] for line in access_lines] == ["127.0.0.5"]
    assert access_lines[0]["route"] == "/healthz"
    assert access_lines[0]["status"] == 200


def test_login_limit_holds_across_both_instances(stack):
    attempts = 3 * LOGIN_LIMIT
    statuses = []
    request_ids = []
    for attempt in range(attempts):
        request_id = f"login-flood-{attempt}-{secrets.token_hex(4)}"
        request_ids.append(request_id)
        status, _, _ = stack.call(
            "POST",
            "/api/v1/auth/login",
            source="127.0.0.3",
            body={"email": f"nobody-{attempt}@example.com", "password": "wrong"},
            headers={"X-Request-ID": request_id},
        )
        statuses.append(status)

    assert statuses.count(401) == LOGIN_LIMIT
    assert statuses.count(429) == attempts - LOGIN_LIMIT
    served_by = [
        {r["request_id"] for r in instance.log_records() if r.get("event") == "request"}
        & set(request_ids)
        for instance in stack.instances
    ]
    assert all(served_by), "nginx should spread the logins over both instances"


def test_forged_forwarded_for_keeps_the_limit(stack):
    status, headers, body = stack.call(
        "POST",
        "/api/v1/auth/login",
        source="127.0.0.3",
        body={"email": "nobody@example.com", "password": "wrong"},
        headers={"X-Forwarded-For": "198.51.100.23"},
    )

    assert status == 429
    assert body["error"]["code"] == "rate_limited"
    assert int(headers["Retry-After"]) > 0
    assert headers["RateLimit-Limit"] == str(LOGIN_LIMIT)
    assert headers["RateLimit-Remaining"] == "0"


def test_other_client_address_has_its_own_login_limit(stack):
    status, _, _ = stack.call(
        "POST",
        "/api/v1/auth/login",
        source="127.0.0.4",
        body={"email": "nobody@example.com", "password": "wrong"},
    )

    assert status == 401


def test_body_over_two_mib_is_refused_by_nginx(stack):
    body = json.dumps({"name": "x" * (2 * 1024 * 1024)}).encode()
    status, headers, decoded = stack.call(
        "POST",
        "/api/v1/contacts",
        body=body,
        headers={"Content-Type": "application/json"},
    )

    assert status == 413
    assert decoded["error"]["code"] == "payload_too_large"
    assert decoded["error"]["request_id"] == headers["X-Request-ID"]


def test_api_keeps_serving_after_redis_stops(stack, owner):
    status, headers, _ = stack.call(
        "POST", "/api/v1/contacts", body={"name": "Grace"}, headers=owner
    )
    assert status == 201
    path = headers["Location"]

    stack.redis.stop()
    reads = [stack.call("GET", path, headers=owner)[0] for _ in range(12)]
    logins = [
        stack.call(
            "POST",
            "/api/v1/auth/login",
            source="127.0.0.6",
            body={"email": "nobody@example.com", "password": "wrong"},
        )[0]
        for _ in range(4)
    ]
    ready, _, _ = stack.call("GET", "/readyz")

    assert reads == [200] * 12
    assert logins == [401] * 4
    assert ready == 503
    warnings = stack.records("ratelimit_storage_unavailable")
    assert 1 <= len(warnings) <= 2 * WORKERS_PER_INSTANCE
    assert all(record["level"] == "WARNING" for record in warnings)
