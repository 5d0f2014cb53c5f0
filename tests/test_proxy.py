"""Forwarded headers are believed only from the configured number of proxies."""

from __future__ import annotations

import logging

import pytest


def _logged_address(caplog, client, **kwargs):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bastion"):
        response = client.get("/healthz", **kwargs)
    assert response.status_code == 200
    lines = [r for r in caplog.records if r.getMessage() == "request"]
    assert len(lines) == 1
    return lines[0].remote_addr, response


def test_forwarded_for_is_ignored_by_default(make_app, caplog):
    client = make_app().test_client()

    address, _ = _logged_address(
        caplog,
        client,
        headers={"X-Forwarded-For": "203.0.113.7"},
        environ_base={"REMOTE_ADDR": "192.0.2.1"},
    )

    assert address == "192.0.2.1"


def test_one_trusted_proxy_reads_only_its_own_entry(make_app, caplog):
    client = make_app(TRUSTED_PROXY_COUNT="1").test_client()

    address, _ = _logged_address(
        caplog,
        client,
        headers={"X-Forwarded-For": "198.51.100.66, 203.0.113.7"},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )

    assert address == "203.0.113.7"


def test_forged_forwarded_for_cannot_reset_login_limit(make_app):
    client = make_app(RATELIMIT_LOGIN_PER_ADDRESS="1 per minute").test_client()
    body = {"email": "nobody@example.com", "password": "wrong password"}

    first = client.post("/api/v1/auth/login", json=body)
    forged = client.post(
        "/api/v1/auth/login", json=body, headers={"X-Forwarded-For": "203.0.113.8"}
    )

    assert first.status_code == 401
    assert forged.status_code == 429


@pytest.mark.parametrize(("count", "expected"), [("0", False), ("1", True)])
def test_hsts_follows_scheme_from_trusted_proxy(make_app, count, expected):
    client = make_app(TRUSTED_PROXY_COUNT=count).test_client()

    response = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})

    assert ("Strict-Transport-Security" in response.headers) is expected


def test_hsts_on_direct_https(client):
    response = client.get("/healthz", base_url="https://localhost")

    assert response.headers["Strict-Transport-Security"] == (
        "max-age=63072000; includeSubDomains"
    )


def test_hsts_absent_over_plain_http(client):
    response = client.get("/healthz")

    assert "Strict-Transport-Security" not in response.headers


def test_authenticated_response_is_not_cached(client, team):
    response = client.get("/api/v1/me", headers=team["member"].headers)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
