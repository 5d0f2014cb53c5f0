"""A per-process cache of access tokens whose signature was verified.

flask-jwt-extended decodes a token three times per request and checks its
ES256 signature once. In a py-spy profile under ``make bench`` that was
about a sixth of the app's CPU time on ``GET /contacts/{id}``. A client sends the same
token for up to its lifetime, so the claims of a verified token are kept,
keyed by the exact token text, until the token expires.

Only the signature check and the claim checks that cannot change over a
token's life are skipped. Every hit still requires that the token has not
expired and that its signing key is still active, and the caller lookup,
which makes revocation count on the next request, is never cached.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from flask import Flask
from flask_jwt_extended import JWTManager


@dataclass(frozen=True)
class _Entry:
    claims: dict[str, Any]
    expires_at: float
    kid: str


class VerifiedTokenCache:
    """Map token text to its verified claims, least recently used out first.

    ``key_is_active`` is asked on every hit, so a token signed by a key that
    was retired since its verification stops working when the key ring
    notices the retirement, as it would without the cache.
    """

    def __init__(self, max_entries: int, key_is_active: Callable[[str], bool]) -> None:
        self.max_entries = max_entries
        self._key_is_active = key_is_active
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str) -> dict[str, Any] | None:
        """Return a copy of the cached claims, or None if absent or stale."""
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            if time.time() >= entry.expires_at:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
        if not self._key_is_active(entry.kid):
            with self._lock:
                self._entries.pop(token, None)
            return None
        return dict(entry.claims)

    def put(self, token: str, claims: dict[str, Any]) -> None:
        """Remember ``claims``, verified from ``token``, until the token expires."""
        expires_at = claims.get("exp")
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(expires_at, int | float) or not isinstance(kid, str):
            # Without an expiry or a key id the entry could not be bounded.
            return
        with self._lock:
            self._entries[token] = _Entry(dict(claims), float(expires_at), kid)
            self._entries.move_to_end(token)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class CachingJWTManager(JWTManager):
    """flask-jwt-extended's manager, with verified tokens kept in a cache."""

    def __init__(self, app: Flask, cache: VerifiedTokenCache) -> None:
        self.token_cache = cache
        super().__init__(app)

    def _decode_jwt_from_config(
        self,
        encoded_token: str,
        csrf_value: Any = None,
        allow_expired: bool = False,
    ) -> dict[str, Any]:
        if allow_expired:
            claims: dict[str, Any] = super()._decode_jwt_from_config(
                encoded_token, csrf_value, allow_expired
            )
            return claims
        cached = self.token_cache.get(encoded_token)
        if cached is not None:
            return cached
        claims = super()._decode_jwt_from_config(encoded_token, csrf_value, False)
        self.token_cache.put(encoded_token, claims)
        return claims
