"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``.

gunicorn imports this module in each worker after forking (``preload_app``
stays off), so every worker opens its own connection pool.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from bastion import create_app  # noqa: E402 - needs the path above
from bastion.config import ConfigError  # noqa: E402

try:
    app = create_app()
except ConfigError as exc:
    # One clear message instead of a traceback; gunicorn then stops.
    sys.exit(f"bastion: {exc}")
