"""Requests that fail mid-transaction leave the pool full and no session open."""

from __future__ import annotations

import json
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import Gunicorn, Tenant, pid_owning_port, sign_up, wait_for

STATEMENT_TIMEOUT_MS = 100
POOL_MAX_SIZE = 2
# Blocked requests wait out the statement timeout without using a core, so
# more workers than cores keep the run short.
WORKERS = 4
# 1,000 requests: a unique violation inside a write transaction, a lock wait
# cut by the statement timeout, a client gone while its request waits on
# the lock, and a client gone halfway through sending its body.
MIX = {"raise": 400, "timeout": 300, "gone_waiting": 150, "gone_sending": 150}
MAX_SECONDS = 120


def _raw_patch(
    server: Gunicorn, tenant: Tenant, contact_id: str, body: bytes, declared_length: int
) -> bytes:
    head = (
        f"PATCH /api/v1/contacts/{contact_id} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {tenant.token}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {declared_length}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def _send_and_leave(payload: bytes, port: int, linger: float) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        time.sleep(linger)


def _metric_values(server: Gunicorn) -> dict[str, float]:
    response = requests.get(f"{server.base_url}/metrics", timeout=5)
    assert response.status_code == 200
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if not sample.labels:
                values[sample.name] = sample.value
    return values


def test_failed_requests_return_connections(
    start_gunicorn, db_conn, admin_database_url, report
):
    server = start_gunicorn(
        GUNICORN_WORKERS=str(WORKERS),
        DB_POOL_MAX_SIZE=str(POOL_MAX_SIZE),
        DB_STATEMENT_TIMEOUT_MS=str(STATEMENT_TIMEOUT_MS),
        METRICS_ALLOWED_NETWORKS="127.0.0.1/32",
    )
    tenant = sign_up(server.base_url)
    first = tenant.create_contact()
    second = tenant.create_contact()
    locked = tenant.create_contact()

    def send(kind: str) -> int | None:
        if time.monotonic() > deadline:
            return -1
        if kind == "raise":
            response = requests.patch(
                f"{tenant.api}/contacts/{first['id']}",
                json={"email": second["email"]},
                headers=tenant.headers,
                timeout=10,
            )
            return response.status_code
        if kind == "timeout":
            response = requests.patch(
                f"{tenant.api}/contacts/{locked['id']}",
                json={"name": "Never"},
                headers=tenant.headers,
                timeout=10,
            )
            assert response.headers.get("Retry-After")
            return response.status_code
        if kind == "gone_waiting":
            body = b'{"name": "Gone"}'
            payload = _raw_patch(server, tenant, locked["id"], body, len(body))
            _send_and_leave(payload, server.port, linger=0.02)
            return None
        body = b'{"name": "Half'
        payload = _raw_patch(server, tenant, locked["id"], body, 200)
        _send_and_leave(payload, server.port, linger=0.0)
        return None

    kinds = [kind for kind, count in MIX.items() for _ in range(count)]
    random.Random(7).shuffle(kinds)  # noqa: S311 - order only, not a secret
    holder = psycopg.connect(admin_database_url)
    try:
        # The test's own transaction holds the row lock that requests wait on.
        holder.execute(
            "SELECT id FROM contacts WHERE id = %s FOR UPDATE", (locked["id"],)
        )
        started = time.monotonic()
        deadline = started + MAX_SECONDS
        with ThreadPoolExecutor(max_workers=WORKERS + 2) as pool:
            statuses = list(pool.map(send, kinds))
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()

    assert -1 not in statuses, "the run hit its time limit"
    by_kind: dict[str, set] = {}
    for kind, status in zip(kinds, statuses, strict=True):
        by_kind.setdefault(kind, set()).add(status)
    assert by_kind["raise"] == {409}
    assert by_kind["timeout"] == {503}

    def settled() -> bool:
        values = _metric_values(server)
        return values["bastion_db_pool_connections_in_use"] == 0

    wait_for(settled, timeout=10, what="pool back to idle")
    values = _metric_values(server)
    assert values["bastion_db_pool_requests_waiting"] == 0
    assert 1 <= values["bastion_db_pool_connections"] <= WORKERS * POOL_MAX_SIZE

    workers = server.worker_pids()
    sessions = [
        (pid, state)
        for port, pid, state in db_conn.execute(
            "SELECT client_port, pid, state FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'bastion'"
        )
        if pid_owning_port(port, workers) is not None
    ]
    assert len(sessions) == values["bastion_db_pool_connections"]
    assert [s for s in sessions if s[1].startswith("idle in transaction")] == []
    assert all(state == "idle" for _, state in sessions)

    records = server.log_records()
    requests_logged = [r for r in records if r.get("event") == "request"]
    assert not [r for r in requests_logged if r["status"] >= 500 and r["status"] != 503]
    sqlstates = [r.get("sqlstate") for r in records if r.get("event") == "db_error"]
    assert sqlstates.count("23505") >= MIX["raise"]
    assert sqlstates.count("57014") >= MIX["timeout"]

    # Both workers still serve from their pools.
    for _ in range(10):
        response = requests.get(
            f"{tenant.api}/contacts/{locked['id']}", headers=tenant.headers, timeout=5
        )
        assert response.status_code == 200
    report(
        requests=len(kinds),
        mix=json.dumps(MIX),
        seconds=round(elapsed, 1),
        statement_timeouts_logged=sqlstates.count("57014"),
        pool_connections=int(values["bastion_db_pool_connections"]),
        pool_in_use=int(values["bastion_db_pool_connections_in_use"]),
        pool_waiting=int(values["bastion_db_pool_requests_waiting"]),
        sessions_idle_in_transaction=0,
        sessions=len(sessions),
    )
