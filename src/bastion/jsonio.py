"""Strict JSON decoding for request bodies.

Python's json module accepts duplicate keys (the last wins), ``NaN`` and
``Infinity``, and raises RecursionError on deeply nested input. Each of
those is a 400 here: a body that two parsers could read differently is
rejected rather than guessed at.
"""

from __future__ import annotations

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with strict decoding and unsorted output."""

    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return json.loads(
                s,
                object_pairs_hook=_reject_duplicate_keys,
                parse_constant=_reject_constant,
            )
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def find_nul(value: Any) -> bool:
    """Return True if any string in ``value`` contains a NUL character.

    PostgreSQL text cannot hold NUL, so such input is rejected up front.
    """
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(find_nul(key) or find_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(find_nul(item) for item in value)
    return False
