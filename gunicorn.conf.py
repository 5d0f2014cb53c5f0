"""gunicorn settings for Bastion; every value can be overridden by environment.

Sync workers suit this app: each request holds one pooled connection for a
short transaction and no request waits on slow upstreams.
"""

import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

# prometheus-client reads PROMETHEUS_MULTIPROC_DIR once, at its first import,
# so the metrics directory is chosen before anything imports bastion.
if os.environ.get("METRICS_ALLOWED_NETWORKS") and not os.environ.get(
    "PROMETHEUS_MULTIPROC_DIR"
):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bastion-metrics-")

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
from bastion.gunicorn_hooks import child_exit, on_exit, on_starting  # noqa: F401 - gunicorn hooks

_cores = multiprocessing.cpu_count()

bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("GUNICORN_WORKERS", str(_cores * 2)))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# The pool wait (DB_POOL_TIMEOUT, default 5 s) stays well below this, so an
# exhausted pool answers 503 instead of getting the worker killed.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
# Only the proxy in front may set X-Forwarded-*; none is trusted by default.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The app writes one JSON line per request, so gunicorn's access log is off.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
logger_class = "bastion.gunicorn_hooks.GunicornLogger"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
preload_app = False
# gunicorn 27 opens a control socket at one fixed path per user, so several
# instances on one host would fight over it; nothing here uses it.
control_socket_disable = True
