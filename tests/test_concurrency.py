"""Concurrent clients against a real gunicorn: no lost update, no double write."""

from __future__ import annotations

import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import PASSWORD, unique_email
from tests.servers import Gunicorn, gunicorn_env

CLIENTS = 50
# Bounds of the read-modify-write loop, per client and for the whole test.
MAX_ATTEMPTS = 200
DEADLINE_SECONDS = 60


@pytest.fixture(scope="module")
def gunicorn_url(app, database_url, tmp_path_factory):
    """A gunicorn with 2 workers of 4 threads, so requests really overlap."""
    env = gunicorn_env(
        database_url,
        app.extensions["bastion"].settings.jwt_key_encryption_key,
        GUNICORN_WORKERS="2",
        GUNICORN_WORKER_CLASS="gthread",
        GUNICORN_THREADS="4",
        DB_POOL_MAX_SIZE="4",
    )
    server = Gunicorn(env, tmp_path_factory.mktemp("gunicorn") / "gunicorn.log")
    try:
        server.start(ready_path="/readyz")
        yield f"{server.base_url}/api/v1"
    finally:
        server.stop()


@pytest.fixture()
def member_headers(gunicorn_url):
    email = unique_email("concurrent")
    signup = requests.post(
        f"{gunicorn_url}/auth/signup",
        json={"account_name": "C", "name": "C", "email": email, "password": PASSWORD},
        timeout=10,
    )
    assert signup.status_code == 201
    tokens = requests.post(
        f"{gunicorn_url}/auth/login",
        json={"email": email, "password": PASSWORD},
        timeout=10,
    )
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def append_tag(url, headers, tag, deadline, stats):
    """GET, add ``tag``, PATCH with If-Match; retry on 412 within the bounds."""
    session = requests.Session()
    for _ in range(MAX_ATTEMPTS):
        if time.monotonic() > deadline:
            break
        current = session.get(url, headers=headers, timeout=10)
        assert current.status_code == 200
        tags = current.json()["tags"]
        response = session.patch(
            url,
            json={"tags": [*tags, tag]},
            headers={**headers, "If-Match": current.headers["ETag"]},
            timeout=10,
        )
        if response.status_code == 200:
            return
        assert response.status_code == 412, response.text
        with stats["lock"]:
            stats["conflicts"] += 1
        time.sleep(random.uniform(0, 0.02))  # noqa: S311 - jitter, not crypto
    raise AssertionError(f"{tag} gave up after {MAX_ATTEMPTS} attempts")


def test_concurrent_read_modify_write_loses_no_update(gunicorn_url, member_headers):
    created = requests.post(
        f"{gunicorn_url}/contacts",
        json={"name": "Shared", "tags": []},
        headers=member_headers,
        timeout=10,
    )
    url = f"{gunicorn_url}/contacts/{created.json()['id']}"
    stats = {"conflicts": 0, "lock": threading.Lock()}
    deadline = time.monotonic() + DEADLINE_SECONDS

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        futures = [
            pool.submit(append_tag, url, member_headers, f"c{n}", deadline, stats)
            for n in range(CLIENTS)
        ]
        for future in futures:
            future.result()

    final = requests.get(url, headers=member_headers, timeout=10)
    assert sorted(final.json()["tags"]) == sorted(f"c{n}" for n in range(CLIENTS))
    # One version per successful PATCH, on top of version 1 from the POST.
    assert final.headers["ETag"] == f'"{CLIENTS + 1}"'
    # Reported with -rP: how often If-Match turned a stale write away.
    print(f"412 conflicts retried: {stats['conflicts']}")
    assert stats["conflicts"] > 0


def test_concurrent_retries_with_one_key_write_one_row(
    gunicorn_url, member_headers, db_conn
):
    email = unique_email("once")
    headers = {**member_headers, "Idempotency-Key": secrets.token_hex(16)}
    barrier = threading.Barrier(10)

    def post():
        barrier.wait(10)
        return requests.post(
            f"{gunicorn_url}/contacts",
            json={"name": "Once", "email": email},
            headers=headers,
            timeout=10,
        )

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda _: post(), range(10)))

    statuses = [response.status_code for response in responses]
    assert statuses == [201] * 10
    assert len({response.json()["id"] for response in responses}) == 1
    replayed = [r for r in responses if r.headers.get("Idempotent-Replayed")]
    assert len(replayed) == 9
    assert db_conn.execute(
        "SELECT count(*) FROM contacts WHERE email = %s", (email,)
    ).fetchone() == (1,)
