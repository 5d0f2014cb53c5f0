"""Password hashing with bcrypt-sha256 through passlib.

bcrypt alone reads only the first 72 bytes of a password; bcrypt-sha256
hashes the whole password first, so a long password and its 72-byte prefix
are different secrets. Plain bcrypt hashes still verify and are replaced at
the next successful login, as are hashes made with a lower cost.
"""

from __future__ import annotations

import secrets
import threading

from passlib.context import CryptContext


class PasswordHasher:
    """Hash and verify passwords at the configured bcrypt cost."""

    def __init__(self, rounds: int) -> None:
        self.context = CryptContext(
            schemes=["bcrypt_sha256", "bcrypt"],
            deprecated=["bcrypt"],
            bcrypt_sha256__default_rounds=rounds,
            bcrypt_sha256__min_rounds=rounds,
        )
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    def hash(self, password: str) -> str:
        """Return a new hash of ``password``."""
        return str(self.context.hash(password))

    def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """Check ``password``; return (matches, replacement hash or None)."""
        matches, new_hash = self.context.verify_and_update(password, password_hash)
        return bool(matches), new_hash

    def verify_dummy(self, password: str) -> None:
        """Spend the same work as ``verify`` when there is no user to check.

        Login calls this for an unknown email, so the response time does not
        reveal whether an account exists.
        """
        self.context.verify(password, self._get_dummy_hash())

    def warm_up(self) -> None:
        """Build the dummy hash ahead of the first login that needs it."""
        self._get_dummy_hash()

    def _get_dummy_hash(self) -> str:
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = self.hash(secrets.token_urlsafe(16))
            return self._dummy_hash
