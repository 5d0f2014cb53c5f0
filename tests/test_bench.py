"""The benchmark's smoke mode: tiny data, one second per scenario.

It proves the harness still drives every scenario against the real stack
and writes its table; the figures themselves are never checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.migrate import with_database
from bench.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[1]


def table_rows(page: str) -> dict[str, list[str]]:
    """Return the cells of the first Markdown table, keyed by the first cell."""
    rows: dict[str, list[str]] = {}
    for line in page.splitlines():
        if line.startswith("## "):
            break
        if line.startswith("| ") and not line.startswith("| scenario"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_bench_smoke_writes_table(admin_database_url: str, tmp_path: Path) -> None:
    name = os.environ.get("TEST_DATABASE_NAME", "bastion_test") + "_smoke"
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_FILE")},
        "BENCH_SERVER_URL": with_database(admin_database_url, "postgres"),
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--database-name",
            name,
            "--results-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, (
        completed.stdout[-3000:] + completed.stderr[-3000:]
    )

    pages = list(tmp_path.glob("*-smoke.md"))
    assert len(pages) == 1
    rows = table_rows(pages[0].read_text())
    from bench.dataset import SMOKE

    for scenario in SCENARIOS:
        label = scenario.label(SMOKE)
        assert label in rows, f"no row for {label}"
        cells = rows[label]
        if cells[0].startswith("not available"):
            continue
        rate = float(cells[0].split()[0].replace(",", ""))
        errors = int(cells[4])
        assert rate > 0, f"{label} served no request"
        assert errors == 0, f"{label} had {errors} error responses"
