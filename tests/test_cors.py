"""CORS is off by default and allows only listed origins when configured."""

from __future__ import annotations

import pytest

from bastion.config import ConfigError
from tests.conftest import make_settings

ALLOWED = "https://app.example.com"
PREFLIGHT = {
    "Origin": ALLOWED,
    "Access-Control-Request-Method": "PATCH",
    "Access-Control-Request-Headers": "Authorization, Content-Type, If-Match",
}


@pytest.fixture()
def cors_client(make_app):
    return make_app(
        CORS_ALLOWED_ORIGINS=f"{ALLOWED}, http://localhost:3000"
    ).test_client()


def test_cors_headers_absent_by_default(client, team):
    response = client.get(
        "/api/v1/me", headers={**team["member"].headers, "Origin": ALLOWED}
    )
    preflight = client.options("/api/v1/me", headers=PREFLIGHT)

    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Methods" not in preflight.headers


def test_preflight_from_allowed_origin(cors_client):
    response = cors_client.options("/api/v1/contacts/some-id", headers=PREFLIGHT)

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "PATCH" in response.headers["Access-Control-Allow-Methods"]
    allowed_headers = response.headers["Access-Control-Allow-Headers"]
    for name in ("Authorization", "Content-Type", "If-Match"):
        assert name in allowed_headers
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Origin" in response.headers["Vary"]


def test_preflight_from_other_origin_gets_no_cors_headers(cors_client):
    response = cors_client.options(
        "/api/v1/me", headers={**PREFLIGHT, "Origin": "https://evil.example.net"}
    )

    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Methods" not in response.headers


def test_allowed_origin_can_read_response(cors_client, team):
    response = cors_client.get(
        "/api/v1/me",
        headers={**team["member"].headers, "Origin": "http://localhost:3000"},
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    exposed = response.headers["Access-Control-Expose-Headers"]
    for name in ("ETag", "Retry-After", "X-Request-ID", "RateLimit-Remaining"):
        assert name in exposed
    assert "Origin" in response.headers["Vary"]


def test_other_origin_gets_no_allow_origin(cors_client, team):
    response = cors_client.get(
        "/api/v1/me",
        headers={**team["member"].headers, "Origin": "https://app.example.com.evil"},
    )

    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_preflight_does_not_spend_route_limit(make_app):
    client = make_app(
        CORS_ALLOWED_ORIGINS=ALLOWED, RATELIMIT_LOGIN_PER_ADDRESS="1 per minute"
    ).test_client()
    login_preflight = {**PREFLIGHT, "Access-Control-Request-Method": "POST"}

    for _ in range(3):
        assert (
            client.options("/api/v1/auth/login", headers=login_preflight).status_code
            == 204
        )
    response = client.post(
        "/api/v1/auth/login", json={"email": "a@example.com", "password": "x"}
    )

    assert response.status_code == 401


@pytest.mark.parametrize(
    "value",
    ["*", "https://app.example.com/", "app.example.com", "https://*.example.com"],
)
def test_origin_list_rejects_non_origins(value):
    with pytest.raises(ConfigError, match="CORS_ALLOWED_ORIGINS"):
        make_settings(
            "postgresql://postgres@127.0.0.1/unused", CORS_ALLOWED_ORIGINS=value
        )
