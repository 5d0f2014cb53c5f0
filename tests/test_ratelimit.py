"""Per-route rate limits: keys, the 429 shape, and Redis shared or failing.

Each test builds an app with its own small limits, on memory storage
unless it names a Redis, so counts never leak between tests.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time

import pytest
import redis

from bastion.config import ConfigError
from bastion.ratelimit import ROUTE_LIMITS, check_worker_storage
from tests.conftest import PASSWORD, make_settings, unique_email
from tests.processes import RedisServer

LOGIN = "/api/v1/auth/login"


@pytest.fixture()
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def _login(client, email="nobody@example.com", address="192.0.2.1"):
    return client.post(
        LOGIN,
        json={"email": email, "password": "wrong password"},
        environ_base={"REMOTE_ADDR": address},
    )


def _assert_rate_limited(response):
    assert response.status_code == 429
    body = response.get_json()
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]
    assert set(body["error"]) == {"code", "message", "request_id"}
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["RateLimit-Remaining"] == "0"
    assert int(response.headers["RateLimit-Reset"]) >= 1


def test_login_limit_per_address(make_app):
    client = make_app(RATELIMIT_LOGIN_PER_ADDRESS="3 per minute").test_client()

    allowed = [_login(client, email=unique_email()) for _ in range(3)]
    refused = _login(client, email=unique_email())

    assert [r.status_code for r in allowed] == [401, 401, 401]
    assert [r.headers["RateLimit-Remaining"] for r in allowed] == ["2", "1", "0"]
    assert allowed[0].headers["RateLimit-Limit"] == "3"
    _assert_rate_limited(refused)
    assert _login(client, address="192.0.2.2").status_code == 401


def test_login_limit_per_email_spans_addresses(make_app):
    client = make_app(RATELIMIT_LOGIN_PER_EMAIL="2 per minute").test_client()
    email = unique_email()

    first = _login(client, email=email, address="192.0.2.10")
    second = _login(client, email=email.upper(), address="192.0.2.11")
    third = _login(client, email=f"  {email} ", address="192.0.2.12")

    assert [first.status_code, second.status_code] == [401, 401]
    _assert_rate_limited(third)
    assert _login(client, email=unique_email(), address="192.0.2.13").status_code == 401


def test_login_limit_also_stops_correct_passwords(make_app, factory):
    owner = factory.owner()
    client = make_app(RATELIMIT_LOGIN_PER_EMAIL="1 per minute").test_client()

    client.post(LOGIN, json={"email": owner.email, "password": "wrong password"})
    response = client.post(LOGIN, json={"email": owner.email, "password": PASSWORD})

    _assert_rate_limited(response)


def test_login_email_key_survives_oversized_body(make_app):
    client = make_app(RATELIMIT_LOGIN_PER_EMAIL="1 per minute").test_client()
    body = json.dumps({"email": "x@example.com", "password": "y" * (2 << 20)})

    response = client.post(LOGIN, data=body, content_type="application/json")

    assert response.status_code == 413
    assert _login(client, email=unique_email()).status_code == 401


def test_signup_limit_per_address(make_app):
    client = make_app(RATELIMIT_SIGNUP="2 per hour").test_client()

    def signup():
        return client.post(
            "/api/v1/auth/signup",
            json={
                "account_name": "Acme",
                "name": "Ada",
                "email": unique_email(),
                "password": PASSWORD,
            },
        )

    assert [signup().status_code for _ in range(2)] == [201, 201]
    _assert_rate_limited(signup())


def test_refresh_limit_per_address(make_app):
    client = make_app(RATELIMIT_REFRESH="2 per minute").test_client()

    def refresh():
        return client.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 43})

    assert [refresh().status_code for _ in range(2)] == [401, 401]
    _assert_rate_limited(refresh())


def _reset(client, email, address):
    return client.post(
        "/api/v1/auth/password-reset",
        json={"email": email},
        environ_base={"REMOTE_ADDR": address},
    )


def test_password_reset_limit_per_email_spans_addresses(make_app):
    client = make_app(RATELIMIT_PASSWORD_RESET_PER_EMAIL="2 per hour").test_client()
    email = unique_email()

    accepted = [_reset(client, email, f"192.0.2.{n}") for n in (20, 21)]
    refused = _reset(client, email.upper(), "192.0.2.22")

    assert [r.status_code for r in accepted] == [202, 202]
    _assert_rate_limited(refused)
    assert _reset(client, unique_email(), "192.0.2.23").status_code == 202


def test_password_reset_limit_per_address(make_app):
    client = make_app(RATELIMIT_PASSWORD_RESET_PER_ADDRESS="2 per hour").test_client()

    accepted = [_reset(client, unique_email(), "192.0.2.30") for _ in range(2)]
    refused = _reset(client, unique_email(), "192.0.2.30")
    confirm = client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": "x" * 43, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "192.0.2.30"},
    )

    assert [r.status_code for r in accepted] == [202, 202]
    _assert_rate_limited(refused)
    assert confirm.status_code != 429


def test_search_limit_counts_only_requests_with_q(make_app, team):
    client = make_app(RATELIMIT_SEARCH="2 per minute").test_client()
    headers = team["member"].headers

    searches = [client.get("/api/v1/contacts?q=ada", headers=headers) for _ in range(2)]
    plain = [client.get("/api/v1/contacts", headers=headers) for _ in range(3)]
    refused = client.get("/api/v1/contacts?q=grace", headers=headers)

    assert [r.status_code for r in searches] == [200, 200]
    assert [r.status_code for r in plain] == [200, 200, 200]
    _assert_rate_limited(refused)


def test_default_limit_is_per_user(make_app, team):
    client = make_app(RATELIMIT_DEFAULT="2 per minute").test_client()
    member, viewer = team["member"], team["viewer"]

    used = [client.get("/api/v1/me", headers=member.headers) for _ in range(2)]
    refused = client.get("/api/v1/me", headers=member.headers)
    other_user = client.get("/api/v1/me", headers=viewer.headers)

    assert [r.status_code for r in used] == [200, 200]
    _assert_rate_limited(refused)
    assert other_user.status_code == 200


def _forged_token(subject: str) -> str:
    def part(data: dict) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = part({"alg": "ES256", "typ": "JWT", "kid": "forged"})
    return f"{header}.{part({'sub': subject, 'sid': 'x'})}.c2lnbmF0dXJl"


def test_forged_token_is_counted_by_address_not_user(make_app, team):
    client = make_app(RATELIMIT_DEFAULT="2 per minute").test_client()
    victim = team["member"]
    forged = {"Authorization": f"Bearer {_forged_token(victim.id)}"}
    attacker = {"REMOTE_ADDR": "192.0.2.66"}

    rejected = [
        client.get("/api/v1/me", headers=forged, environ_base=attacker)
        for _ in range(2)
    ]
    refused = client.get("/api/v1/me", headers=forged, environ_base=attacker)
    victim_call = client.get("/api/v1/me", headers=victim.headers)

    assert [r.status_code for r in rejected] == [401, 401]
    _assert_rate_limited(refused)
    assert victim_call.status_code == 200
    assert victim_call.headers["RateLimit-Remaining"] == "1"


def test_probes_are_not_limited(make_app):
    client = make_app(RATELIMIT_DEFAULT="1 per minute").test_client()

    statuses = [client.get("/healthz").status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert client.get("/.well-known/jwks.json").status_code == 200
    _assert_rate_limited(client.get("/.well-known/jwks.json"))


def test_route_limits_name_existing_settings():
    settings = make_settings("postgresql://postgres@127.0.0.1/unused")

    for spec in ROUTE_LIMITS:
        assert isinstance(getattr(settings, spec.setting), str), spec.setting


def test_every_listed_route_that_exists_is_limited(make_app, team):
    app = make_app(**{spec.setting.upper(): "1 per day" for spec in ROUTE_LIMITS})
    client = app.test_client()
    served = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
    }
    # Any body will do: limits are checked before the body is validated.
    body = {"email": unique_email(), "password": "x", "refresh_token": "x"}
    checked = []

    for spec in ROUTE_LIMITS:
        if (spec.method, spec.path) not in served:
            continue
        path = f"{spec.path}?q=x" if spec.method == "GET" else spec.path
        headers = team["member"].headers
        responses = [
            client.open(path, method=spec.method, json=body, headers=headers)
            for _ in range(2)
        ]
        assert responses[1].status_code == 429, spec
        checked.append(spec.path)

    assert {
        "/api/v1/auth/login",
        "/api/v1/auth/signup",
        "/api/v1/auth/refresh",
        "/api/v1/auth/password-reset",
        "/api/v1/auth/password-reset/confirm",
        "/api/v1/contacts",
    } <= set(checked)


def test_redis_counts_are_shared_between_apps(make_app, redis_server):
    limits = {
        "RATELIMIT_STORAGE_URI": redis_server.url,
        "RATELIMIT_LOGIN_PER_ADDRESS": "3 per minute",
    }
    first = make_app(**limits).test_client()
    second = make_app(**limits).test_client()

    statuses = [_login(client).status_code for client in (first, second, first)]
    refused = _login(second)

    assert statuses == [401, 401, 401]
    _assert_rate_limited(refused)


def _events(caplog, event):
    return [r for r in caplog.records if r.getMessage() == event]


def test_redis_outage_falls_back_and_logs_once(make_app, redis_server, caplog):
    app = make_app(
        RATELIMIT_STORAGE_URI=redis_server.url, RATELIMIT_DEFAULT="20 per minute"
    )
    client = app.test_client()
    assert client.get("/.well-known/jwks.json").status_code == 200
    caplog.set_level(logging.INFO)

    redis_server.stop()
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def burst() -> None:
        own_client = app.test_client()
        barrier.wait(timeout=10)
        for _ in range(5):
            statuses.append(own_client.get("/.well-known/jwks.json").status_code)

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert statuses.count(200) == 20
    _assert_rate_limited(client.get("/.well-known/jwks.json"))
    warnings = _events(caplog, "ratelimit_storage_unavailable")
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert warnings[0].storage == "redis"
    assert not [r for r in caplog.records if "exceeded at endpoint" in r.getMessage()]


def test_redis_recovery_is_logged_once(make_app, redis_server, caplog):
    client = make_app(RATELIMIT_STORAGE_URI=redis_server.url).test_client()
    caplog.set_level(logging.INFO)
    redis_server.stop()
    assert client.get("/.well-known/jwks.json").status_code == 200

    redis_server.start()
    # flask-limiter probes a failed storage after 1, 2, 4, ... s; stop at 15 s.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not _events(
        caplog, "ratelimit_storage_recovered"
    ):
        assert client.get("/.well-known/jwks.json").status_code == 200
        time.sleep(0.1)
    for _ in range(3):
        client.get("/.well-known/jwks.json")

    assert len(_events(caplog, "ratelimit_storage_unavailable")) == 1
    assert len(_events(caplog, "ratelimit_storage_recovered")) == 1
    assert redis.Redis.from_url(redis_server.url).ping()


def test_readyz_fails_while_redis_is_down(make_app, redis_server):
    client = make_app(RATELIMIT_STORAGE_URI=redis_server.url).test_client()
    assert client.get("/readyz").status_code == 200

    redis_server.stop()

    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_memory_storage_with_workers_is_refused_in_production():
    settings = make_settings(
        "postgresql://postgres@127.0.0.1/unused",
        BASTION_ENV="production",
        BCRYPT_ROUNDS="12",
    )

    with pytest.raises(ConfigError, match="RATELIMIT_STORAGE_URI"):
        check_worker_storage(settings, workers=2)
    check_worker_storage(settings, workers=1)


def test_memory_storage_with_workers_warns_outside_production(caplog):
    settings = make_settings("postgresql://postgres@127.0.0.1/unused")
    shared = make_settings(
        "postgresql://postgres@127.0.0.1/unused",
        BASTION_ENV="production",
        BCRYPT_ROUNDS="12",
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0",
    )

    with caplog.at_level(logging.WARNING, logger="bastion.ratelimit"):
        check_worker_storage(settings, workers=3)
        check_worker_storage(shared, workers=3)

    assert [r.getMessage() for r in caplog.records] == ["ratelimit_storage_per_process"]


def test_ipv6_clients_are_keyed_by_their_slash_64(make_app):
    app = make_app(RATELIMIT_SIGNUP="2 per hour")
    client = app.test_client()
    statuses = []
    for host in range(1, 5):
        response = client.post(
            "/api/v1/auth/signup",
            json={
                "account_name": "V6",
                "name": "V6",
                "email": unique_email("v6"),
                "password": PASSWORD,
            },
            environ_overrides={"REMOTE_ADDR": f"2001:db8:1:2::{host}"},
        )
        statuses.append(response.status_code)

    assert statuses == [201, 201, 429, 429]


def test_password_change_has_its_own_user_limit(make_app, factory):
    app = make_app(RATELIMIT_PASSWORD_HASHING="2 per minute")
    client = app.test_client()
    owner = factory.owner()
    body = {"current_password": "wrong password!", "new_password": PASSWORD + "x"}

    statuses = [
        client.post("/api/v1/me/password", json=body, headers=owner.headers).status_code
        for _ in range(3)
    ]

    assert statuses == [403, 403, 429]
