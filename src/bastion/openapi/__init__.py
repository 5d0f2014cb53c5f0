"""The OpenAPI 3.1 document, built from the routes and their marshmallow schemas.

Each view declares its contract with ``@operation(...)`` beside its route:
the schemas it loads and dumps, its success status and the error statuses
that only it can return. ``build_document`` walks ``app.url_map`` and adds
what follows from the route itself: path parameters, the bearer token
requirement, and the statuses every route of that kind can return. Those
are 401 for a protected route, 400/413/415/422 for a JSON body, 404 for a
path parameter, 429 for a rate-limited route, 503 for a route that reads
the database, 500 always, and gunicorn's 414 for a request line over its
limit. A route without a declaration raises ``RouteDocumentationError``,
so no route ships without being in the document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from marshmallow import Schema

F = TypeVar("F", bound=Callable[..., Any])

SchemaLike = type[Schema] | Schema
# A success body: one schema, a tuple of schemas (the body matches one of
# them), or a raw JSON Schema object.
Body = SchemaLike | tuple[SchemaLike, ...] | dict[str, Any]


class RouteDocumentationError(RuntimeError):
    """A route has no ``@operation`` declaration, or two share an operationId."""


@dataclass(frozen=True)
class Page:
    """A list response: ``{"items": [item, ...], "next_cursor": ...}``."""

    item: Body


@dataclass(frozen=True)
class Operation:
    """A view's declared contract; see ``operation``."""

    status: int
    response: Body | Page | None
    body: SchemaLike | dict[str, Any] | None
    query: SchemaLike | None
    errors: frozenset[int]
    if_match: bool
    idempotency_key: bool
    etag: bool
    location: bool
    database: bool
    media_types: tuple[str, ...]
    tag: str | None
    links: Mapping[str, Mapping[str, str]]


def operation(
    *,
    status: int = 200,
    response: Body | Page | None = None,
    body: SchemaLike | dict[str, Any] | None = None,
    query: SchemaLike | None = None,
    errors: Iterable[int] = (),
    if_match: bool = False,
    idempotency_key: bool = False,
    etag: bool = False,
    location: bool = False,
    database: bool = True,
    media_types: tuple[str, ...] = ("application/json",),
    tag: str | None = None,
    links: Mapping[str, Mapping[str, str]] | None = None,
) -> Callable[[F], F]:
    """Declare a view's contract for the OpenAPI document.

    ``response`` is the dump schema of the success body (a tuple means the
    body matches one of them, chosen by the caller's role); ``body`` and
    ``query`` are the load schemas the view validates with. ``errors`` lists
    the statuses the view raises itself; the ones that follow from the route
    are added by ``build_document``. The flags add the request headers
    ``If-Match`` (with 400 and 412) and ``Idempotency-Key`` (with 400 and
    422), and the response headers ``ETag`` and ``Location``. Set
    ``database=False`` for a view that never reads the database (no 503).
    ``links`` maps the operationId of a follow-up operation to its
    parameters, as runtime expressions such as ``$response.body#/id``.
    """
    declared = Operation(
        status=status,
        response=response,
        body=body,
        query=query,
        errors=frozenset(errors),
        if_match=if_match,
        idempotency_key=idempotency_key,
        etag=etag,
        location=location,
        database=database,
        media_types=media_types,
        tag=tag,
        links=links or {},
    )

    def decorate(view: F) -> F:
        view.openapi = declared  # type: ignore[attr-defined]
        return view

    return decorate


def build_document(
    app: Any,
    *,
    requires_token: Callable[[str, Callable[..., Any]], bool],
    is_rate_limited: Callable[[str], bool],
) -> dict[str, Any]:
    """Build the OpenAPI document of every route of ``app``; see ``document``."""
    from bastion.openapi.document import build_document as build

    return build(app, requires_token=requires_token, is_rate_limited=is_rate_limited)
