"""Outgoing mail through the backend chosen by ``MAIL_BACKEND``.

``smtp`` hands messages to an SMTP server, upgrading the connection with
STARTTLS (certificate checked) before any credentials or content are sent.
``file`` writes each message to its own ``.eml`` file in ``MAIL_OUTBOX_DIR``
for development and tests.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from bastion.config import Settings

logger = logging.getLogger(__name__)


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Deliver ``message``, raising OSError or SMTPException on failure."""


class FileMailer:
    """Write each message to a new file readable only by this user."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Names sort in the order the messages were written.
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        temporary = self.directory / f".{name}.tmp"
        # Write then rename, so a reader never sees half a message.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(message.as_bytes())
        temporary.rename(self.directory / name)


class SmtpMailer:
    """Send through an SMTP server, with STARTTLS unless switched off."""

    def __init__(self, settings: Settings) -> None:
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.starttls = settings.smtp_starttls
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.timeout = settings.smtp_timeout

    def send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                # Raises SMTPNotSupportedError when the server does not
                # offer STARTTLS, so the message is never sent in clear.
                smtp.starttls(context=ssl.create_default_context())
            if self.username and self.password:
                smtp.login(self.username, self.password)
            smtp.send_message(message)


def build_mailer(settings: Settings) -> Mailer:
    """Return the mailer that ``settings.mail_backend`` names."""
    if settings.mail_backend == "file":
        return FileMailer(settings.mail_outbox_dir)
    return SmtpMailer(settings)


def make_message(
    settings: Settings, *, to: str, subject: str, body: str
) -> EmailMessage:
    """Build a plain-text message from the configured sender."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


def send_quietly(mailer: Mailer, message: EmailMessage, *, event: str) -> None:
    """Send ``message`` and log a failure without its content or address."""
    try:
        mailer.send(message)
    except (OSError, smtplib.SMTPException) as exc:
        logger.error(
            "mail_failed", extra={"mail_event": event, "error_type": type(exc).__name__}
        )
        return
    logger.info("mail_sent", extra={"mail_event": event})


# One background sender per process. Mail leaves the request thread, so a
# slow mail server never shows in the time of this request or of the next
# one that the worker thread serves. That time would otherwise tell an
# attacker whether a password-reset email belongs to a user.
_outgoing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail")
_pending: set[Future[None]] = set()
_pending_lock = threading.Lock()


def send_in_background(mailer: Mailer, message: EmailMessage, *, event: str) -> None:
    """Queue ``message`` for the background sender and return at once."""
    future = _outgoing.submit(send_quietly, mailer, message, event=event)
    with _pending_lock:
        _pending.add(future)
    future.add_done_callback(_forget)


def _forget(future: Future[None]) -> None:
    with _pending_lock:
        _pending.discard(future)


def wait_for_outgoing_mail(timeout: float = 10.0) -> None:
    """Block until the mail queued so far has been handed to the backend."""
    with _pending_lock:
        pending = list(_pending)
    wait(pending, timeout=timeout)
