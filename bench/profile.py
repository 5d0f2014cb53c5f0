"""Sample Bastion's workers with py-spy while a scenario runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# A py-spy frame reads "function (path/to/file.py:line)".
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


class Recording:
    """The collapsed stacks of one py-spy recording."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def top(self, count: int = 20) -> list[tuple[str, float, float]]:
        """Return (function, self %, total %) for the functions with most self time."""
        own: Counter[str] = Counter()
        total: Counter[str] = Counter()
        samples = 0
        if not self.path.exists():
            return []
        for line in self.path.read_text().splitlines():
            stack, _, weight = line.rpartition(" ")
            if not stack or not weight.isdigit():
                continue
            frames = [_short(frame) for frame in stack.split(";")]
            frames = [frame for frame in frames if frame]
            if not frames:
                continue
            samples += int(weight)
            own[frames[-1]] += int(weight)
            for frame in set(frames):
                total[frame] += int(weight)
        if not samples:
            return []
        return [
            (name, 100 * weight / samples, 100 * total[name] / samples)
            for name, weight in own.most_common(count)
        ]


def _short(frame: str) -> str:
    if frame.startswith("process "):
        return ""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/src/", "/lib/python"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['function']} ({path})"


@contextmanager
def record(
    pid: int, output: Path, seconds: float, *, cpu: bool = False
) -> Iterator[Recording]:
    """Record every worker of gunicorn master ``pid`` for about ``seconds``.

    With ``cpu``, only samples that hold the GIL count: where Python spends
    CPU. Without it, waits on PostgreSQL and the network count too.
    """
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    process = subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--rate",
            "200",
            "--duration",
            str(max(1, round(seconds))),
            "--format",
            "raw",
            "--output",
            str(output),
            "--nonblocking",
            *(["--gil"] if cpu else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield Recording(output)
    finally:
        process.wait(timeout=seconds + 60)
