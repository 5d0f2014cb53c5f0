"""Which X-Forwarded-* headers the app believes.

``TRUSTED_PROXY_COUNT`` is the number of proxies in front of the app that
each set (or append to) ``X-Forwarded-For``, ``-Proto`` and ``-Host``.
Werkzeug's ProxyFix then takes the client address, scheme and host from
that many entries counted from the right, which are the ones our own
proxies wrote. Entries further left came from the client and are ignored.
With the default of 0 no header is read, so a client cannot choose its
address.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from bastion.config import Settings


def install_proxy_fix(app: Flask, settings: Settings) -> None:
    """Read the forwarded headers of ``settings.trusted_proxy_count`` proxies."""
    count = settings.trusted_proxy_count
    if count == 0:
        return
    app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
        app.wsgi_app, x_for=count, x_proto=count, x_host=count
    )
