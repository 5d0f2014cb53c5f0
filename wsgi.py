"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``.

gunicorn imports this module in each worker after forking (``preload_app``
stays off), so every worker opens its own connection pool.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from bastion import create_app  # noqa: E402 - needs the path above

app = create_app()
