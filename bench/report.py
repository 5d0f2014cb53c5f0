"""Render a run as one Markdown page: the table, the facts and the targets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bench.load import Result


@dataclass
class Run:
    """Everything one run measured, for the report."""

    results: dict[str, Result]
    bare_key: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)
    ready_seconds: float | None = None
    hash_seconds: float = 0.0
    cores: int = 1
    profile: list[tuple[str, float, float]] = field(default_factory=list)
    profile_kind: str = ""


def _rate(result: Result) -> str:
    if result.rows_per_request > 1:
        return (
            f"{result.rate:,.1f} ({result.rate * result.rows_per_request:,.0f} rows/s)"
        )
    return f"{result.rate:,.1f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(run: Run) -> str:
    bare = run.results.get(run.bare_key)
    bare_rate = bare.rate if bare and bare.available else 0.0
    lines = [
        "| scenario | requests/s | p50 ms | p99 ms | x bare | errors/non-2xx "
        "| app CPU ms/req | db CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in run.results.values():
        if not result.available:
            lines.append(
                f"| {result.label} | not available: {result.note} | | | | | | |"
            )
            continue
        ratio = f"{result.rate / bare_rate:.2f}" if bare_rate else "-"
        lines.append(
            f"| {result.label} | {_rate(result)} | {result.p50_ms:.1f} "
            f"| {result.p99_ms:.1f} | {ratio} | {result.errors} "
            f"| {_ms(result.app_cpu_ms)} | {_ms(result.db_cpu_ms)} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    name: str
    measure: Callable[[Run], tuple[float, float] | None]
    unit: str
    # True when a value at or above the limit meets the target.
    at_least: bool


def _figure(run: Run, key: str) -> Result | None:
    result = run.results.get(key)
    return (
        result if result is not None and result.available and result.requests else None
    )


def _ratio(
    key: str, other: str, attribute: str, limit: float
) -> Callable[[Run], tuple[float, float] | None]:
    def measure(run: Run) -> tuple[float, float] | None:
        first, second = _figure(run, key), _figure(run, other)
        if first is None or second is None or not getattr(second, attribute):
            return None
        return getattr(first, attribute) / getattr(second, attribute), limit

    return measure


def _import_rows(run: Run) -> tuple[float, float] | None:
    result = _figure(run, "import")
    return None if result is None else (result.rate * result.rows_per_request, 20_000)


def _logins(run: Run) -> tuple[float, float] | None:
    result = _figure(run, "login")
    if result is None or not run.hash_seconds:
        return None
    return result.success_rate, 0.9 * run.cores / run.hash_seconds


def _rss(run: Run) -> tuple[float, float] | None:
    return (max(run.peak_rss_mb), 100.0) if run.peak_rss_mb else None


def _ready(run: Run) -> tuple[float, float] | None:
    return None if run.ready_seconds is None else (run.ready_seconds, 2.0)


TARGETS = (
    Target(
        "GET by id, requests/s over bare",
        _ratio("get", "bare", "rate", 0.75),
        "x",
        True,
    ),
    Target(
        "deep page p99 over first page p99",
        _ratio("list_deep", "list_first", "p99_ms", 1.2),
        "x",
        False,
    ),
    Target(
        "search p99 (big account) over GET by id p99",
        _ratio("search_big", "get", "p99_ms", 3.0),
        "x",
        False,
    ),
    Target("import rows/s", _import_rows, "rows/s", True),
    Target("successful logins/s, limit 0.9 x cores / one hash", _logins, "/s", True),
    Target(
        "GET p99 during login flood over without",
        _ratio("get_flood", "get", "p99_ms", 2.0),
        "x",
        False,
    ),
    Target("peak RSS of the largest worker", _rss, "MB", False),
    Target("start to ready", _ready, "s", False),
)


def targets(run: Run) -> str:
    lines = ["| target | measured | limit | met |", "|---|---:|---:|---|"]
    for target in TARGETS:
        measured = target.measure(run)
        if measured is None:
            lines.append(f"| {target.name} | not measured | | |")
            continue
        value, limit = measured
        met = value >= limit if target.at_least else value <= limit
        sign = ">=" if target.at_least else "<="
        lines.append(
            f"| {target.name} | {value:,.2f} {target.unit} | {sign} {limit:,.2f} "
            f"| {'yes' if met else 'no'} |"
        )
    return "\n".join(lines)


def render(run: Run, title: str) -> str:
    notes = [
        f"- {result.label}: {result.note}"
        for result in run.results.values()
        if result.available and result.note
    ]
    sections = [f"# {title}", "", table(run), ""]
    if notes:
        sections += [*notes, ""]
    sections += ["## Targets", "", targets(run)]
    sections += ["", "## Setup", ""]
    sections += [f"- {name}: {value}" for name, value in run.facts]
    if run.peak_rss_mb:
        sizes = ", ".join(f"{size:.1f}" for size in run.peak_rss_mb)
        sections.append(f"- peak RSS per Bastion worker (VmHWM, MB): {sizes}")
    if run.profile:
        sections += [
            "",
            f"## Profile of GET /contacts/{{id}} (py-spy, {run.profile_kind})",
            "",
            "| function | self % | total % |",
            "|---|---:|---:|",
        ]
        sections += [
            f"| `{name}` | {own:.1f} | {total:.1f} |"
            for name, own, total in run.profile
        ]
    return "\n".join(sections) + "\n"
