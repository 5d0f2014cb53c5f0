"""Mail backends against a real file system and a real SMTP server."""

from __future__ import annotations

import logging
import smtplib
import ssl
import stat

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from bastion.config import ConfigError, Settings
from bastion.mail import (
    FileMailer,
    SmtpMailer,
    build_mailer,
    make_message,
    send_quietly,
)
from tests.conftest import make_settings
from tests.processes import free_port
from tests.servers import make_certificate

SMTP_USER = "bastion-mailer"
SMTP_PASSWORD = "smtp secret for tests"


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == SMTP_USER.encode() and (
            auth_data.password == SMTP_PASSWORD.encode()
        )
        return AuthResult(success=ok)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, as (cert file, key file)."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture()
def smtp_server(certificate):
    """Start an SMTP server on loopback; yield (port, inbox, start)."""
    controllers = []

    def start(*, tls):
        inbox = Inbox()
        options = {}
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*certificate)
            options = {
                "tls_context": context,
                "require_starttls": True,
                "authenticator": inbox.authenticate,
                "auth_require_tls": True,
            }
        controller = Controller(
            inbox, hostname="127.0.0.1", port=free_port(), **options
        )
        controller.start()
        controllers.append(controller)
        return controller.port, inbox

    yield start
    for controller in controllers:
        controller.stop()


def _mailer(database_url, port, **overrides):
    settings = make_settings(
        database_url,
        MAIL_BACKEND="smtp",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(port),
        SMTP_TIMEOUT="5",
        **overrides,
    )
    return build_mailer(settings), settings


def _message(settings):
    return make_message(
        settings, to="ada@example.com", subject="Hello", body="Test body\n"
    )


def test_smtp_sends_over_starttls_with_credentials(
    database_url, smtp_server, certificate, monkeypatch
):
    port, inbox = smtp_server(tls=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    mailer, settings = _mailer(
        database_url, port, SMTP_USERNAME=SMTP_USER, SMTP_PASSWORD=SMTP_PASSWORD
    )

    mailer.send(_message(settings))

    assert inbox.logins == [(SMTP_USER.encode(), SMTP_PASSWORD.encode())]
    assert len(inbox.messages) == 1
    assert b"Test body" in inbox.messages[0]


def test_smtp_refuses_a_server_without_starttls(database_url, smtp_server):
    port, inbox = smtp_server(tls=False)
    mailer, settings = _mailer(database_url, port)

    with pytest.raises(smtplib.SMTPNotSupportedError):
        mailer.send(_message(settings))

    assert inbox.messages == []


def test_smtp_rejects_an_untrusted_certificate(database_url, smtp_server):
    port, inbox = smtp_server(tls=True)
    mailer, settings = _mailer(
        database_url, port, SMTP_USERNAME=SMTP_USER, SMTP_PASSWORD=SMTP_PASSWORD
    )

    with pytest.raises(ssl.SSLCertVerificationError):
        mailer.send(_message(settings))

    assert inbox.logins == []
    assert inbox.messages == []


def test_plain_smtp_when_starttls_is_switched_off(database_url, smtp_server):
    port, inbox = smtp_server(tls=False)
    mailer, settings = _mailer(database_url, port, SMTP_STARTTLS="false")

    mailer.send(_message(settings))

    assert len(inbox.messages) == 1


def test_file_mailer_writes_one_private_file_per_message(database_url, tmp_path):
    outbox = tmp_path / "outbox"
    mailer = FileMailer(str(outbox))
    settings = make_settings(database_url)

    mailer.send(_message(settings))
    mailer.send(_message(settings))

    files = sorted(outbox.iterdir())
    assert len(files) == 2
    assert all(path.suffix == ".eml" for path in files)
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    assert b"Test body" in files[0].read_bytes()


def test_failed_send_is_logged_without_address_or_body(database_url, caplog):
    mailer, settings = _mailer(database_url, free_port(), SMTP_STARTTLS="false")

    with caplog.at_level(logging.INFO, logger="bastion.mail"):
        send_quietly(mailer, _message(settings), event="password_reset")

    assert [record.getMessage() for record in caplog.records] == ["mail_failed"]
    logged = caplog.text + repr([vars(record) for record in caplog.records])
    assert "ada@example.com" not in logged
    assert "Test body" not in logged


class TestMailSettings:
    def test_backend_defaults_to_smtp_in_production_only(self):
        base = {
            "DATABASE_URL": "postgresql://postgres@127.0.0.1/bastion",
            "SECRET_KEY": "s" * 40,
            "JWT_KEY_ENCRYPTION_KEY": "k" * 40,
        }

        production = Settings.from_env(base)
        development = Settings.from_env({**base, "BASTION_ENV": "development"})

        assert isinstance(build_mailer(production), SmtpMailer)
        assert isinstance(build_mailer(development), FileMailer)
        assert development.mail_outbox_dir == "var/outbox"

    @pytest.mark.parametrize(
        ("overrides", "named"),
        [
            ({"MAIL_BACKEND": "carrier-pigeon"}, "MAIL_BACKEND"),
            ({"SMTP_USERNAME": "u"}, "SMTP_PASSWORD"),
            (
                {"SMTP_USERNAME": "u", "SMTP_PASSWORD": "p", "SMTP_STARTTLS": "no"},
                "SMTP_STARTTLS",
            ),
            (
                {
                    "BASTION_ENV": "production",
                    "BCRYPT_ROUNDS": "12",
                    "PASSWORD_RESET_URL": "http://x/r",
                },
                "PASSWORD_RESET_URL",
            ),
        ],
    )
    def test_invalid_mail_settings_are_named(self, database_url, overrides, named):
        with pytest.raises(ConfigError, match=named):
            make_settings(database_url, **overrides)
