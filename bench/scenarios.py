"""The scenarios, one table entry each.

An entry names the wrk script (``lua/<script>.lua``), the server it drives,
the feature it needs and how to build the script's parameters from the
run's fixture. A scenario whose feature the app lacks is reported as "not
available" instead of failing the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.dataset import Shape


@dataclass
class Fixture:
    """The facts about this run that the scenarios build their requests from."""

    shape: Shape
    run_id: str
    threads: int
    # Ids of the contacts of the typical account that GET and PATCH use.
    ids: list[str]
    small_token: str = ""
    big_token: str = ""
    login_email: str = ""
    password: str = ""
    search_query: str = ""
    deep_cursor: str | None = None
    features: set[str] = field(default_factory=set)
    # Hashes one worker computes at once; a worker that receives more
    # concurrent logins returns 503 from its bulkhead by design.
    hash_slots: int = 0

    def auth(self, token: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", **extra}


JSON = "application/json"


@dataclass(frozen=True)
class Scenario:
    key: str
    label: Callable[[Shape], str]
    script: str
    params: Callable[[Fixture], dict[str, Any]]
    # "bare" drives the bare baseline; "app" drives Bastion.
    server: str = "app"
    # A feature name from Fixture.features that the route needs.
    requires: str | None = None
    rows_per_request: int = 1
    # Run a login flood alongside and report this scenario under it.
    during_login_flood: bool = False
    # Connections to open instead of the run's default, given the fixture.
    connections: Callable[[Fixture], int] | None = None


def _get_by_id(
    prefix: str, *, authenticated: bool
) -> Callable[[Fixture], dict[str, Any]]:
    def build(fixture: Fixture) -> dict[str, Any]:
        headers = fixture.auth(fixture.small_token) if authenticated else {}
        return {"path": prefix, "ids": fixture.ids, "headers": headers}

    return build


def _list(
    fixture: Fixture, *, cursor: str | None = None, q: str | None = None
) -> dict[str, Any]:
    path = "/api/v1/contacts?limit=50"
    if cursor:
        path += f"&cursor={cursor}"
    if q:
        path += f"&q={q}"
    return {"method": "GET", "path": path, "headers": fixture.auth(fixture.big_token)}


def _search_small(fixture: Fixture) -> dict[str, Any]:
    return {
        "method": "GET",
        "path": f"/api/v1/contacts?limit=50&q={fixture.search_query}",
        "headers": fixture.auth(fixture.small_token),
    }


def _write(path: str) -> Callable[[Fixture], dict[str, Any]]:
    def build(fixture: Fixture) -> dict[str, Any]:
        return {
            "path": path,
            "ids": fixture.ids,
            "rows": IMPORT_ROWS,
            "run_id": fixture.run_id,
            "threads": fixture.threads,
            "initial_etag": '"1"',
            "headers": fixture.auth(fixture.small_token, **{"Content-Type": JSON}),
        }

    return build


def login_params(fixture: Fixture) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/api/v1/auth/login",
        "body": f'{{"email":"{fixture.login_email}","password":"{fixture.password}"}}',
        "headers": {"Content-Type": JSON},
    }


IMPORT_ROWS = 1000

SCENARIOS = (
    Scenario(
        "bare",
        lambda s: "bare Flask + psycopg_pool, GET /contacts/{id}",
        "get_by_id",
        _get_by_id("/contacts/", authenticated=False),
        server="bare",
    ),
    Scenario(
        "get",
        lambda s: "GET /contacts/{id}",
        "get_by_id",
        _get_by_id("/api/v1/contacts/", authenticated=True),
    ),
    Scenario(
        "list_first",
        lambda s: f"GET /contacts?limit=50, first page of {s.big_account_contacts:,}",
        "fixed",
        lambda f: _list(f),
    ),
    Scenario(
        "list_deep",
        lambda s: f"GET /contacts?limit=50, page after row {s.deep_offset:,}",
        "fixed",
        lambda f: _list(f, cursor=f.deep_cursor),
        requires="deep_cursor",
    ),
    Scenario(
        "search_small",
        lambda s: f"GET /contacts?q= (3 letters, {s.per_account:,}-row account)",
        "fixed",
        _search_small,
    ),
    Scenario(
        "search_big",
        lambda s: (
            f"GET /contacts?q= (3 letters, {s.big_account_contacts:,}-row account)"
        ),
        "fixed",
        lambda f: _list(f, q=f.search_query),
    ),
    Scenario(
        "create", lambda s: "POST /contacts", "create", _write("/api/v1/contacts")
    ),
    Scenario(
        "patch",
        lambda s: "PATCH /contacts/{id} with If-Match",
        "patch",
        _write("/api/v1/contacts/"),
    ),
    Scenario(
        "import",
        lambda s: f"POST /contacts/import ({IMPORT_ROWS:,} new rows)",
        "import",
        _write("/api/v1/contacts/import"),
        requires="import",
        rows_per_request=IMPORT_ROWS,
    ),
    Scenario(
        "login",
        lambda s: "POST /auth/login",
        "fixed",
        login_params,
        # No more clients than one worker's hash slots, so that no worker
        # rejects a login even if every connection lands on it: this
        # measures hashing throughput, not the bulkhead.
        connections=lambda f: f.hash_slots or 2,
    ),
    Scenario(
        "get_flood",
        lambda s: "GET /contacts/{id} during a login flood",
        "get_by_id",
        _get_by_id("/api/v1/contacts/", authenticated=True),
        during_login_flood=True,
    ),
)
