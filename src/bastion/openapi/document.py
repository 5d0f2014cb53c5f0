"""Walk the URL map and write one operation per route and method."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from apispec import APISpec
from flask import Flask
from werkzeug.routing import Rule

from bastion.openapi import Body, Operation, Page, RouteDocumentationError
from bastion.openapi.components import (
    BEARER_SCHEME,
    add_components,
    error_response_name,
    header_ref,
)
from bastion.openapi.converter import BastionPlugin, schema_name
from bastion.ratelimit import RATE_LIMIT_HEADERS

API_VERSION = "1.0.0"

_CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "uuid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
}
_RULE_PARAMETER = re.compile(
    r"<(?:(?P<converter>\w+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>"
)
_ANY_ITEM = re.compile(r"[\w.-]+")


def _openapi_path(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    """Turn ``/contacts/<uuid:contact_id>`` into ``/contacts/{contact_id}``."""
    parameters: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        converter = match.group("converter") or "default"
        schema = _CONVERTER_SCHEMAS.get(converter, {"type": "string"})
        if converter == "any":
            # any("a", "b") matches only the listed values.
            schema = {"type": "string", "enum": _ANY_ITEM.findall(match.group("args"))}
        parameters.append(
            {
                "in": "path",
                "name": match.group("name"),
                "required": True,
                "schema": schema,
            }
        )
        return "{" + match.group("name") + "}"

    return _RULE_PARAMETER.sub(replace, rule.rule), parameters


def _body_schema(body: Body) -> Any:
    if isinstance(body, tuple):
        return {"anyOf": list(body)}
    return body


def _success_response(declared: Operation, *, rate_limited: bool) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-ID": {"$ref": header_ref("X-Request-ID")}}
    if declared.etag:
        headers["ETag"] = {"$ref": header_ref("ETag")}
    if declared.location:
        headers["Location"] = {"$ref": header_ref("Location")}
    if declared.idempotency_key:
        headers["Idempotent-Replayed"] = {"$ref": header_ref("Idempotent-Replayed")}
    if rate_limited:
        for name in RATE_LIMIT_HEADERS:
            headers[name] = {"$ref": header_ref(name)}
    response: dict[str, Any] = {"description": "Success.", "headers": headers}
    if declared.links:
        response["links"] = {
            target: {"operationId": target, "parameters": dict(parameters)}
            for target, parameters in declared.links.items()
        }
    if declared.status == 204:
        response["description"] = "Done; no body."
        return response
    if isinstance(declared.response, Page):
        schema: Any = {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "items": _body_schema(declared.response.item),
                },
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "Pass as `cursor` for the next page; "
                    "null on the last page.",
                },
            },
            "required": ["items", "next_cursor"],
            "additionalProperties": False,
        }
    elif declared.response is not None:
        schema = _body_schema(declared.response)
    else:
        schema = {"type": "string"}
    response["content"] = {media: {"schema": schema} for media in declared.media_types}
    return response


def _error_statuses(
    declared: Operation, *, secured: bool, has_path: bool, rate_limited: bool
) -> set[int]:
    statuses = set(declared.errors) | {414, 500}
    if rate_limited:
        statuses.add(429)
    if secured:
        statuses.add(401)
    if has_path:
        statuses.add(404)
    if declared.query is not None:
        statuses.add(400)
    if declared.body is not None:
        statuses |= {400, 413, 415, 422}
    if declared.if_match:
        statuses |= {400, 412}
    if declared.idempotency_key:
        statuses |= {400, 422}
    if declared.database:
        statuses.add(503)
    return statuses


def _operation_object(
    declared: Operation,
    view: Callable[..., Any],
    endpoint: str,
    path_parameters: list[dict[str, Any]],
    *,
    operation_id: str,
    secured: bool,
    rate_limited: bool,
) -> dict[str, Any]:
    # Docstrings use reST ``code``; the document's text is Markdown.
    docstring = (view.__doc__ or endpoint).strip().replace("``", "`")
    summary, _, description = docstring.partition("\n")
    parts = endpoint.split(".")
    parameters: list[Any] = list(path_parameters)
    if declared.query is not None:
        parameters.append({"in": "query", "schema": declared.query})
    if declared.if_match:
        parameters.append("If-Match")
    if declared.idempotency_key:
        parameters.append("Idempotency-Key")
    parameters.append("X-Request-ID")

    success = _success_response(declared, rate_limited=rate_limited)
    responses: dict[str, Any] = {str(declared.status): success}
    statuses = _error_statuses(
        declared,
        secured=secured,
        has_path=bool(path_parameters),
        rate_limited=rate_limited,
    )
    for status in sorted(statuses):
        responses[str(status)] = error_response_name(status)

    result: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary.strip(),
        "tags": [declared.tag or (parts[-2] if len(parts) > 1 else "ops")],
        "parameters": parameters,
        "responses": responses,
    }
    if description.strip():
        result["description"] = " ".join(description.split())
    if declared.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": declared.body}},
        }
    if not secured:
        result["security"] = []
    return result


def build_document(
    app: Flask,
    *,
    requires_token: Callable[[str, Callable[..., Any]], bool],
    is_rate_limited: Callable[[str], bool],
) -> dict[str, Any]:
    """Build the OpenAPI document of every route in ``app.url_map``.

    ``requires_token(endpoint, view)`` and ``is_rate_limited(endpoint)`` are
    the rules the token check and the rate limiter use. Raise
    RouteDocumentationError for a route without ``@operation``.
    """
    spec = APISpec(
        title="Bastion API",
        version=API_VERSION,
        openapi_version="3.1.0",
        plugins=[BastionPlugin(schema_name_resolver=schema_name)],
        info={
            "description": "A multi-tenant API for an organisation's contact "
            "records. Every error has the `Error` shape; `fields` appears only "
            "on 422. No string in a request may contain NUL (U+0000) or an "
            "unpaired surrogate: such a body or query is a 400."
        },
        security=[{BEARER_SCHEME: []}],
    )
    add_components(spec)
    operation_ids: dict[str, str] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        view = app.view_functions[rule.endpoint]
        declared = getattr(view, "openapi", None)
        if not isinstance(declared, Operation):
            raise RouteDocumentationError(
                f"Route {rule.rule} (endpoint {rule.endpoint}) has no OpenAPI "
                "declaration: add @operation(...) from bastion.openapi to its view."
            )
        path, path_parameters = _openapi_path(rule)
        secured = requires_token(rule.endpoint, view)
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        operations = {}
        for method in methods:
            operation_id = rule.endpoint.rpartition(".")[2]
            if len(methods) > 1:
                operation_id += "_" + method.lower()
            if operation_id in operation_ids:
                raise RouteDocumentationError(
                    f"Endpoints {operation_ids[operation_id]} and {rule.endpoint} "
                    f"share the operationId {operation_id}: rename one view."
                )
            operation_ids[operation_id] = rule.endpoint
            operations[method.lower()] = _operation_object(
                declared,
                view,
                rule.endpoint,
                path_parameters,
                operation_id=operation_id,
                secured=secured,
                rate_limited=is_rate_limited(rule.endpoint),
            )
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    _check_links(document, set(operation_ids))
    return document


def _check_links(document: dict[str, Any], operation_ids: set[str]) -> None:
    for item in document["paths"].values():
        for method in item.values():
            for response in method["responses"].values():
                for link in response.get("links", {}).values():
                    if link["operationId"] not in operation_ids:
                        target = link["operationId"]
                        raise RouteDocumentationError(
                            f"A link names the unknown operationId {target}."
                        )
