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

LOGOUT_PATH = "/api/v1/auth/logout"


def spare_session_token() -> str:
    """Log in to the spare account and return a new session's access token."""
    response = requests.post(
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
