"""Redis stops: the API keeps serving, readiness reports it, one warning each."""

from __future__ import annotations

import shutil
import time
from collections import Counter

import pytest
import requests

from tests.processes import RedisServer, sign_up, wait_for

PROBES = 6


@pytest.fixture()
def redis_server():
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def _probe(base_url: str, count: int) -> list[requests.Response]:
    return [requests.get(f"{base_url}/readyz", timeout=5) for _ in range(count)]


def _warnings_by_worker(server) -> Counter:
    return Counter(
        r["pid"]
        for r in server.log_records("dependency_down")
        if r["dependency"] == "redis"
    )


def _workers_that_failed_probes(server, offset: int) -> set[int]:
    records = server.log_records("request")[offset:]
    return {r["pid"] for r in records if r["route"] == "/readyz" and r["status"] == 503}


def test_redis_outage_keeps_api_serving(start_gunicorn, redis_server, report):
    server = start_gunicorn(
        RATELIMIT_STORAGE_URI=redis_server.url, READINESS_TIMEOUT="0.5"
    )
    tenant = sign_up(server.base_url)
    contact = tenant.create_contact()
    assert all(r.status_code == 200 for r in _probe(server.base_url, 2))

    # Each worker warns once for each outage in which it served a probe.
    expected: Counter = Counter()
    for _ in range(2):
        redis_server.stop()
        offset = len(server.log_records("request"))
        down = _probe(server.base_url, PROBES)
        for response in down:
            assert response.status_code == 503
            assert response.headers["Retry-After"]
            assert "redis" not in response.text.lower()
        # The API itself keeps serving reads and writes.
        read = requests.get(
            f"{tenant.api}/contacts/{contact['id']}", headers=tenant.headers, timeout=5
        )
        assert read.status_code == 200
        tenant.create_contact()
        # Workers write their log lines after answering, so wait until the
        # lines of this outage's probes are all in.
        wait_for(
            lambda offset=offset: len(server.log_records("request")) >= offset + PROBES,
            timeout=5,
            what="request log lines of the probes",
        )
        expected.update(_workers_that_failed_probes(server, offset))
        assert _warnings_by_worker(server) == expected

        redis_server.start()
        started = time.monotonic()
        wait_for(
            lambda: all(r.status_code == 200 for r in _probe(server.base_url, 4)),
            timeout=10,
            what="readiness after Redis returned",
        )
        recovered_after = time.monotonic() - started

    recovered = Counter(r["pid"] for r in server.log_records("dependency_recovered"))
    assert set(recovered.values()) <= {1, 2}
    report(
        outages=2,
        probes_503_per_outage=PROBES,
        warnings_per_worker=dict(_warnings_by_worker(server)),
        ready_again_s=round(recovered_after, 2),
    )
