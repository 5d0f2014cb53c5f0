"""A bounded HTTP load of a few threads that records every outcome."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests


@dataclass
class Outcome:
    """One request: what it was for, and how it ended."""

    kind: str
    key: str
    started: float
    finished: float
    status: int | None = None
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    error_detail: str = ""

    @property
    def seconds(self) -> float:
        return self.finished - self.started


# A request function sends one request for a unique key (which names what
# it writes) and returns the response.
RequestFn = Callable[[str], requests.Response]


class Load:
    """Run request functions in threads until stopped or out of budget."""

    def __init__(self, max_requests_per_thread: int, max_seconds: float) -> None:
        self.max_requests = max_requests_per_thread
        self.deadline = time.monotonic() + max_seconds
        self.run_id = secrets.token_hex(3)
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def add(self, kind: str, request: RequestFn, threads: int = 1) -> None:
        for _ in range(threads):
            index = len(self._threads)
            thread = threading.Thread(
                target=self._run, args=(kind, request, index), daemon=True
            )
            self._threads.append(thread)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, kind: str, request: RequestFn, index: int) -> None:
        for iteration in range(self.max_requests):
            if self._stop.is_set() or time.monotonic() > self.deadline:
                return
            started = time.monotonic()
            key = f"{kind}-{self.run_id}-{index}-{iteration}"
            try:
                response = request(key)
            except requests.RequestException as exc:
                outcome = Outcome(
                    kind,
                    key,
                    started,
                    time.monotonic(),
                    error=type(exc).__name__,
                    error_detail=str(exc)[:300],
                )
            else:
                outcome = Outcome(
                    kind,
                    key,
                    started,
                    time.monotonic(),
                    status=response.status_code,
                    body=response.json() if response.content else None,
                    headers=dict(response.headers),
                )
            with self._lock:
                self.outcomes.append(outcome)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)
