"""Run the benchmark: ``python -m bench [--smoke] [--seconds N] ...``.

One run builds (or reuses) the database, measures the baselines, starts
Bastion with the production gunicorn.conf.py, drives every scenario with
wrk, and writes the table to ``bench/results/`` (or ``--results-dir``).
Every wrk and pgbench run is bounded by ``--seconds``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from bastion.migrate import with_database
from bastion.passwords import PasswordHasher
from bench import dataset, profile, stack
from bench.dataset import FULL, PASSWORD, SMOKE, Shape
from bench.load import (
    Load,
    Result,
    finish_wrk,
    run_pgbench,
    run_wrk,
    start_wrk,
    unavailable,
    write_script,
)
from bench.report import Run, render
from bench.scenarios import SCENARIOS, Fixture, Scenario, login_params
from bench.servers import ROOT, Gunicorn, PgBouncer, cpu_seconds

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# A three-letter substring that matches about 5 % of the generated names.
SEARCH_QUERY = "ton"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add("--smoke", action="store_true", help="tiny data and 1 s per scenario")
    add("--seconds", type=float, help="seconds per scenario (default 10; smoke 1)")
    add("--connections", type=int, default=8, help="wrk connections (default 8)")
    add("--threads", type=int, default=1, help="wrk threads (default 1)")
    add(
        "--database-name",
        default=os.environ.get("BENCH_DATABASE_NAME"),
        help="database to create, from the template <name>_seed "
        "(default bastion_bench; bastion_bench_smoke with --smoke)",
    )
    add(
        "--pgbouncer",
        action="store_true",
        help="connect both apps through a private pgbouncer in transaction mode",
    )
    add(
        "--profile",
        choices=("wall", "cpu"),
        help="sample the workers with py-spy during GET /contacts/{id}: wall "
        "counts waits too, cpu only samples that hold the GIL",
    )
    add("--only", help="comma-separated scenario keys to run; the baseline always runs")
    add("--label", default="", help="suffix for the result file name")
    add(
        "--results-dir",
        type=Path,
        default=ROOT / "bench" / "results",
        help="directory for the Markdown result (default bench/results)",
    )
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 1.0 if args.smoke else 10.0
    if args.database_name is None:
        args.database_name = "bastion_bench_smoke" if args.smoke else "bastion_bench"
    return args


def log(message: str) -> None:
    print(f"bench: {message}", flush=True)


def git_commit() -> str:
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.stdout.strip() or "unknown"


def measure_hash_seconds(rounds: int) -> float:
    """Return the median time of one password verification at ``rounds``."""
    hasher = PasswordHasher(rounds)
    stored = hasher.hash(PASSWORD)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        hasher.verify(PASSWORD, stored)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@dataclass
class Bench:
    """The state of one run."""

    args: argparse.Namespace
    shape: Shape
    load: Load
    server_url: str
    work_dir: Path
    fixture: Fixture
    run: Run
    bare_database_url: str = ""

    @property
    def database_url(self) -> str:
        return with_database(self.server_url, self.args.database_name)

    def fact(self, name: str, value: str) -> None:
        self.run.facts.append((name, value))

    def wanted(self, key: str) -> bool:
        only = self.args.only
        return only is None or key in only.split(",")

    def scenario(self, scenario: Scenario, server: Gunicorn) -> None:
        label = scenario.label(self.shape)
        if not self.wanted(scenario.key) and scenario.server != "bare":
            return
        log(f"running {label}")
        workers = server.worker_pids()
        backends = self.backend_pids()
        app_before, db_before = cpu_seconds(workers), cpu_seconds(backends)
        result = run_scenario(
            scenario, self.fixture, server, self.load, self.work_dir, label
        )
        if result.requests:
            app_used = cpu_seconds(workers) - app_before
            db_used = cpu_seconds(backends) - db_before
            result.app_cpu_ms = app_used * 1000 / result.requests
            result.db_cpu_ms = db_used * 1000 / result.requests
        self.run.results[scenario.key] = result

    def backend_pids(self) -> list[int]:
        """Return the PostgreSQL backends connected to the benchmark database."""
        with psycopg.connect(with_database(self.server_url, "postgres")) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s",
                (self.args.database_name,),
            ).fetchall()
        return [row[0] for row in rows]

    def warm_up(self, scenario: Scenario, server: Gunicorn) -> None:
        """Drive ``scenario`` briefly, unrecorded, so every worker has its pool."""
        script = write_script(
            self.work_dir, scenario.script, scenario.params(self.fixture)
        )
        seconds = min(2.0, self.load.seconds)
        run_wrk(server.url, script, dataclasses.replace(self.load, seconds=seconds), "")


def run_scenario(
    scenario: Scenario,
    fixture: Fixture,
    server: Gunicorn,
    load: Load,
    work_dir: Path,
    label: str,
) -> Result:
    if scenario.requires and scenario.requires not in fixture.features:
        return unavailable(
            label, f"the app has no {scenario.requires.replace('_', ' ')}"
        )
    script = write_script(work_dir, scenario.script, scenario.params(fixture))
    if scenario.connections is not None:
        load = dataclasses.replace(load, connections=scenario.connections(fixture))
    if not scenario.during_login_flood:
        return run_wrk(server.url, script, load, label, scenario.rows_per_request)
    flood_script = write_script(work_dir, "fixed", login_params(fixture))
    flood = start_wrk(
        server.url, flood_script, dataclasses.replace(load, seconds=load.seconds + 2)
    )
    try:
        # The flood fills every worker before the measured load starts.
        time.sleep(1.0)
        result = run_wrk(server.url, script, load, label)
    finally:
        flood_result = finish_wrk(flood, "login flood")
    result.note = (
        f"flood alongside: {flood_result.success_rate:.1f} logins/s, "
        f"{flood_result.errors / flood_result.seconds:.1f}/s refused"
    )
    return result


def measure_baselines(bench: Bench, env: dict[str, str]) -> None:
    """Measure the bare app and pgbench on the same SELECT."""
    bare_env = {
        **env,
        "DATABASE_URL": bench.bare_database_url,
        "BENCH_ACCOUNT_ID": dataset.account_id(1),
        # The bare app logs nothing, not even gunicorn's access line.
        "GUNICORN_ACCESSLOG": "",
    }
    bare = Gunicorn("bench.bare_app:app", bare_env, bench.work_dir / "bare.log")
    try:
        bench.fact("bare baseline start to ready", f"{bare.start():.2f} s")
        bench.warm_up(SCENARIOS[0], bare)
        bench.scenario(SCENARIOS[0], bare)
    finally:
        bare.stop()

    if shutil.which("pgbench") is None:
        bench.fact("pgbench", "not installed")
        return
    first, last = bench.shape.contact_range(1)
    script = (
        f"\\set n random({first}, {last})\n"
        "SELECT id, name, email, phone, company, notes, tags, created_by, version, "
        "created_at, updated_at FROM contacts "
        "WHERE id = md5('bench-contact-' || :n)::uuid "
        "AND account_id = md5('bench-account-1')::uuid AND deleted_at IS NULL;\n"
    )
    parts = urlsplit(bench.database_url)
    conninfo = {
        "host": parts.hostname or "127.0.0.1",
        "port": str(parts.port or 5432),
        "user": parts.username or "postgres",
        "dbname": bench.args.database_name,
    }
    for protocol in ("simple", "prepared"):
        key = f"pgbench_{protocol}"
        if bench.wanted(key):
            bench.run.results[key] = run_pgbench(
                label=f"pgbench, same SELECT ({protocol} protocol, direct)",
                conninfo=conninfo,
                script=script,
                protocol=protocol,
                load=bench.load,
                work_dir=bench.work_dir,
            )


def measure_app(bench: Bench, env: dict[str, str]) -> None:
    """Start Bastion and drive every scenario against it."""
    rotate = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "bastion", "keys", "rotate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if rotate.returncode != 0:
        raise RuntimeError(f"flask keys rotate failed:\n{rotate.stderr}")
    app = Gunicorn("wsgi:app", env, bench.work_dir / "bastion.log")
    fixture = bench.fixture
    try:
        bench.run.ready_seconds = app.start()
        fixture.hash_slots = stack.hash_slots(env)
        fixture.small_token = stack.login(app.url, dataset.owner_email(1))
        fixture.big_token = stack.login(app.url, dataset.owner_email(0))
        with psycopg.connect(bench.database_url, autocommit=True) as conn:
            fixture.deep_cursor = stack.deep_cursor(
                conn, bench.shape.deep_offset, env["SECRET_KEY"]
            )
            stack.detect_features(app, fixture, conn, bench.run.facts)
        bench.warm_up(SCENARIOS[1], app)
        for scenario in SCENARIOS[1:]:
            if bench.args.profile and scenario.key == "get":
                output = bench.work_dir / "profile.txt"
                pid = app.process.pid if app.process else 0
                with profile.record(
                    pid, output, bench.load.seconds, cpu=bench.args.profile == "cpu"
                ) as recording:
                    bench.scenario(scenario, app)
                bench.run.profile = recording.top()
                bench.run.profile_kind = (
                    "samples holding the GIL"
                    if bench.args.profile == "cpu"
                    else "all samples, waits included"
                )
            else:
                bench.scenario(scenario, app)
        bench.run.peak_rss_mb = app.peak_rss_mb()
        bench.fact(
            "log file", f"{app.log_path} ({stack.log_lines(app.log_path):,} lines)"
        )
    finally:
        app.stop()


def write_report(bench: Bench) -> Path:
    commit = git_commit()
    now = datetime.now(UTC)
    title = f"Bastion benchmark, {now:%Y-%m-%d %H:%M} UTC, commit {commit}"
    suffix = f"-{bench.args.label}" if bench.args.label else ""
    if bench.args.label:
        title += f", {bench.args.label}"
    if bench.args.smoke:
        title += " (smoke: tiny data, the figures mean nothing)"
        suffix += "-smoke"
    page = render(bench.run, title)
    print(page)
    bench.args.results_dir.mkdir(parents=True, exist_ok=True)
    path = bench.args.results_dir / f"{now:%Y-%m-%d}-{commit}{suffix}.md"
    path.write_text(page)
    return path


def _through(url: str, port: int) -> str:
    """Return ``url`` pointed at a pgbouncer on ``port`` of loopback."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=f"{user}127.0.0.1:{port}").geturl()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like an exception, so every server started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed; `make bench-tools` installs it")
    shape = SMOKE if args.smoke else FULL
    server_url = os.environ.get("BENCH_SERVER_URL", DEFAULT_SERVER_URL)
    work_dir = ROOT / "var" / "bench" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    work_dir.mkdir(parents=True, exist_ok=True)
    first, last = shape.contact_range(1)
    bench = Bench(
        args=args,
        shape=shape,
        load=Load(args.seconds, args.connections, args.threads),
        server_url=server_url,
        work_dir=work_dir,
        fixture=Fixture(
            shape=shape,
            run_id=secrets.token_hex(4),
            threads=args.threads,
            ids=[dataset.contact_id(n) for n in range(first, last + 1)],
            login_email=dataset.owner_email(2),
            password=PASSWORD,
            search_query=SEARCH_QUERY,
        ),
        run=Run(results={}, bare_key="bare", cores=os.cpu_count() or 1),
    )

    seconds = dataset.prepare_database(
        with_database(server_url, "postgres"), args.database_name, shape
    )
    bench.fact(
        "database",
        f"{args.database_name}: {shape.contacts:,} contacts over "
        f"{shape.accounts:,} accounts, ready in {seconds:.1f} s",
    )
    bench.run.hash_seconds = measure_hash_seconds(shape.bcrypt_rounds)
    bench.fact(
        "one password hash",
        f"{bench.run.hash_seconds * 1000:.0f} ms (bcrypt-sha256, cost "
        f"{shape.bcrypt_rounds}, measured in the harness before the load)",
    )
    bench.fact("cores", str(bench.run.cores))
    bench.fact(
        "load",
        f"wrk -t{args.threads} -c{args.connections}, {args.seconds:g} s per "
        "scenario, on the same machine",
    )

    app_url, owner_url = dataset.role_urls(
        server_url, args.database_name, args.database_name
    )
    bouncer = None
    bare_url = bench.database_url
    if args.pgbouncer:
        parts = urlsplit(server_url)
        users = [urlsplit(url).username or "" for url in (app_url, bare_url)]
        bouncer = PgBouncer(server_port=parts.port or 5432, users=users)
        bouncer.start(pool_size=20)
        app_url = _through(app_url, bouncer.port)
        bare_url = _through(bare_url, bouncer.port)
        bench.fact("pgbouncer", f"transaction pooling, port {bouncer.port}, both apps")
    try:
        env = stack.app_environment(
            smoke=args.smoke,
            database_url=app_url,
            migration_database_url=owner_url,
            facts=bench.run.facts,
        )
        if bouncer is not None and "DB_PREPARE_THRESHOLD" not in os.environ:
            # pgbouncer before 1.21 cannot follow server-side prepared
            # statements in transaction mode (Debian 12 ships 1.18).
            env["DB_PREPARE_THRESHOLD"] = "off"
        bench.run.facts += stack.tuning_facts(env)
        # The bare app connects as the superuser, so no row-level security
        # applies to it.
        bench.bare_database_url = bare_url
        measure_baselines(bench, env)
        measure_app(bench, env)
    finally:
        if bouncer is not None:
            bouncer.stop()
    log(f"wrote {write_report(bench)}")
    return 0
