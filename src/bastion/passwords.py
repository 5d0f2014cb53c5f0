"""Password hashing with bcrypt-sha256 through passlib, and the password policy.

bcrypt alone reads only the first 72 bytes of a password; bcrypt-sha256
hashes the whole password first, so a long password and its 72-byte prefix
are different secrets. Plain bcrypt hashes still verify and are replaced at
the next successful login, as are hashes made with a lower cost.

The policy asks for 12 to 1,024 characters and rejects passwords that
zxcvbn rates as easy to guess: its frequency lists hold some 30,000 common
passwords plus English words and names, and it scores keyboard walks,
repeats, sequences, dates and l33t spellings.

Hashing is the most expensive work in the app, so a bulkhead caps how many
hashes one process computes at once. A request that finds every slot taken
fails at once with 503 and ``Retry-After`` instead of queueing, which keeps
a flood of logins from tying up the threads that serve other routes.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from passlib.context import CryptContext
from zxcvbn import zxcvbn

from bastion.errors import ServiceUnavailableError, UnprocessableError

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024
# zxcvbn scores 0-4; 3 means "safely unguessable" in its terms, an estimated
# 10^8 guesses or more.
PASSWORD_MIN_SCORE = 3
# zxcvbn's l33t matcher grows steeply with length: a crafted 72-character
# input took 2 s on a 2-core test machine, 16 characters at most 44 ms.
# Scoring only the first 16 characters bounds that cost. A password whose
# first 16 characters are hard to guess cannot be easier to guess as a whole.
PASSWORD_SCORED_PREFIX = 16

TOO_SHORT = f"Must be at least {PASSWORD_MIN_LENGTH} characters long."
TOO_LONG = f"Must be at most {PASSWORD_MAX_LENGTH} characters long."
TOO_GUESSABLE = (
    "Is too common or too easy to guess; use a passphrase of several uncommon words."
)
TOO_PERSONAL = (
    "Is made mostly of your name, email address or account name; "
    "add words an attacker could not look up."
)
# After the user's own words are taken out, this many letters and digits
# must remain.
PERSONAL_REMAINDER_MIN = 8

_WORD = re.compile(r"[^\W_]{3,}")

# zxcvbn keeps the user inputs of the current call in a module-level dict.
_zxcvbn_lock = threading.Lock()


def password_problem(password: str, *, user_inputs: Iterable[str] = ()) -> str | None:
    """Return the policy rule ``password`` breaks, or None if it complies.

    ``user_inputs`` are words an attacker would try first for this user,
    such as their email address and name.
    """
    if len(password) < PASSWORD_MIN_LENGTH:
        return TOO_SHORT
    if len(password) > PASSWORD_MAX_LENGTH:
        return TOO_LONG
    # Whole values and their parts: "ada.king@example.com" yields "ada",
    # "king" and "example" too, as an attacker's word list would.
    inputs = [value for value in user_inputs if value]
    parts = [part for value in inputs for part in _WORD.findall(value.lower())]
    inputs += parts
    # zxcvbn scores only the prefix, so a password built from the user's
    # own words past it is caught here, on the whole password.
    if len(_without_words(password, parts)) < PERSONAL_REMAINDER_MIN:
        return TOO_PERSONAL
    with _zxcvbn_lock:
        result = zxcvbn(password[:PASSWORD_SCORED_PREFIX], user_inputs=inputs)
    if result["score"] < PASSWORD_MIN_SCORE:
        return TOO_GUESSABLE
    return None


def _without_words(password: str, words: Iterable[str]) -> str:
    """Return the password's letters and digits with ``words`` taken out."""
    remainder = "".join(_WORD.findall(password.lower()))
    for word in sorted(set(words), key=len, reverse=True):
        remainder = remainder.replace(word, "")
    return remainder


def enforce_password_policy(
    password: str, *, field: str, user_inputs: Iterable[str] = ()
) -> None:
    """Raise UnprocessableError naming the rule ``password`` breaks."""
    problem = password_problem(password, user_inputs=user_inputs)
    if problem is not None:
        raise UnprocessableError(
            f"The password does not meet the password policy: {problem[0].lower()}"
            f"{problem[1:]}",
            fields={field: [problem]},
        )


# Retry-After, in seconds, when every hashing slot is taken. One bcrypt at
# the production cost takes a fraction of that.
BUSY_RETRY_AFTER = 1


class PasswordHasher:
    """Hash and verify passwords at the configured bcrypt cost.

    At most ``max_concurrent`` hashes run at once in this process; beyond
    that every method raises ServiceUnavailableError without waiting.
    """

    def __init__(self, rounds: int, *, max_concurrent: int = 2) -> None:
        self.context = CryptContext(
            schemes=["bcrypt_sha256", "bcrypt"],
            deprecated=["bcrypt"],
            bcrypt_sha256__default_rounds=rounds,
            bcrypt_sha256__min_rounds=rounds,
        )
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one hashing slot, or raise ServiceUnavailableError if none is free."""
        if not self._slots.acquire(blocking=False):
            raise ServiceUnavailableError(
                "The server is busy; retry later.", retry_after=BUSY_RETRY_AFTER
            )
        try:
            yield
        finally:
            self._slots.release()

    def hash(self, password: str) -> str:
        """Return a new hash of ``password``."""
        with self.slot():
            return str(self.context.hash(password))

    def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """Check ``password``; return (matches, replacement hash or None)."""
        with self.slot():
            matches, new_hash = self.context.verify_and_update(password, password_hash)
        return bool(matches), new_hash

    def verify_dummy(self, password: str) -> None:
        """Spend the same work as ``verify`` when there is no user to check.

        Login calls this for an unknown email, so the response time does not
        reveal whether an account exists.
        """
        with self.slot():
            self.context.verify(password, self._get_dummy_hash())

    def warm_up(self) -> None:
        """Build the dummy hash ahead of the first login that needs it."""
        self._get_dummy_hash()

    def _get_dummy_hash(self) -> str:
        # Called with a slot held, so it hashes without taking another.
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = str(self.context.hash(secrets.token_urlsafe(16)))
            return self._dummy_hash
