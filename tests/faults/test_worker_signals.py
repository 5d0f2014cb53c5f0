"""gunicorn stops gracefully on SIGTERM and replaces a worker lost to SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from tests.faults.load import Load
from tests.processes import pid_owning_port, sign_up, wait_for

GRACEFUL_TIMEOUT = 10


def _backends_waiting_on_locks(db_conn) -> list[tuple[int, int]]:
    """Return (backend pid, client port) of app sessions waiting on a lock."""
    return list(
        db_conn.execute(
            "SELECT pid, client_port FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'bastion' "
            "AND wait_event_type = 'Lock'"
        )
    )


def test_sigterm_lets_in_flight_requests_finish(
    start_gunicorn, db_conn, admin_database_url, report
):
    server = start_gunicorn(
        GUNICORN_WORKERS="3",
        GUNICORN_GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT),
        # Trust the client's X-Request-ID, so that the log shows which
        # requests reached a worker.
        TRUSTED_PROXY_COUNT="1",
    )
    tenant = sign_up(server.base_url)
    locked = tenant.create_contact()
    other = tenant.create_contact()

    def patch_locked(key: str) -> requests.Response:
        return requests.patch(
            f"{tenant.api}/contacts/{locked['id']}",
            json={"name": key},
            headers={**tenant.headers, "X-Request-ID": key},
            timeout=GRACEFUL_TIMEOUT + 5,
        )

    def read_other(key: str) -> requests.Response:
        return requests.get(
            f"{tenant.api}/contacts/{other['id']}",
            headers={**tenant.headers, "X-Request-ID": key},
            timeout=GRACEFUL_TIMEOUT + 5,
        )

    holder = psycopg.connect(admin_database_url)
    load = Load(max_requests_per_thread=500, max_seconds=30)
    load.add("read", read_other, threads=2)
    try:
        holder.execute(
            "SELECT id FROM contacts WHERE id = %s FOR UPDATE", (locked["id"],)
        )
        with ThreadPoolExecutor(max_workers=2) as pool:
            blocked = [pool.submit(patch_locked, f"inflight-{n:04d}") for n in (1, 2)]
            wait_for(
                lambda: len(_backends_waiting_on_locks(db_conn)) == 2,
                timeout=10,
                what="two requests waiting on the row lock",
            )
            load.start()
            time.sleep(1.0)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            time.sleep(1.0)
            holder.rollback()
            results = [
                future.result(timeout=GRACEFUL_TIMEOUT + 5) for future in blocked
            ]
        exit_code = server.process.wait(timeout=GRACEFUL_TIMEOUT + 5)
        stopped_after = time.monotonic() - signalled
    finally:
        load.stop()
        holder.close()

    assert [r.status_code for r in results] == [200, 200]
    assert exit_code == 0
    assert stopped_after < GRACEFUL_TIMEOUT

    handled = {r["request_id"]: r for r in server.log_records("request")}
    outcomes = load.snapshot()
    failed = [o for o in outcomes if o.error]
    # Every request a worker accepted got its whole response. A connection
    # that failed never reached a worker, because it waited in the listen
    # backlog or came after the listener closed.
    for outcome in outcomes:
        if outcome.key in handled:
            assert outcome.status == handled[outcome.key]["status"], outcome
    for outcome in failed:
        assert outcome.key not in handled, outcome
    refused = [o for o in failed if "refused" in o.error_detail.lower()]
    report(
        in_flight_completed=len(results),
        shutdown_s=round(stopped_after, 2),
        load_requests=len(outcomes),
        load_answered=len(outcomes) - len(failed),
        load_refused=len(refused),
        load_reset_before_accept=len(failed) - len(refused),
    )


def test_sigkill_mid_request_rolls_back(
    start_gunicorn, db_conn, admin_database_url, report
):
    server = start_gunicorn(GUNICORN_WORKERS="2")
    tenant = sign_up(server.base_url)
    contact = tenant.create_contact()
    workers = server.worker_pids()

    holder = psycopg.connect(admin_database_url)
    try:
        # The delete marks the row, then blocks writing its audit event, so
        # the worker dies with half of its transaction done.
        holder.execute("LOCK TABLE audit_events IN SHARE MODE")
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(
                requests.delete,
                f"{tenant.api}/contacts/{contact['id']}",
                headers=tenant.headers,
                timeout=20,
            )
            wait_for(
                lambda: len(_backends_waiting_on_locks(db_conn)) == 1,
                timeout=10,
                what="the delete waiting on the audit lock",
            )
            [(backend, client_port)] = _backends_waiting_on_locks(db_conn)
            victim = pid_owning_port(client_port, workers)
            assert victim is not None
            os.kill(victim, signal.SIGKILL)
            with pytest.raises(requests.ConnectionError):
                pending.result(timeout=20)
    finally:
        holder.rollback()
        holder.close()

    replaced_after = wait_for(
        lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(),
        timeout=15,
        what="a replacement worker",
    )
    gone_after = wait_for(
        lambda: (
            db_conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (backend,)
            ).fetchone()
            == (0,)
        ),
        timeout=10,
        what="the dead worker's session to end",
    )
    deleted_at, version = db_conn.execute(
        "SELECT deleted_at, version FROM contacts WHERE id = %s", (contact["id"],)
    ).fetchone()
    assert deleted_at is None
    assert version == 1
    audit = db_conn.execute(
        "SELECT count(*) FROM audit_events WHERE target_id = %s", (contact["id"],)
    ).fetchone()
    assert audit == (0,)
    # The row lock went with the rolled back transaction.
    again = requests.delete(
        f"{tenant.api}/contacts/{contact['id']}", headers=tenant.headers, timeout=10
    )
    assert again.status_code == 204
    report(
        killed_worker=victim,
        replaced_after_s=round(replaced_after, 2),
        session_gone_after_s=round(gone_after, 2),
        rolled_back=True,
    )
