"""Real servers on free loopback ports: gunicorn and nginx.

The end-to-end tests and the benchmarks start the deployment from these
helpers and ``tests.processes.RedisServer``. The nginx configuration is
rendered from the shipped ``deploy/nginx.conf``, so the tested file is the
one that ships."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import UNREACHED_RATE_LIMITS
from tests.processes import ROOT, free_port

NGINX_SITE = ROOT / "deploy" / "nginx.conf"


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout} s")


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def gunicorn_env(database_url: str, key_encryption_key: str, **overrides: str) -> dict:
    """Return the environment for one gunicorn instance of the test database."""
    inherited = {k: v for k, v in os.environ.items() if not k.endswith("_FILE")}
    return {
        **inherited,
        "BASTION_ENV": "test",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "s" * 40,
        "JWT_KEY_ENCRYPTION_KEY": key_encryption_key,
        "BCRYPT_ROUNDS": "4",
        "GUNICORN_WORKERS": "2",
        **UNREACHED_RATE_LIMITS,
        **overrides,
    }


class Gunicorn:
    """gunicorn started from the shipped gunicorn.conf.py; output in ``log_path``."""

    def __init__(self, env: dict, log_path: Path) -> None:
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/healthz") -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_path.open("a"),
            stderr=subprocess.STDOUT,
        )
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {process.returncode}: "
                    + self.log_path.read_text()[-2000:]
                )
            try:
                status, _, _ = request("127.0.0.1", self.port, "GET", ready_path)
            except OSError:
                return False
            return status == 200

        wait_until(ready, 30, "gunicorn")

    def log_records(self) -> list[dict[str, Any]]:
        """Return the JSON lines of the log; gunicorn's and the app's alike."""
        records = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "tls.crt"
    key_path = directory / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _replace(text: str, pattern: str, replacement: str, count: int) -> str:
    """Substitute ``pattern``; fail when the shipped file no longer matches."""
    result, made = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if made != count:
        raise AssertionError(
            f"deploy/nginx.conf: expected {count} match(es) of {pattern!r}, "
            f"found {made}"
        )
    return result


def render_nginx_site(
    *,
    https_port: int,
    http_port: int,
    upstream_ports: list[int],
    cert_path: Path,
    key_path: Path,
    log_dir: Path,
) -> str:
    """Point the shipped site at test ports, files and upstreams, and nothing else."""
    text = NGINX_SITE.read_text()
    servers = "".join(f"    server 127.0.0.1:{port};\n" for port in upstream_ports)
    text = _replace(text, r"^    server 127\.0\.0\.1:8000;\n", servers, 1)
    text = _replace(
        text, r"listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;", 1
    )
    text = _replace(text, r"^\s*listen \[::\]:443 ssl http2;\n", "", 1)
    text = _replace(text, r"listen 80;", f"listen 127.0.0.1:{http_port};", 1)
    text = _replace(text, r"^\s*listen \[::\]:80;\n", "", 1)
    text = _replace(text, r"ssl_certificate \S+;", f"ssl_certificate {cert_path};", 1)
    text = _replace(
        text, r"ssl_certificate_key \S+;", f"ssl_certificate_key {key_path};", 1
    )
    text = _replace(
        text, r"access_log /var/log/nginx/(\S+);", rf"access_log {log_dir}/\1;", 1
    )
    return _replace(
        text, r"error_log /var/log/nginx/(\S+)", rf"error_log {log_dir}/\1", 1
    )


@dataclass
class Nginx:
    """nginx in the foreground with the rendered site as its only server."""

    workdir: Path
    upstream_ports: list[int]
    https_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cert_path, key_path = make_certificate(self.workdir)
        site = render_nginx_site(
            https_port=self.https_port,
            http_port=self.http_port,
            upstream_ports=self.upstream_ports,
            cert_path=self.cert_path,
            key_path=key_path,
            log_dir=self.workdir,
        )
        (self.workdir / "bastion.conf").write_text(site)
        temp = "".join(
            f"    {kind}_temp_path {self.workdir}/{kind}_temp;\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # A root master would hand requests to workers running as nobody,
        # which cannot enter the test's private directories.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        main = (
            f"{user}daemon off;\nworker_processes 1;\n"
            f"pid {self.workdir}/nginx.pid;\n"
            f"error_log {self.workdir}/main-error.log warn;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n{temp}"
            f"    access_log {self.workdir}/main-access.log;\n"
            f"    include {self.workdir}/bastion.conf;\n}}\n"
        )
        config = self.workdir / "nginx.conf"
        config.write_text(main)
        checked = subprocess.run(
            [binary, "-t", "-p", str(self.workdir), "-c", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t failed: {checked.stderr}")
        self.process = subprocess.Popen(
            [binary, "-p", str(self.workdir), "-c", str(config)],
            stdout=(self.workdir / "nginx.out").open("a"),
            stderr=subprocess.STDOUT,
        )

        def ready() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.https_port), 0.2):
                    return True
            except OSError:
                return False

        wait_until(ready, 10, "nginx")

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_path))

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGQUIT)
            self.process = None


def request(
    host: str,
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | dict | None = None,
    headers: dict[str, str] | None = None,
    source: str | None = None,
    tls: ssl.SSLContext | None = None,
    timeout: float = 10,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Send one request on a new connection, optionally from ``source``."""
    source_address = (source, 0) if source else None
    if tls is not None:
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, source_address=source_address, context=tls
        )
    else:
        connection = http.client.HTTPConnection(
            host, port, timeout=timeout, source_address=source_address
        )
    all_headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    try:
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()
