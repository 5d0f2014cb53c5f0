"""schemathesis hooks for the fuzz test: a real access token for every case.

Loaded by the schemathesis CLI through ``SCHEMATHESIS_HOOKS``. The test
signs up two accounts over HTTP before the run: the fuzzed one, whose
owner's token it passes in ``FUZZ_TOKEN``, and a spare one that only this
module logs in to. The fuzzer can read the first account's emails and lock
them out with failed logins, so no login here uses them.
"""

from __future__ import annotations

import os
from typing import Any

import requests
import schemathesis
from requests.adapters import HTTPAdapter

LOGOUT_PATH = "/api/v1/auth/logout"


# The fuzzer's failed logins lock its client address (127.0.0.1) out of
# logging in, so the spare logins come from another loopback address.
SPARE_SOURCE_ADDRESS = "127.0.0.2"


class SourceAddressAdapter(HTTPAdapter):
    """Send requests from ``SPARE_SOURCE_ADDRESS``."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (SPARE_SOURCE_ADDRESS, 0)
        super().init_poolmanager(*args, **kwargs)


_spare_client = requests.Session()
_spare_client.mount("http://", SourceAddressAdapter())


def spare_session_token() -> str:
    """Log in to the spare account and return a new session's access token."""
    response = _spare_client.post(
        os.environ["FUZZ_BASE_URL"] + "/api/v1/auth/login",
        json={
            "email": os.environ["FUZZ_SPARE_EMAIL"],
            "password": os.environ["FUZZ_PASSWORD"],
        },
        timeout=10,
    )
    if response.status_code != 200:
        raise RuntimeError(f"login failed: {response.status_code} {response.text}")
    token: str = response.json()["access_token"]
    return token


@schemathesis.auth()
class BearerToken:
    """Send the fuzzed owner's token; each logout spends a spare session.

    A logout ends the session whose token it carries, so sending the shared
    token would turn every later case into a 401.
    """

    def get(self, case: Any, ctx: Any) -> str:
        return os.environ["FUZZ_TOKEN"]

    def set(self, case: Any, data: str, ctx: Any) -> None:
        token = spare_session_token() if case.operation.path == LOGOUT_PATH else data
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
