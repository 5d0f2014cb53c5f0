"""Measure GET /contacts/{id} latency through nginx with and without a login flood.

Starts the deployment the nginx end-to-end test starts (nginx from
deploy/nginx.conf, two gunicorn instances with their production defaults,
a private Redis) on a database of its own, then runs bounded phases:

1. the login limit: one client address sends more logins than the limit
   allows, and the allowed count is compared with the limit;
2. a reader alone: one keep-alive client fetching one contact;
3. the same reader while flood threads send logins with wrong passwords,
   each from a new loopback address so the per-address limit does not turn
   them away and every allowed login costs a bcrypt hash.

Phases 2 and 3 run for each PASSWORD_HASH_CONCURRENCY given; 4, as wide as
a worker's threads, is how the app behaves without a bulkhead.

Usage: ``make bench``, with options in BENCH_ARGS (see ``-h``).
"""

from __future__ import annotations

import argparse
import collections
import http.client
import itertools
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from limits import parse_many  # noqa: E402

from bastion import create_app, migrate  # noqa: E402 - needs the path above
from bastion.config import Settings  # noqa: E402
from tests.conftest import PASSWORD, UNREACHED_RATE_LIMITS, recreate_database  # noqa: E402
from tests.processes import RedisServer  # noqa: E402
from tests.servers import Gunicorn, Nginx, gunicorn_env, request  # noqa: E402


def flood_addresses() -> itertools.cycle[str]:
    # 127.0.1.1 - 127.0.8.254: about 2,000 loopback addresses.
    return itertools.cycle(
        f"127.0.{third}.{fourth}" for third in range(1, 9) for fourth in range(1, 255)
    )


class Deployment:
    """nginx, two gunicorn instances and Redis on one benchmark database."""

    def __init__(self, workdir: Path, database_url: str, kek: str, **env: str):
        self.redis = RedisServer()
        self.redis.start()
        base_env = gunicorn_env(
            database_url,
            kek,
            BASTION_ENV="production",
            BCRYPT_ROUNDS="12",
            TRUSTED_PROXY_COUNT="1",
            RATELIMIT_STORAGE_URI=self.redis.url,
            **env,
        )
        # Every limit keeps its default except RATELIMIT_DEFAULT, because the
        # reader is one busy user.
        for name in UNREACHED_RATE_LIMITS:
            base_env.pop(name, None)
        base_env["RATELIMIT_DEFAULT"] = "100000 per minute"
        # The production defaults apply: workers and threads from gunicorn.conf.py.
        base_env.pop("GUNICORN_WORKERS", None)
        self.instances = [
            Gunicorn(base_env, workdir / f"gunicorn-{n}.log") for n in (1, 2)
        ]
        for instance in self.instances:
            instance.start()
        self.nginx = Nginx(workdir / "nginx", [i.port for i in self.instances])
        self.nginx.start()
        self.tls = self.nginx.tls_context()

    def call(self, method, path, *, body=None, headers=None, source="127.0.0.2"):
        status, response_headers, raw = request(
            "127.0.0.1",
            self.nginx.https_port,
            method,
            path,
            body=body,
            headers=headers,
            source=source,
            tls=self.tls,
        )
        return status, response_headers, json.loads(raw) if raw else None

    def stop(self) -> None:
        self.nginx.stop()
        for instance in self.instances:
            instance.stop()
        self.redis.stop()


def prepare_account(deployment: Deployment) -> tuple[dict[str, str], str]:
    email = f"bench-{secrets.token_hex(4)}@example.com"
    status, _, _ = deployment.call(
        "POST",
        "/api/v1/auth/signup",
        body={
            "account_name": "Bench",
            "name": "Ada",
            "email": email,
            "password": PASSWORD,
        },
    )
    assert status == 201, status
    status, _, tokens = deployment.call(
        "POST", "/api/v1/auth/login", body={"email": email, "password": PASSWORD}
    )
    assert status == 200, status
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    status, response_headers, _ = deployment.call(
        "POST", "/api/v1/contacts", body={"name": "Grace"}, headers=headers
    )
    assert status == 201, status
    return headers, response_headers["Location"]


def measure_login_limit(deployment: Deployment, limit: int) -> dict:
    """Send twice the limit from one address; count what each instance served."""
    statuses = collections.Counter()
    request_ids = set()
    for attempt in range(2 * limit):
        request_id = f"limit-{attempt}-{secrets.token_hex(4)}"
        request_ids.add(request_id)
        status, _, _ = deployment.call(
            "POST",
            "/api/v1/auth/login",
            source="127.0.0.3",
            body={"email": f"nobody-{attempt}@example.com", "password": "wrong"},
            headers={
                "X-Request-ID": request_id,
                "X-Forwarded-For": f"10.0.0.{attempt}",
            },
        )
        statuses[status] += 1
    per_instance = []
    for instance in deployment.instances:
        served = collections.Counter(
            record["status"]
            for record in instance.log_records()
            if record.get("event") == "request" and record["request_id"] in request_ids
        )
        per_instance.append(dict(served))
    return {"sent": 2 * limit, "statuses": dict(statuses), "per_instance": per_instance}


