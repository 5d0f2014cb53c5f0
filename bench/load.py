"""Drive load with wrk and pgbench and read their figures back."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).resolve().parent / "lua"


@dataclass
class Result:
    """One row of the table."""

    label: str
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    rows_per_request: int = 1
    available: bool = True
    note: str = ""
    # CPU milliseconds per request in the app's workers and in PostgreSQL.
    app_cpu_ms: float | None = None
    db_cpu_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def success_rate(self) -> float:
        """Return the requests per second that got a 2xx response."""
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0


def unavailable(label: str, reason: str) -> Result:
    return Result(label, available=False, note=reason)


def lua_literal(value: Any) -> str:
    """Render ``value`` as a Lua expression (strings, numbers, lists, dicts)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string literal is a valid Lua string literal for the
        # ASCII text used here.
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    if isinstance(value, dict):
        items = (
            f"[{json.dumps(str(key))}] = {lua_literal(item)}"
            for key, item in value.items()
        )
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot render {type(value).__name__} as Lua")


def write_script(work_dir: Path, name: str, params: dict[str, Any]) -> Path:
    """Join the parameters, the thread helpers, ``name``.lua and the report."""
    parts = [
        f"params = {lua_literal(params)}\n",
        (LUA_DIR / "threads.lua").read_text(),
        (LUA_DIR / f"{name}.lua").read_text(),
        (LUA_DIR / "done.lua").read_text(),
    ]
    path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".lua", dir=work_dir)[1])
    path.write_text("\n".join(parts))
    return path


@dataclass(frozen=True)
class Load:
    """The duration, connections and threads of one load run."""

    seconds: float
    connections: int
    threads: int


def start_wrk(url: str, script: Path, load: Load) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            "wrk",
            f"-t{load.threads}",
            f"-c{load.connections}",
            f"-d{max(1, round(load.seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish_wrk(process: subprocess.Popen[str], label: str, rows: int = 1) -> Result:
    output, _ = process.communicate(timeout=120)
    match = re.search(r"^BENCH_JSON (\{.*\})$", output, re.MULTILINE)
    if process.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed for {label}:\n{output}")
    figures = json.loads(match[1])
    return Result(
        label,
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        errors=figures["non2xx"] + figures["socket_errors"] + figures["timeouts"],
        rows_per_request=rows,
    )


def run_wrk(url: str, script: Path, load: Load, label: str, rows: int = 1) -> Result:
    return finish_wrk(start_wrk(url, script, load), label, rows)


def run_pgbench(
    *,
    label: str,
    conninfo: dict[str, str],
    script: str,
    protocol: str,
    load: Load,
    work_dir: Path,
) -> Result:
    """Run ``script`` with pgbench; latency percentiles come from its log."""
    log_dir = Path(tempfile.mkdtemp(prefix="pgbench-", dir=work_dir))
    script_path = log_dir / "script.sql"
    script_path.write_text(script)
    completed = subprocess.run(
        [
            "pgbench",
            "--no-vacuum",
            f"--protocol={protocol}",
            f"--client={load.connections}",
            f"--jobs={load.threads}",
            f"--time={max(1, round(load.seconds))}",
            "--log",
            f"--log-prefix={log_dir / 'log'}",
            f"--file={script_path}",
            "-h",
            conninfo["host"],
            "-p",
            conninfo["port"],
            "-U",
            conninfo["user"],
            conninfo["dbname"],
        ],
        capture_output=True,
        text=True,
        timeout=load.seconds + 60,
        check=False,
    )
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise RuntimeError(f"pgbench failed for {label}:\n{output}")
    latencies = []
    for path in log_dir.glob("log*"):
        for line in path.read_text().splitlines():
            # client_id transaction_no time_us script_no epoch epoch_us
            latencies.append(int(line.split()[2]))
    latencies.sort()
    failed = re.search(r"number of failed transactions: (\d+)", output)
    duration = re.search(r"duration: (\d+) s", output)
    return Result(
        label,
        requests=len(latencies),
        seconds=float(duration[1]) if duration else load.seconds,
        p50_ms=percentile(latencies, 50) / 1000,
        p99_ms=percentile(latencies, 99) / 1000,
        errors=int(failed[1]) if failed else 0,
    )


def percentile(sorted_values: list[int], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))
    return float(sorted_values[index])
