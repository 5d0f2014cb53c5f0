"""The OpenAPI document: complete, valid, and true to what the server does."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from bastion.api import requires_token
from bastion.api.common import public
from bastion.api.docs import DOCS_CSP
from bastion.openapi import RouteDocumentationError, build_document, operation
from bastion.ratelimit import is_rate_limited

DOCUMENT_URL = "/api/v1/openapi.json"
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'"
PUBLIC_OPERATIONS = {
    ("post", "/api/v1/auth/signup"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/docs"),
    ("get", "/docs/assets/{name}"),
    ("get", "/metrics"),
    ("post", "/api/v1/auth/password-reset"),
    ("post", "/api/v1/auth/password-reset/confirm"),
}


@pytest.fixture()
def document(client) -> dict[str, Any]:
    response = client.get(DOCUMENT_URL)
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def url_map_operations(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            found.add((method.lower(), path))
    return found


def response_validator(document: dict[str, Any], schema: Any) -> Draft202012Validator:
    """Validate against ``schema``, resolving its refs inside ``document``."""
    return Draft202012Validator({"components": document["components"], **schema})


def assert_matches(document, method, path, response) -> None:
    """Check a real response's status, headers and body against the document."""
    declared = operations(document)[(method, path)]["responses"]
    assert str(response.status_code) in declared, response.status_code
    entry = declared[str(response.status_code)]
    if "$ref" in entry:
        entry = document["components"]["responses"][entry["$ref"].split("/")[-1]]
    for name, header in entry.get("headers", {}).items():
        header = document["components"]["headers"][header["$ref"].split("/")[-1]]
        if header.get("required"):
            assert name in response.headers, name
    if response.status_code == 204:
        return
    schema = entry["content"]["application/json"]["schema"]
    errors = list(response_validator(document, schema).iter_errors(response.get_json()))
    assert errors == [], [error.message for error in errors]


def test_document_is_valid_openapi_3_1(document):
    validate_openapi(document)

    assert document["openapi"] == "3.1.0"


def test_document_lists_every_route_and_method(app, document):
    assert set(operations(document)) == url_map_operations(app)


def test_route_without_declaration_is_an_error(make_app):
    application = make_app()
    extra = Blueprint("extra", __name__)

    @extra.get("/undocumented")
    def undocumented():
        return jsonify({})

    application.register_blueprint(extra)

    with pytest.raises(RouteDocumentationError, match="/undocumented"):
        build_document(
            application, requires_token=requires_token, is_rate_limited=is_rate_limited
        )


def test_declared_route_joins_document(make_app):
    application = make_app()
    extra = Blueprint("extra", __name__)

    @extra.get("/extra/<uuid:thing_id>")
    @operation(response={"type": "object"}, errors=(409,))
    def get_extra_thing(thing_id):
        return jsonify({})

    application.register_blueprint(extra)
    document = build_document(
        application, requires_token=requires_token, is_rate_limited=is_rate_limited
    )

    responses = document["paths"]["/extra/{thing_id}"]["get"]["responses"]
    assert set(responses) == {"200", "404", "409", "414", "429", "500", "503"}


def test_public_operations_match_token_check(document):
    public_operations = {
        key for key, item in operations(document).items() if item.get("security") == []
    }

    assert public_operations == PUBLIC_OPERATIONS
    assert document["security"] == [{"bearerAuth": []}]
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}


def test_protected_operations_return_401_without_token(client, document):
    for (method, path), item in operations(document).items():
        if item.get("security") == []:
            continue
        url = re.sub(r"\{\w+\}", str(uuid.uuid4()), path)
        response = client.open(url, method=method.upper(), json={})

        assert response.status_code == 401, (method, path)
        assert "401" in item["responses"], (method, path)


def test_public_api_route_ignores_missing_token(make_app):
    application = make_app()
    extra = Blueprint("extra_public", __name__)

    @extra.get("/api/v1/extra-public")
    @public
    @operation(response={"type": "object"}, database=False)
    def extra_public():
        return jsonify({})

    application.register_blueprint(extra)
    document = build_document(
        application, requires_token=requires_token, is_rate_limited=is_rate_limited
    )

    assert application.test_client().get("/api/v1/extra-public").status_code == 200
    assert document["paths"]["/api/v1/extra-public"]["get"]["security"] == []


def test_write_operations_document_error_statuses(document):
    ops = operations(document)

    create = set(ops[("post", "/api/v1/contacts")]["responses"])
    assert create == {"201", "400", "401", "403", "409", "413", "414", "415", "422"} | {
        "429",
        "500",
        "503",
    }
    assert "429" in ops[("post", "/api/v1/auth/login")]["responses"]
    assert "429" not in ops[("get", "/healthz")]["responses"]
    update = set(ops[("patch", "/api/v1/contacts/{contact_id}")]["responses"])
    assert {"404", "409", "412", "422"} <= update
    assert "412" in ops[("delete", "/api/v1/users/{user_id}")]["responses"]
    assert "401" in ops[("post", "/api/v1/auth/login")]["responses"]
    assert "404" in ops[("post", "/api/v1/auth/signup")]["responses"]
    assert "503" in ops[("get", "/readyz")]["responses"]
    assert "503" not in ops[("get", "/healthz")]["responses"]


