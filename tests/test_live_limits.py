"""Limits of the real gunicorn: every URL the document allows reaches the app."""

from __future__ import annotations

import requests

from tests.processes import sign_up

# 512 characters of four UTF-8 bytes each: 6,144 bytes once percent-encoded,
# more than gunicorn's default request line limit of 4,094 bytes.
LONG_CURSOR = "\U00010000" * 512


def test_longest_documented_query_gets_json_error(live_server):
    tenant = sign_up(live_server)

    response = requests.get(
        f"{tenant.api}/contacts",
        params={"cursor": LONG_CURSOR, "q": "\U00010000" * 100},
        headers=tenant.headers,
        timeout=10,
    )

    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["message"].startswith(
        "Invalid query parameter cursor:"
    )
