"""schemathesis against a live gunicorn: the API keeps to its own document.

Every operation in the document is fuzzed with a real owner's token, with
valid and invalid inputs, and each response is checked for server errors,
statuses the document does not list, content types, required headers,
bodies that break the response schema, invalid input that is accepted,
methods the document does not list that are not a 405 with ``Allow``, a
deleted resource that is still served, and protected operations that
respond without a token. The stateful phase follows the document's links, so the
by-id operations also see ids that exist. ``FUZZ_MAX_EXAMPLES`` (10 under
``make test``, 100 under ``make fuzz``) bounds the generated cases per
operation and phase. Without ``FUZZ_SEED`` the run is derandomized and the
same every time; with it, the seed picks the cases, and the same seed picks
them again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from bastion.services.login_throttle import client_network
from tests.conftest import PASSWORD
from tests.processes import sign_up

ROOT = Path(__file__).resolve().parents[1]
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
SEED = os.environ.get("FUZZ_SEED")
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Every built-in check but positive_data_acceptance, which expects 2xx for
# any schema-valid request, where a random id is a 404 and a random
# password a 401 by design.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
)


def seed_account(api: str, token: str) -> None:
    """Give the fuzzed account a member and contacts, so lists have items."""
    headers = {"Authorization": f"Bearer {token}"}
    member = requests.post(
        f"{api}/users",
        json={
            "name": "Member",
            "email": f"member-{uuid.uuid4().hex[:12]}@example.com",
            "role": "member",
            "password": PASSWORD,
        },
        headers=headers,
        timeout=10,
    )
    assert member.status_code == 201, member.text
    for index, notes in enumerate(("Met at a conference.", None)):
        contact = requests.post(
            f"{api}/contacts",
            json={
                "name": "Ada",
                "email": f"contact-{index}@example.com",
                "notes": notes,
                "tags": ["x"],
            },
            headers=headers,
            timeout=10,
        )
        assert contact.status_code == 201, contact.text


def schemathesis_command(base: str, report_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{base}/api/v1/openapi.json",
        "--url",
        base,
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        *(["--seed", SEED] if SEED else ["--generation-deterministic"]),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report_dir),
    ]


@pytest.fixture()
def loopback_unlocked(db_conn):
    """Lift the login lock the fuzzer's failed logins put on 127.0.0.1.

    Later tests log in to their own gunicorn from that address.
    """
    yield
    db_conn.execute(
        "DELETE FROM login_failures WHERE client_network = %s",
        (client_network("127.0.0.1"),),
    )


def test_api_keeps_to_its_openapi_document(live_server, tmp_path, loopback_unlocked):
    fuzzed = sign_up(live_server)
    seed_account(fuzzed.api, fuzzed.token)
    spare = sign_up(live_server)
    env = {
        **os.environ,
        "FUZZ_BASE_URL": live_server,
        "FUZZ_TOKEN": fuzzed.token,
        "FUZZ_SPARE_EMAIL": spare.email,
        "FUZZ_PASSWORD": PASSWORD,
        "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
        "PYTHONPATH": str(ROOT),
    }

    result = subprocess.run(
        schemathesis_command(live_server, tmp_path),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    print(result.stdout[-30000:])
    print(result.stderr[-5000:], file=sys.stderr)
    assert result.returncode == 0, "schemathesis reported findings; see its output"
