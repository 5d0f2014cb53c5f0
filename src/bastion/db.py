"""The connection pool and the transaction context managers.

This is the only module that checks connections out of the pool or issues
BEGIN, COMMIT and ROLLBACK. Services open exactly one block per method:

    with self.db.write(ctx) as cur:
        cur.execute(...)

Connections run in autocommit mode, so each block sends its own BEGIN. It
ends with COMMIT, or with ROLLBACK on any exception, and the connection goes
back to the pool on every path. A block opened with ``unit_of_work`` is
shared: blocks for the same account opened inside it join its transaction,
which is how a stored idempotent response commits together with the write
it describes.

Row-level security keys every tenant table on ``bastion.account_id``, which
each block sets from its TxContext. ``bind_account`` sets it later in a
block whose account is found by a lookup.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Self

import psycopg
from psycopg import errors as pg_errors
from psycopg.abc import Params, Query
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from bastion import metrics
from bastion.config import Settings
from bastion.errors import ServiceUnavailableError

logger = logging.getLogger(__name__)

Cursor = psycopg.Cursor[DictRow]

# Errors that mean "retry later" rather than "the request is wrong": the
# server is unreachable or shutting down. The statement timeouts and lock
# failures in _RETRY_LATER_ERRORS subclass OperationalError, so they are
# caught first.
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    PoolTimeout,
    psycopg.OperationalError,
)
# Integrity errors are how services detect conflicts (a duplicate email is a
# 409), so they are logged at INFO; every other class at WARNING.
_EXPECTED_SQLSTATE_CLASSES = {"23"}
# A connection returned to the pool less than this many seconds ago skips
# the liveness check (one round trip) on its next checkout. Measured with
# make bench, that saves a tenth of the app's CPU time per simple read.
_CHECK_AFTER_IDLE_SECONDS = 1.0

# Database errors already logged, so that a block that re-raises one does
# not log it twice.
_logged_errors: weakref.WeakSet[BaseException] = weakref.WeakSet()


@dataclass
class QueryStats:
    """Database time spent by one request, in milliseconds."""

    db_ms: float = 0.0
    pool_wait_ms: float = 0.0
    statements: int = 0


_query_stats: ContextVar[QueryStats | None] = ContextVar(
    "bastion_query_stats", default=None
)


def start_query_stats() -> QueryStats:
    """Start adding up database time for the current request."""
    stats = QueryStats()
    _query_stats.set(stats)
    return stats


def stop_query_stats() -> None:
    _query_stats.set(None)


# Errors that a retry of the same request can clear: a statement or lock
# timeout, or a deadlock or serialization failure chosen by the server.
_RETRY_LATER_ERRORS: tuple[type[BaseException], ...] = (
    pg_errors.QueryCanceled,
    pg_errors.LockNotAvailable,
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
)


@dataclass(frozen=True)
class TxContext:
    """The caller a transaction runs for.

    The account and user ids become transaction-local settings. The client
    address and request id travel along for the audit trail.
    """

    account_id: str | None = None
    user_id: str | None = None
    ip: str | None = None
    request_id: str | None = None
    # Who the audit trail names when no user acts, such as "cli".
    actor: str | None = None


SYSTEM = TxContext()

# The cursor and context of the shared block this thread or request is in.
_shared_block: ContextVar[tuple[Cursor, TxContext] | None] = ContextVar(
    "bastion_shared_block", default=None
)


def session_options(settings: Settings) -> str:
    """Return the libpq ``options`` that set the three timeouts per session.

    ``flask db create-roles`` also sets them on the application role, for
    sessions that cannot pass options, such as through pgbouncer.
    """
    return (
        f"-c statement_timeout={settings.db_statement_timeout_ms} "
        f"-c lock_timeout={settings.db_lock_timeout_ms} "
        "-c idle_in_transaction_session_timeout="
        f"{settings.db_idle_in_transaction_ms}"
    )


class Database:
    """Own the connection pool and hand out transaction blocks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slow_query_ms = settings.slow_query_threshold_ms
        self._returned_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self.pool: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
            settings.database_url,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            timeout=settings.db_pool_timeout,
            # A connection that sat idle is checked on checkout and replaced
            # if broken, instead of failing the request that receives it.
            check=self._check_if_idle,
            # While the server is down the pool retries with a doubling
            # delay. It gives up after this many seconds, and the next
            # request starts a fresh attempt, so recovery waits at most
            # about half this long once the server is back.
            reconnect_timeout=settings.db_reconnect_timeout,
            open=False,
            name="bastion",
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": settings.db_connect_timeout,
                "prepare_threshold": settings.db_prepare_threshold,
                "application_name": "bastion",
                "options": session_options(settings),
            },
            connection_class=psycopg.Connection[DictRow],
        )

        self._open_lock = threading.Lock()

    def _check_if_idle(self, conn: psycopg.Connection[Any]) -> None:
        returned = self._returned_at.get(conn)
        if (
            returned is not None
            and time.monotonic() - returned < _CHECK_AFTER_IDLE_SECONDS
        ):
            # NOTE: a connection that broke within the last second fails
            # the one request that gets it (503), and the pool then drops it.
            return
        ConnectionPool.check_connection(conn)

    def open(self, wait: bool = True) -> None:
        """Open the pool; with ``wait``, fail fast if no connection can be made."""
        with self._open_lock:
            if self.pool.closed:
                self.pool.open(wait=wait, timeout=self.settings.db_pool_timeout * 2)
        metrics.observe_pool(self.pool.get_stats())

    def _ensure_open(self) -> None:
        # Admin commands build the app before the database roles may exist
        # (``flask db create-roles``), so their pool opens on first use.
        if self.pool.closed:
            try:
                self.open()
            except PoolTimeout as exc:
                raise ServiceUnavailableError() from exc

    def close(self) -> None:
        self.pool.close()

    def read(self, ctx: TxContext = SYSTEM) -> AbstractContextManager[Cursor]:
        """Open a read-only transaction block for ``ctx``."""
        return self._transaction(ctx, "BEGIN READ ONLY")

    def write(self, ctx: TxContext = SYSTEM) -> AbstractContextManager[Cursor]:
        """Open a read-write transaction block for ``ctx``."""
        return self._transaction(ctx, "BEGIN")

    def unit_of_work(self, ctx: TxContext) -> AbstractContextManager[Cursor]:
        """Open a shared read-write block.

        Blocks for the same account opened inside it use its transaction
        instead of their own, and end with it.
        """
        return self._transaction(ctx, "BEGIN", shared=True)

    @contextmanager
    def _transaction(
        self, ctx: TxContext, begin: str, *, shared: bool = False
    ) -> Iterator[Cursor]:
        joined = _shared_block.get()
        if joined is not None and joined[1].account_id == ctx.account_id:
            yield joined[0]
            return

        self._ensure_open()
        started = time.perf_counter()
        conn = self._checkout()
        try:
            with TimedCursor(conn, slow_query_ms=self.slow_query_ms) as cur:
                cur.execute(begin)
                token = _shared_block.set((cur, ctx)) if shared else None
                try:
                    _set_context(cur, ctx)
                    yield cur
                except BaseException:
                    _rollback(conn)
                    raise
                finally:
                    if token is not None:
                        _shared_block.reset(token)
                cur.execute("COMMIT")
        except _RETRY_LATER_ERRORS as exc:
            _log_db_error(exc)
            raise ServiceUnavailableError(retry_after=1) from exc
        except _UNAVAILABLE_ERRORS as exc:
            _log_db_error(exc)
            raise ServiceUnavailableError() from exc
        except psycopg.Error as exc:
            _log_db_error(exc)
            raise
        finally:
            self._returned_at[conn] = time.monotonic()
            self.pool.putconn(conn)
            metrics.observe_pool(self.pool.get_stats())
            logger.debug(
                "db_transaction",
                extra={"duration_ms": _ms_since(started)},
            )

    def _checkout(self) -> psycopg.Connection[DictRow]:
        started = time.perf_counter()
        try:
            conn = self.pool.getconn()
        except PoolTimeout as exc:
            _log_db_error(exc, pool=self.pool.get_stats())
            raise ServiceUnavailableError() from exc
        finally:
            waited = time.perf_counter() - started
            metrics.DB_POOL_WAIT.observe(waited)
            stats = _query_stats.get()
            if stats is not None:
                stats.pool_wait_ms += waited * 1000
        metrics.observe_pool(self.pool.get_stats())
        return conn

    def ping(self, timeout: float = 2.0) -> None:
        """Run ``SELECT 1`` on a pooled connection, waiting at most ``timeout``."""
        self._ensure_open()
        with self.pool.connection(timeout=timeout) as conn:
            conn.execute("SELECT 1")