def read_latencies(deployment, headers, path, stop: threading.Event, pause: float):
    connection = http.client.HTTPSConnection(
        "127.0.0.1",
        deployment.nginx.https_port,
        timeout=10,
        source_address=("127.0.0.2", 0),
        context=deployment.tls,
    )
    latencies, errors = [], collections.Counter()
    while not stop.is_set():
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status == 200:
            latencies.append(elapsed)
        else:
            errors[response.status] += 1
        time.sleep(pause)
    connection.close()
    return latencies, errors


def flood(deployment, stop: threading.Event, counts: collections.Counter, lock):
    addresses = flood_addresses()
    while not stop.is_set():
        with lock:
            source = next(addresses)
        try:
            status, _, _ = deployment.call(
                "POST",
                "/api/v1/auth/login",
                source=source,
                body={"email": f"{secrets.token_hex(6)}@example.com", "password": "x"},
            )
        except OSError:
            status = "connection error"
        with lock:
            counts[status] += 1


def run_phase(deployment, headers, path, *, seconds, flood_threads, pause):
    stop = threading.Event()
    counts: collections.Counter = collections.Counter()
    lock = threading.Lock()
    flooders = [
        threading.Thread(target=flood, args=(deployment, stop, counts, lock))
        for _ in range(flood_threads)
    ]
    for thread in flooders:
        thread.start()
    time.sleep(1 if flood_threads else 0)
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    latencies, errors = read_latencies(deployment, headers, path, stop, pause)
    for thread in flooders:
        thread.join(timeout=30)
    if len(latencies) < 2:
        raise RuntimeError(f"too few successful reads: {len(latencies)}, {errors}")
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "reads": len(latencies),
        "read_errors": dict(errors),
        "p50_ms": round(quantiles[49], 1),
        "p95_ms": round(quantiles[94], 1),
        "p99_ms": round(quantiles[98], 1),
        "max_ms": round(max(latencies), 1),
        "flood_logins": dict(counts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=20, help="length of each phase"
    )
    parser.add_argument("--flood-threads", type=int, default=16)
    parser.add_argument(
        "--hash-slots",
        default="1,2,4",
        help="comma-separated PASSWORD_HASH_CONCURRENCY values to compare; "
        "4 equals the worker's threads, which is no bulkhead at all",
    )
    parser.add_argument(
        "--pause", type=float, default=0.02, help="reader's pause between reads, s"
    )
    args = parser.parse_args()

    base_url = os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bastion"
    )
    name = os.environ.get("BENCH_DATABASE_NAME", "bastion_bench_flood")
    database_url = migrate.with_database(base_url, name)
    recreate_database(database_url)
    migrate.upgrade(database_url)
    kek = secrets.token_urlsafe(32)
    settings = Settings.from_env(
        {
            "BASTION_ENV": "test",
            "DATABASE_URL": database_url,
            "SECRET_KEY": "s" * 40,
            "JWT_KEY_ENCRYPTION_KEY": kek,
        }
    )
    setup_app = create_app(settings)
    setup_app.extensions["bastion"].keys.rotate_key()
    setup_app.extensions["bastion"].db.close()

    results: dict = {"cores": len(os.sched_getaffinity(0))}
    for hash_slots in args.hash_slots.split(","):
        label = f"PASSWORD_HASH_CONCURRENCY={hash_slots}"
        with tempfile.TemporaryDirectory(prefix="bastion-bench-") as workdir:
            deployment = Deployment(
                Path(workdir), database_url, kek, PASSWORD_HASH_CONCURRENCY=hash_slots
            )
            try:
                headers, path = prepare_account(deployment)
                if "login_limit" not in results:
                    # The default per-address login limit, per minute.
                    limit = parse_many(settings.ratelimit_login_per_address)[0]
                    results["login_limit"] = measure_login_limit(
                        deployment, limit.amount
                    )
                results[label] = {
                    "without_flood": run_phase(
                        deployment,
                        headers,
                        path,
                        seconds=args.seconds,
                        flood_threads=0,
                        pause=args.pause,
                    ),
                    "with_flood": run_phase(
                        deployment,
                        headers,
                        path,
                        seconds=args.seconds,
                        flood_threads=args.flood_threads,
                        pause=args.pause,
                    ),
                }
            finally:
                deployment.stop()
        print(json.dumps({label: results[label]}), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
