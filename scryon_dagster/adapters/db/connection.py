"""The connection pool under every query class: one transaction per unit of work, statements retried
with bounded backoff when the connection is lost (a restart, a failover, a killed backend)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self, TypeVar

import psycopg
import tenacity
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

# Lost connections (a restart, a failover, a killed backend) and their kin: worth running the statement again.
_RETRY_WAIT = tenacity.wait_exponential_jitter(multiplier=0.05, max=2.0)

_T = TypeVar("_T")


class DatabaseError(RuntimeError):
    """The call database refused or failed an operation."""


class DatabaseUnavailableError(DatabaseError):
    """The call database cannot be reached."""


class Database:
    """A pooled PostgreSQL connection with bounded retries on lost connections. Thread-safe."""

    def __init__(
        self,
        database_url: str,
        *,
        max_connections: int = 10,
        timeout_seconds: float = 10,
        retry_seconds: float = 30,
    ) -> None:
        """``retry_seconds``: how long a statement that lost its connection is tried again (0: never)."""
        self._pool = ConnectionPool(
            database_url,
            min_size=1,
            max_size=max_connections,
            timeout=timeout_seconds,
            kwargs={"autocommit": False, "connect_timeout": 5},
            open=False,
            name="scryon-calls",
            # a pooled connection may have died with a server restart: check it before handing it out
            check=ConnectionPool.check_connection,
        )
        self._opened = False
        self._retry_seconds = retry_seconds

    # --- lifecycle ------------------------------------------------------------------------------
    def open(self) -> Self:
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True
        return self

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        """A cursor inside one transaction, committed on success; connection failures become
        DatabaseUnavailableError."""
        self.open()
        try:
            with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                yield cur
        except PoolTimeout as exc:
            raise DatabaseUnavailableError("call database unreachable (connection pool timeout)") from exc
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailableError(f"call database unreachable ({type(exc).__name__})") from exc

    def run(self, work: Callable[[psycopg.Cursor[dict[str, Any]], bool], _T]) -> _T:
        """``work(cursor, retried)`` in one transaction, run again with bounded backoff when the
        connection is lost, for up to ``retry_seconds``; then DatabaseUnavailableError.

        ``retried`` is True on a second or later try: the earlier commit may have happened with only
        its answer lost, so a statement that is not idempotent checks for its own earlier effect.
        For this package's query classes only.
        """
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(DatabaseUnavailableError),
            stop=tenacity.stop_after_delay(self._retry_seconds),
            wait=_RETRY_WAIT,
            reraise=True,
        )
        for attempt in retrying:
            with attempt, self.transaction() as cur:
                return work(cur, attempt.retry_state.attempt_number > 1)
        raise AssertionError("unreachable: tenacity reraises the last error")

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """One statement in its own transaction, retried on a lost connection (see ``run``). For this
        package's query classes only: callers outside ``adapters/db`` use the named methods."""

        def execute(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> list[dict[str, Any]]:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

        return self.run(execute)

    def check(self) -> None:
        """Raise DatabaseUnavailableError unless a round trip to the database succeeds."""
        self.query("SELECT 1 AS ok")