class TimedCursor(psycopg.Cursor[DictRow]):
    """A cursor that times its statements and logs their errors.

    Time in statements adds to the current request's ``db_ms``. A statement
    slower than ``slow_query_ms`` (0 turns this off) is logged at WARNING,
    and at DEBUG level every statement is, by its name: never its text or
    parameters.
    """

    def __init__(
        self, connection: psycopg.Connection[Any], *, slow_query_ms: int
    ) -> None:
        super().__init__(connection, row_factory=dict_row)
        self.slow_query_ms = slow_query_ms

    def execute(
        self,
        query: Query,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        started = time.perf_counter()
        try:
            # Any: the parent's overloads split Template from other queries,
            # and this override passes either through unchanged.
            unchanged: Any = query
            return super().execute(unchanged, params, prepare=prepare, binary=binary)
        except psycopg.Error as exc:
            _log_db_error(exc, statement=statement_name(query))
            raise
        finally:
            self._record(query, started)

    def executemany(
        self, query: Query, params_seq: Iterable[Params], *, returning: bool = False
    ) -> None:
        started = time.perf_counter()
        try:
            super().executemany(query, params_seq, returning=returning)
        except psycopg.Error as exc:
            _log_db_error(exc, statement=statement_name(query))
            raise
        finally:
            self._record(query, started)

    def _record(self, query: Query, started: float) -> None:
        elapsed_ms = _ms_since(started)
        stats = _query_stats.get()
        if stats is not None:
            stats.db_ms += elapsed_ms
            stats.statements += 1
        slow = bool(self.slow_query_ms) and elapsed_ms >= self.slow_query_ms
        if slow or logger.isEnabledFor(logging.DEBUG):
            logger.log(
                logging.WARNING if slow else logging.DEBUG,
                "slow_query" if slow else "db_statement",
                extra={
                    "statement": statement_name(query),
                    "duration_ms": round(elapsed_ms, 2),
                },
            )


_CONTROL_STATEMENTS = ("BEGIN", "BEGIN READ ONLY", "COMMIT", "ROLLBACK")


def statement_name(query: Query) -> str:
    """Name a statement by the code that ran it, never by its text.

    The name is the module, function and line of the first caller outside
    this module and psycopg, such as
    ``contacts.ContactService.list_contacts:58``: stable between requests,
    free of parameters, and found with one search. It costs a stack walk,
    so it is computed only for slow or failed statements.
    """
    if isinstance(query, str) and query in _CONTROL_STATEMENTS:
        return query
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module != __name__ and not module.startswith(("psycopg", "contextlib")):
            short = module.removeprefix("bastion.services.").removeprefix("bastion.")
            return f"{short}.{frame.f_code.co_qualname}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "unknown"


def _set_context(cur: Cursor, ctx: TxContext) -> None:
    if ctx.account_id is None and ctx.user_id is None:
        return
    # is_local=true keeps both values inside this transaction, so they never
    # leak to the next user of the connection (or of a pgbouncer backend).
    cur.execute(
        """
        SELECT set_config('bastion.account_id', %(account_id)s, true),
               set_config('bastion.user_id', %(user_id)s, true)
        """,
        {"account_id": ctx.account_id or "", "user_id": ctx.user_id or ""},
    )


def bind_account(cur: Cursor, account_id: str) -> None:
    """Scope the rest of the block to ``account_id``, found by a lookup in it."""
    cur.execute(
        "SELECT set_config('bastion.account_id', %(account_id)s, true)",
        {"account_id": account_id},
    )


def _rollback(conn: psycopg.Connection[DictRow]) -> None:
    if conn.closed:
        return
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error as exc:
        # The pool discards a connection it cannot reset, so a failed
        # rollback costs one reconnect, never a leaked transaction.
        _log_db_error(exc, statement="ROLLBACK")


def _log_db_error(
    exc: BaseException, *, statement: str | None = None, **fields: Any
) -> None:
    """Log a database error once, with its SQLSTATE but no row values.

    The server's DETAIL and the full message can quote row values (a
    unique violation names the duplicate key, a check violation prints the
    whole row, password hash included), so only the primary message, the
    SQLSTATE and the names of the constraint, table and column are logged.
    """
    if exc in _logged_errors:
        return
    _logged_errors.add(exc)
    sqlstate = getattr(exc, "sqlstate", None)
    state_class = metrics.sqlstate_class(sqlstate)
    metrics.DB_ERRORS.labels(state_class).inc()
    diag = getattr(exc, "diag", None)
    level = (
        logging.INFO if state_class in _EXPECTED_SQLSTATE_CLASSES else logging.WARNING
    )
    logger.log(
        level,
        "db_error",
        extra={
            "error_type": type(exc).__name__,
            "sqlstate": sqlstate,
            "sqlstate_class": state_class,
            "constraint": getattr(diag, "constraint_name", None),
            "table": getattr(diag, "table_name", None),
            "column": getattr(diag, "column_name", None),
            "error_message": getattr(diag, "message_primary", None)
            or _driver_message(exc),
            "statement": statement,
            **fields,
        },
    )


def _driver_message(exc: BaseException) -> str:
    # Without a server diagnostic the message is the driver's or the pool's
    # own ("connection refused", "couldn't get a connection after 2.00 sec"),
    # which quotes no row; its first line is enough.
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
