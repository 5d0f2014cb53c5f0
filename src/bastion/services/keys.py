"""Signing keys for access tokens, stored in PostgreSQL.

Every instance reads the same table, so a key made by ``flask keys rotate``
on one machine reaches all of them within the cache interval. Private keys
are stored as PKCS#8 PEM encrypted with the key-encryption key from
configuration; public keys are stored as JWKs for the JWKS endpoint.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from psycopg.types.json import Jsonb

from bastion.db import Database
from bastion.errors import ServiceUnavailableError

logger = logging.getLogger(__name__)

ALGORITHM = "ES256"


@dataclass(frozen=True)
class SigningKey:
    """One key pair; ``private_key`` is None on a key that only verifies."""

    kid: str
    created_at: datetime
    public_key: ec.EllipticCurvePublicKey
    public_jwk: dict[str, Any]
    private_key: ec.EllipticCurvePrivateKey | None


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes(32, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _public_jwk(kid: str, public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    numbers = public_key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url_uint(numbers.x),
        "y": _b64url_uint(numbers.y),
        "kid": kid,
        "alg": ALGORITHM,
        "use": "sig",
    }


class KeyService:
    """Create, list and retire signing keys."""

    def __init__(self, db: Database, *, key_encryption_key: str) -> None:
        self.db = db
        self._kek = key_encryption_key.encode("utf-8")

    def rotate_key(self) -> str:
        """Create a new signing key; it signs from the next refresh on."""
        private_key = ec.generate_private_key(ec.SECP256R1())
        # Hex, so a kid never starts with "-" and passes as a CLI argument.
        kid = secrets.token_hex(12)
        encrypted = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._kek),
        )
        jwk = _public_jwk(kid, private_key.public_key())

        with self.db.write() as cur:
            cur.execute(
                """
                INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk)
                VALUES (%(kid)s, %(algorithm)s, %(private_key)s, %(public_jwk)s)
                """,
                {
                    "kid": kid,
                    "algorithm": ALGORITHM,
                    "private_key": encrypted,
                    "public_jwk": Jsonb(jwk),
                },
            )
        return kid

    def list_keys(self) -> list[dict[str, Any]]:
        """Return every key's id, creation and retirement time, newest first."""
        with self.db.read() as cur:
            cur.execute(
                """
                SELECT kid, algorithm, created_at, retired_at
                FROM signing_keys
                ORDER BY created_at DESC, kid
                """
            )
            return list(cur.fetchall())

    def retire_key(self, kid: str) -> bool:
        """Stop ``kid`` from signing or verifying; return False if unknown."""
        with self.db.write() as cur:
            cur.execute(
                """
                UPDATE signing_keys
                SET retired_at = now()
                WHERE kid = %(kid)s
                  AND retired_at IS NULL
                RETURNING kid
                """,
                {"kid": kid},
            )
            return cur.fetchone() is not None

    def load_active_keys(self) -> list[SigningKey]:
        """Load and decrypt every key that is not retired, newest first."""
        with self.db.read() as cur:
            cur.execute(
                """
                SELECT kid, private_key, public_jwk, created_at
                FROM signing_keys
                WHERE retired_at IS NULL
                ORDER BY created_at DESC, kid
                """
            )
            rows = cur.fetchall()
        keys = []
        for row in rows:
            try:
                private_key = serialization.load_pem_private_key(
                    bytes(row["private_key"]), password=self._kek
                )
            except ValueError:
                # A wrong JWT_KEY_ENCRYPTION_KEY. Skipping the key keeps the
                # others usable, and the log names the one that failed.
                logger.error("signing_key_undecryptable", extra={"kid": row["kid"]})
                continue
            if not isinstance(private_key, ec.EllipticCurvePrivateKey):
                logger.error("signing_key_not_ec", extra={"kid": row["kid"]})
                continue
            keys.append(
                SigningKey(
                    kid=row["kid"],
                    created_at=row["created_at"],
                    public_key=private_key.public_key(),
                    public_jwk=row["public_jwk"],
                    private_key=private_key,
                )
            )
        return keys


class KeyRing:
    """Cache the active keys in the process and refresh them periodically.

    A rotation or retirement made elsewhere is seen within
    ``refresh_seconds``. An unknown ``kid`` triggers an early refresh (at most
    once a second), so a new key verifies at once.
    """

    def __init__(self, service: KeyService, *, refresh_seconds: int) -> None:
        self.service = service
        self.refresh_seconds = refresh_seconds
        self._keys: dict[str, SigningKey] = {}
        self._signing: SigningKey | None = None
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self, *, min_age: float) -> None:
        with self._lock:
            if time.monotonic() - self._loaded_at < min_age:
                return
            keys = self.service.load_active_keys()
            self._keys = {key.kid: key for key in keys}
            self._signing = keys[0] if keys else None
            self._loaded_at = time.monotonic()

    def _refresh_if_stale(self) -> None:
        if time.monotonic() - self._loaded_at >= self.refresh_seconds:
            self._refresh(min_age=self.refresh_seconds)

    def signing_key(self) -> SigningKey:
        """Return the newest active key; raise ServiceUnavailableError if none."""
        self._refresh_if_stale()
        if self._signing is None:
            self._refresh(min_age=1.0)
        if self._signing is None:
            logger.error("no_signing_key")
            raise ServiceUnavailableError("No signing key is available.")
        return self._signing

    def has_signing_key(self) -> bool:
        """Return whether a usable key can sign, refreshing a stale cache."""
        try:
            self._refresh_if_stale()
        except (psycopg.Error, ServiceUnavailableError):
            logger.warning("signing_keys_unreadable", exc_info=True)
            return False
        return self._signing is not None

    def verification_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """Return the public key for ``kid``, or None if unknown or retired."""
        self._refresh_if_stale()
        key = self._keys.get(kid)
        if key is None:
            self._refresh(min_age=1.0)
            key = self._keys.get(kid)
        return key.public_key if key else None

    def public_jwks(self) -> list[dict[str, Any]]:
        self._refresh_if_stale()
        return [key.public_jwk for key in self._keys.values()]
