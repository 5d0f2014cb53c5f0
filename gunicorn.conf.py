"""gunicorn settings for Bastion in production; each can be overridden by environment.

Workers are threaded (gthread): a thread waiting on PostgreSQL or bcrypt
leaves the others serving, and the hashing bulkhead
(PASSWORD_HASH_CONCURRENCY, below GUNICORN_THREADS) keeps some threads of
every worker free for routes that do not hash. The app's settings are read
here too, so a bad configuration stops the master before any worker forks.
"""

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

from bastion import gunicorn_hooks  # noqa: E402 - needs the path above
from bastion.config import ConfigError, Settings  # noqa: E402
from bastion.gunicorn_hooks import child_exit, on_exit  # noqa: E402, F401 - hooks

try:
    _settings = Settings.from_env()
except ConfigError as exc:
    sys.exit(str(exc))

# Cores this process may run on, which a container or CPU affinity can set
# below the machine's count.
_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1

bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
workers = int(os.environ.get("GUNICORN_WORKERS", str(max(2, _cores))))
# Match DB_POOL_MAX_SIZE (default 4) so a thread rarely waits for a connection.
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# The pool wait (DB_POOL_TIMEOUT, default 5 s) stays well below this, so an
# exhausted pool returns 503 instead of getting the worker killed.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM workers finish their requests for up to this long, then exit.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
# Longer than nginx's upstream keepalive_timeout (4 s in deploy/nginx.conf),
# so nginx, not gunicorn, closes an idle connection and never reuses one
# that gunicorn closed under it.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# gunicorn's maximum short of unlimited, so a query within the document's
# length limits reaches the app and gets its JSON response even when its
# characters are invalid. A 512-character cursor and a 100-character q of
# 4-byte characters are about 7.5 KB percent-encoded, over the 4,094 default.
# NOTE: gunicorn rejects a longer request line itself, with 414 and an HTML
# body instead of the JSON error shape. The document lists that 414.
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", "8190"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))

# gunicorn takes the scheme from X-Forwarded-Proto only from these peers.
# With TRUSTED_PROXY_COUNT=0 the app believes no forwarded header, so
# gunicorn trusts no peer either; otherwise the proxy is local by default.
if _settings.trusted_proxy_count == 0:
    forwarded_allow_ips = ""
else:
    forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Access and error lines are JSON objects shaped like the app's log lines.
logger_class = "bastion.gunicorn_hooks.GunicornLogger"
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Each worker imports the app after forking and opens its own pool.
preload_app = False
# gunicorn 27 opens a control socket at one fixed path per user, so several
# instances on one host would collide on it. Bastion does not use it.
control_socket_disable = True


def on_starting(server):
    """Prepare metrics, and refuse or warn about per-process rate-limit counts."""
    from bastion.logging import configure_logging
    from bastion.ratelimit import check_worker_storage

    gunicorn_hooks.on_starting(server)
    configure_logging(_settings.log_level)
    try:
        check_worker_storage(_settings, server.cfg.workers)
    except ConfigError as exc:
        sys.exit(str(exc))
