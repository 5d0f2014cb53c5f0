"""Strict JSON decoding for request bodies.

Python's json module accepts duplicate keys (the last wins), ``NaN`` and
``Infinity``, and raises RecursionError on deeply nested input. Each of
those is a 400 here: a body that two parsers could read differently is
rejected rather than guessed at.
"""

from __future__ import annotations

import json
import re
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
        # Bodies are UTF-8 only; json.loads would also guess UTF-16 and -32.
        text = s.decode("utf-8") if isinstance(s, bytes) else s
        try:
            return json.loads(
                text,
                object_pairs_hook=_reject_duplicate_keys,
                parse_constant=_reject_constant,
            )
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def has_unstorable_text(value: Any) -> bool:
    """Return True if any string in ``value`` cannot be stored as text.

    PostgreSQL text cannot hold NUL, and a lone surrogate (which JSON's
    ``\\ud800`` escapes can produce) cannot be encoded as UTF-8.
    """
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(
            has_unstorable_text(key) or has_unstorable_text(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return any(has_unstorable_text(item) for item in value)
    return False
