"""The one error body from every layer, and request-level limits."""

from __future__ import annotations

import io
import logging

import pytest

CONTACTS = "/api/v1/contacts"


def _assert_error_shape(response, status, code):
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]


def test_unknown_url_is_404_in_error_shape(client):
    _assert_error_shape(client.get("/api/v1/nowhere"), 404, "not_found")


def test_wrong_method_is_405_in_error_shape_with_allow(client):
    response = client.put("/healthz")

    _assert_error_shape(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_non_json_body_is_415(client, team):
    response = client.post(
        CONTACTS,
        data="name=x",
        content_type="application/x-www-form-urlencoded",
        headers=team["member"].headers,
    )

    _assert_error_shape(response, 415, "unsupported_media_type")


def test_malformed_json_is_400(client, team):
    response = client.post(
        CONTACTS,
        data="{not json",
        content_type="application/json",
        headers=team["member"].headers,
    )

    _assert_error_shape(response, 400, "bad_request")


def test_json_that_is_not_an_object_is_422(client, team):
    response = client.post(CONTACTS, json=["a"], headers=team["member"].headers)

    _assert_error_shape(response, 422, "validation_failed")


def test_body_over_limit_is_413(client, team):
    response = client.post(
        CONTACTS,
        data=b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}',
        content_type="application/json",
        headers=team["member"].headers,
    )

    _assert_error_shape(response, 413, "payload_too_large")


def test_unhandled_exception_is_sanitized_500_and_logged(make_app, caplog):
    app = make_app()

    @app.get("/boom")
    def boom():
        raise RuntimeError("SELECT secret_column FROM accounts")

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/boom")

    _assert_error_shape(response, 500, "internal_error")
    assert b"secret_column" not in response.data
    assert b"Traceback" not in response.data
    logged = [r for r in caplog.records if r.getMessage() == "unhandled_exception"]
    assert logged and logged[0].exc_info is not None
    assert logged[0].request_id == response.get_json()["error"]["request_id"]


def test_database_error_body_has_no_driver_text(make_app):
    app = make_app()
    db = app.extensions["bastion"].db

    @app.get("/bad-sql")
    def bad_sql():
        with db.read() as cur:
            cur.execute("SELECT no_such_column FROM contacts")
        return {}

    response = app.test_client().get("/bad-sql")

    _assert_error_shape(response, 500, "internal_error")
    assert b"no_such_column" not in response.data
    assert b"contacts" not in response.data


def test_request_id_from_trusted_proxy_is_kept(make_app):
    client = make_app(TRUSTED_PROXY_COUNT="1").test_client()

    response = client.get("/healthz", headers={"X-Request-ID": "abc-123_DEF.456"})

    assert response.headers["X-Request-ID"] == "abc-123_DEF.456"


def test_request_id_without_trusted_proxy_is_replaced(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123_DEF.456"})

    assert response.headers["X-Request-ID"] != "abc-123_DEF.456"
    assert len(response.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize(
    "incoming", ["short", "bad id with spaces", "x" * 200, "<script>", "a\u00e9bcdefgh"]
)
def test_malformed_request_id_from_proxy_is_replaced(make_app, incoming):
    client = make_app(TRUSTED_PROXY_COUNT="1").test_client()

    response = client.get("/healthz", headers={"X-Request-ID": incoming})

    assert response.headers["X-Request-ID"] != incoming
    assert len(response.headers["X-Request-ID"]) == 32


def test_security_headers_on_every_response(client):
    for response in (client.get("/healthz"), client.get("/api/v1/nowhere")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"


def test_readyz_reports_ready(client):
    assert client.get("/readyz").get_json() == {"status": "ready"}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "a", "name": "b"}',
        b'{"name": NaN}',
        b'{"name": Infinity}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["duplicate-key", "nan", "infinity", "deep-nesting"],
)
def test_ambiguous_or_hostile_json_is_400(client, team, raw):
    response = client.post(
        CONTACTS,
        data=raw,
        content_type="application/json",
        headers=team["member"].headers,
    )

    _assert_error_shape(response, 400, "bad_request")


def test_nul_character_in_body_is_400(client, team):
    response = client.post(
        CONTACTS, json={"name": "a\x00b"}, headers=team["member"].headers
    )

    _assert_error_shape(response, 400, "bad_request")


def test_nul_character_in_query_is_400(client, team):
    response = client.get(f"{CONTACTS}?q=a%00b", headers=team["member"].headers)

    _assert_error_shape(response, 400, "bad_request")


def test_repeated_query_parameter_is_400(client, team):
    response = client.get(f"{CONTACTS}?q=a&q=b", headers=team["member"].headers)

    _assert_error_shape(response, 400, "bad_request")
    assert "q" in response.get_json()["error"]["message"]


def test_bad_limit_message_names_the_range(client, team):
    response = client.get(f"{CONTACTS}?limit=101", headers=team["member"].headers)

    assert "limit" in response.get_json()["error"]["message"]
    assert "100" in response.get_json()["error"]["message"]


def test_empty_query_value_counts_as_absent(client, team):
    response = client.get(f"{CONTACTS}?q=&cursor=", headers=team["member"].headers)

    assert response.status_code == 200


def test_unauthorized_carries_www_authenticate(client):
    response = client.get(CONTACTS)

    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_no_content_response_has_no_content_type(client, team):
    response = client.post("/api/v1/auth/logout", headers=team["viewer"].headers)

    assert response.status_code == 204
    assert "Content-Type" not in response.headers


def test_lone_surrogate_in_body_is_400(client, team):
    response = client.post(
        CONTACTS,
        data=b'{"name": "\\ud800"}',
        content_type="application/json",
        headers=team["member"].headers,
    )

    _assert_error_shape(response, 400, "bad_request")


def test_utf16_body_is_400(client, team):
    response = client.post(
        CONTACTS,
        data='{"name": "x"}'.encode("utf-16"),
        content_type="application/json",
        headers=team["member"].headers,
    )

    _assert_error_shape(response, 400, "bad_request")


@pytest.mark.parametrize(
    "content_type",
    ["application/merge-patch+json", "application/json; charset=latin-1", "text/json"],
)
def test_other_json_media_types_are_415(client, team, content_type):
    response = client.post(
        CONTACTS,
        data=b'{"name": "x"}',
        content_type=content_type,
        headers=team["member"].headers,
    )

    _assert_error_shape(response, 415, "unsupported_media_type")


def test_chunked_body_over_limit_is_413(client, team):
    body = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'

    response = client.post(
        CONTACTS,
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={**team["member"].headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )

    _assert_error_shape(response, 413, "payload_too_large")