def test_headers_are_documented(document):
    ops = operations(document)
    ref = "#/components/parameters/"

    for key, item in ops.items():
        assert {"$ref": ref + "X-Request-ID"} in item["parameters"], key
        for status, response in item["responses"].items():
            if status == "414":
                continue  # gunicorn's own answer, made before the app runs
            if "$ref" in response:
                name = response["$ref"].split("/")[-1]
                response = document["components"]["responses"][name]
            assert "X-Request-ID" in response["headers"], (key, status)
    patch = ops[("patch", "/api/v1/contacts/{contact_id}")]
    assert {"$ref": ref + "If-Match"} in patch["parameters"]
    created = ops[("post", "/api/v1/contacts")]["responses"]["201"]["headers"]
    assert set(created) == {
        "X-Request-ID",
        "ETag",
        "Location",
        "Idempotent-Replayed",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
    }
    for path in ("/api/v1/contacts", "/api/v1/contacts/import", "/api/v1/users"):
        parameters = ops[("post", path)]["parameters"]
        assert {"$ref": ref + "Idempotency-Key"} in parameters, path
    unauthorized = document["components"]["responses"]["Error401"]["headers"]
    assert "WWW-Authenticate" in unauthorized
    unavailable = document["components"]["responses"]["Error503"]["headers"]
    assert "Retry-After" in unavailable


def test_error_body_schema_allows_fields_only_on_422(document):
    schemas = document["components"]["schemas"]

    assert "fields" not in schemas["ErrorDetail"]["properties"]
    assert schemas["ErrorDetail"]["additionalProperties"] is False
    assert "fields" in schemas["ValidationErrorDetail"]["properties"]


def test_responses_match_document(client, team, factory, document):
    member, viewer = team["member"], team["viewer"]
    contact = factory.contact(member, notes="Private")
    contact_path = "/api/v1/contacts/{contact_id}"
    url = f"/api/v1/contacts/{contact['id']}"

    created = client.post(
        "/api/v1/contacts", json={"name": "Lin"}, headers=member.headers
    )
    assert_matches(document, "post", "/api/v1/contacts", created)
    for caller in (member, viewer):
        listed = client.get("/api/v1/contacts", headers=caller.headers)
        assert_matches(document, "get", "/api/v1/contacts", listed)
        assert_matches(
            document, "get", contact_path, client.get(url, headers=caller.headers)
        )
        users = client.get("/api/v1/users", headers=caller.headers)
        assert_matches(document, "get", "/api/v1/users", users)
    assert_matches(
        document, "get", "/api/v1/me", client.get("/api/v1/me", headers=viewer.headers)
    )
    invalid = client.post("/api/v1/contacts", json={"name": ""}, headers=member.headers)
    assert_matches(document, "post", "/api/v1/contacts", invalid)
    stale = client.patch(
        url, json={"name": "X"}, headers={**member.headers, "If-Match": '"999"'}
    )
    assert_matches(document, "patch", contact_path, stale)
    missing = client.get(f"/api/v1/contacts/{uuid.uuid4()}", headers=viewer.headers)
    assert_matches(document, "get", contact_path, missing)
    assert_matches(
        document, "get", "/.well-known/jwks.json", client.get("/.well-known/jwks.json")
    )


def test_viewer_contact_matches_only_variant_without_notes(
    client, team, factory, document
):
    contact = factory.contact(team["member"], notes="Private")
    body = client.get(
        f"/api/v1/contacts/{contact['id']}", headers=team["viewer"].headers
    ).get_json()
    schemas = document["components"]["schemas"]

    assert response_validator(
        document, {"$ref": "#/components/schemas/ContactWithoutNotes"}
    ).is_valid(body)
    assert not response_validator(
        document, {"$ref": "#/components/schemas/Contact"}
    ).is_valid(body)
    assert "notes" in schemas["Contact"]["required"]


def test_document_is_public_and_json(client):
    response = client.get(DOCUMENT_URL)

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Security-Policy"] == STRICT_CSP


def test_docs_page_csp_allows_only_own_origin(client):
    response = client.get("/docs")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == DOCS_CSP
    policy = dict(
        part.strip().split(" ", 1) for part in DOCS_CSP.split(";") if part.strip()
    )
    assert policy["default-src"] == "'none'"
    for directive in ("script-src", "style-src", "connect-src"):
        assert policy[directive] == "'self'", directive
    assert "unsafe" not in DOCS_CSP
    assert "http" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/api/v1/contacts", "/docs/assets/docs.js", "/api/v1/nowhere"],
)
def test_other_routes_keep_strict_csp(client, path):
    response = client.get(path)

    assert response.headers["Content-Security-Policy"] == STRICT_CSP


@pytest.mark.parametrize(
    ("name", "mimetype"),
    [
        ("swagger-ui.css", "text/css"),
        ("swagger-ui-bundle.js", "text/javascript"),
        ("docs.js", "text/javascript"),
    ],
)
def test_docs_assets_are_served_locally(client, name, mimetype):
    response = client.get(f"/docs/assets/{name}")

    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert len(response.data) > 0


@pytest.mark.parametrize(
    "name", ["index.html", "..%2F..%2Fconfig.py", "swagger-ui.js", "LICENSE"]
)
def test_docs_assets_outside_allowlist_are_404(client, name):
    response = client.get(f"/docs/assets/{name}")

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
