"""The interactive API reference at ``/docs``, served from installed assets.

Swagger UI's files come from the pinned ``flask-swagger-ui`` package (only
its ``dist`` folder is used); no asset is loaded from another origin. The
page's Content-Security-Policy allows scripts, styles, images and requests
from this origin only; every other route keeps the strict API policy.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from flask import Blueprint, Response

from bastion.openapi import operation

bp = Blueprint("docs", __name__)

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

_SWAGGER_UI = files("flask_swagger_ui") / "dist"
_OWN = files("bastion") / "assets"

# Name in the URL -> (file, media type). Nothing outside this table is served.
ASSETS = {
    "swagger-ui.css": (_SWAGGER_UI / "swagger-ui.css", "text/css"),
    "swagger-ui-bundle.js": (_SWAGGER_UI / "swagger-ui-bundle.js", "text/javascript"),
    "docs.js": (_OWN / "docs.js", "text/javascript"),
}
ASSET_MAX_AGE = 3600


@cache
def _read(name: str) -> bytes:
    return ASSETS[name][0].read_bytes()


@bp.get("/docs")
@operation(media_types=("text/html",), database=False)
def docs_page() -> Response:
    """Show the interactive API reference."""
    response = Response((_OWN / "docs.html").read_bytes(), mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


# The route matches only the names in ASSETS; any other name is a 404.
_ASSET_RULE = "/docs/assets/<any({}):name>".format(", ".join(map(repr, ASSETS)))


@bp.get(_ASSET_RULE)
@operation(media_types=("text/css", "text/javascript"), database=False)
def docs_asset(name: str) -> Response:
    """Return a script or stylesheet of the API reference page."""
    response = Response(_read(name), mimetype=ASSETS[name][1])
    response.headers["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE}"
    return response
