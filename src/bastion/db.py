"""The connection pool and the transaction context managers.

This is the only module that checks connections out of the pool or issues
BEGIN, COMMIT and ROLLBACK. Services open exactly one block per method:

    with self.db.write(ctx) as cur:
        cur.execute(...)

Connections run in autocommit mode, so each block sends its own BEGIN. It
ends with COMMIT, or with ROLLBACK on any exception, and the connection goes
back to the pool on every path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from bastion.config import Settings
from bastion.errors import ServiceUnavailableError

logger = logging.getLogger(__name__)

Cursor = psycopg.Cursor[DictRow]

# Errors that mean "retry later" rather than "the request is wrong": the
# server is unreachable, the statement or a lock wait timed out, or the
# server is shutting down.
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    PoolTimeout,
    psycopg.OperationalError,
)


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


class Database:
    """Own the connection pool and hand out transaction blocks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
            settings.database_url,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            timeout=settings.db_pool_timeout,
            # A broken connection is replaced on checkout instead of failing
            # the request that happens to receive it.
            check=ConnectionPool.check_connection,
            reconnect_timeout=60,
            open=False,
            name="bastion",
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": settings.db_connect_timeout,
                "application_name": "bastion",
            },
            connection_class=psycopg.Connection[DictRow],
        )

    def open(self, wait: bool = True) -> None:
        """Open the pool; with ``wait``, fail fast if no connection can be made."""
        self.pool.open(wait=wait, timeout=self.settings.db_pool_timeout * 2)

    def close(self) -> None:
        self.pool.close()

    def read(self, ctx: TxContext = SYSTEM) -> AbstractContextManager[Cursor]:
        """Open a read-only transaction block for ``ctx``."""
        return self._transaction(ctx, "BEGIN READ ONLY")

    def write(self, ctx: TxContext = SYSTEM) -> AbstractContextManager[Cursor]:
        """Open a read-write transaction block for ``ctx``."""
        return self._transaction(ctx, "BEGIN")

    @contextmanager
    def _transaction(self, ctx: TxContext, begin: str) -> Iterator[Cursor]:
        started = time.perf_counter()
        try:
            conn = self.pool.getconn()
        except PoolTimeout as exc:
            logger.warning("db_pool_timeout", extra={"pool": self.pool.get_stats()})
            raise ServiceUnavailableError() from exc
        try:
            with conn.cursor() as cur:
                cur.execute(begin)
                try:
                    _set_context(cur, ctx)
                    yield cur
                except BaseException:
                    _rollback(conn)
                    raise
                conn.execute("COMMIT")
        except _UNAVAILABLE_ERRORS as exc:
            _log_db_error("db_unavailable", exc)
            raise ServiceUnavailableError() from exc
        except _RETRY_LATER_ERRORS as exc:
            _log_db_error("db_timeout", exc)
            raise ServiceUnavailableError(retry_after=1) from exc
        except psycopg.Error as exc:
            _log_db_error("db_error", exc)
            raise
        finally:
            self.pool.putconn(conn)
            logger.debug(
                "db_transaction",
                extra={"duration_ms": (time.perf_counter() - started) * 1000},
            )

    def ping(self, timeout: float = 2.0) -> None:
        """Run ``SELECT 1`` on a pooled connection, waiting at most ``timeout``."""
        with self.pool.connection(timeout=timeout) as conn:
            conn.execute("SELECT 1")


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


def _rollback(conn: psycopg.Connection[DictRow]) -> None:
    if conn.closed:
        return
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error as exc:
        # The pool discards a connection it cannot reset, so a failed
        # rollback costs one reconnect, never a leaked transaction.
        _log_db_error("db_rollback_failed", exc)


def _log_db_error(event: str, exc: BaseException) -> None:
    diag = getattr(exc, "diag", None)
    logger.warning(
        event,
        extra={
            "error_type": type(exc).__name__,
            "sqlstate": getattr(exc, "sqlstate", None),
            "constraint": getattr(diag, "constraint_name", None),
            "table": getattr(diag, "table_name", None),
            "detail": str(exc),
        },
    )
