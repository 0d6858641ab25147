"""Connections to Postgres: pools, the LISTEN connection, and driver-error translation.

This is the only module that imports psycopg. Everything else hands it a `Call` (a named query,
its parameters and how to decode the rows) and gets typed values back, sync or async, so no
query is written twice.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import psycopg
import psycopg.errors
import psycopg_pool
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from pgqueue.errors import ConfigurationError, DatabaseUnavailable, SchemaMissing
from pgqueue.queries import query

T = TypeVar("T")
Row = dict[str, Any]
Connection = psycopg.Connection
AsyncConnection = psycopg.AsyncConnection
# A caller-supplied connection or cursor (psycopg's, or Django's wrapper around psycopg).
ExternalConnection = Any

JOBS_CHANNEL = "pgqueue_jobs"
ABORT_CHANNEL = "pgqueue_abort"


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One named query, ready to run: the store builds these, `Database` executes them."""

    query_name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    decode: Callable[[list[Row]], T] = lambda rows: rows  # type: ignore[assignment,return-value]
    tuples: bool = False
    """Hand `decode` plain tuples in SELECT order instead of dicts (hot paths: no per-row
    dict building)."""

    @property
    def sql(self) -> str:
        return query(self.query_name)


@dataclass(frozen=True, slots=True)
class Copy:
    """Rows for a named `COPY … FROM STDIN` query."""

    query_name: str
    data: str | Iterable[str]
    """The rows in COPY's text format, whole or in chunks (chunks stream to the server while
    the next ones are encoded)."""

    @property
    def sql(self) -> str:
        return query(self.query_name)


def copy_with(cursor: Any, copy: Copy) -> None:
    """Stream the rows through a psycopg cursor (the caller's transaction, if any)."""
    with cursor.copy(copy.sql) as stream:
        if isinstance(copy.data, str):
            stream.write(copy.data)
        else:
            for chunk in copy.data:
                stream.write(chunk)


def resolve_dsn(dsn: str | None) -> str:
    """The DSN from the argument, else PGQUEUE_DSN, else DATABASE_URL."""
    resolved = dsn or os.environ.get("PGQUEUE_DSN") or os.environ.get("DATABASE_URL")
    if not resolved:
        raise ConfigurationError(
            "no database configured: pass dsn=..., or set PGQUEUE_DSN or DATABASE_URL"
        )
    return resolved


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turn driver errors a caller can act on into pgqueue errors, keeping the cause."""
    try:
        yield
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName,
            psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedObject) as exc:
        raise SchemaMissing(f"pgqueue schema missing or out of date ({exc}); "
                            "run `pgqueue migrate`") from exc
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        one_line = " ".join(str(exc).split())
        raise DatabaseUnavailable(f"database unavailable: {one_line}") from exc


def _execute_sync(cursor: Any, call: Call[T]) -> T:
    cursor.execute(call.sql, call.params)
    rows = cursor.fetchall() if cursor.description else []
    if call.tuples:
        return call.decode([tuple(row.values()) if isinstance(row, dict) else row
                            for row in rows])
    if rows and not isinstance(rows[0], dict):
        names = [column.name for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in rows]
    return call.decode(rows)


def run_on(connection: ExternalConnection, call: Call[T]) -> T:
    """Run a call on a caller's connection (or cursor), inside whatever transaction it has open."""
    with translated_errors():
        if hasattr(connection, "execute") and hasattr(connection, "fetchall"):
            return _execute_sync(connection, call)
        with connection.cursor() as cursor:
            return _execute_sync(cursor, call)


def connect(conninfo: str, *, autocommit: bool = True, prepare_threshold: int = 5) -> Connection:
    with translated_errors():
        return psycopg.connect(conninfo, autocommit=autocommit, row_factory=dict_row,
                               prepare_threshold=prepare_threshold)


async def aconnect(conninfo: str, *, autocommit: bool = True) -> AsyncConnection:
    with translated_errors():
        return await psycopg.AsyncConnection.connect(
            conninfo, autocommit=autocommit, row_factory=dict_row, prepare_threshold=1
        )


class Database:
    """Lazily opened sync and async pools on one DSN; both run the same `Call` objects.

    Sync calls go first to a "fast lane": one connection kept for single statements, used by
    whichever thread finds it free. A pool checkout costs about as much as a small INSERT's
    own client work, so a producer calling `defer()` in a loop skips it; callers that find the
    lane busy (concurrent threads) fall back to the pool, so connections stay bounded.
    """

    def __init__(self, conninfo: str, *, max_size: int = 10) -> None:
        self.conninfo = conninfo
        self.max_size = max_size
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._apool: psycopg_pool.AsyncConnectionPool | None = None
        self._lane: Connection | None = None
        self._lane_pid = 0
        self._lane_lock = threading.Lock()

    def _pool_kwargs(self) -> dict[str, Any]:
        return {"autocommit": True, "row_factory": dict_row, "prepare_threshold": 1}

    @property
    def pool(self) -> psycopg_pool.ConnectionPool:
        if self._pool is None:
            with connect(self.conninfo):
                pass  # fail fast with the driver's own message instead of a pool timeout
            self._pool = psycopg_pool.ConnectionPool(
                self.conninfo, min_size=1, max_size=self.max_size, open=False,
                kwargs=self._pool_kwargs(), timeout=10, name="pgqueue",
            )
            with translated_errors():
                self._pool.open(wait=True, timeout=10)
        return self._pool

    async def apool(self) -> psycopg_pool.AsyncConnectionPool:
        if self._apool is None:
            await (await aconnect(self.conninfo)).close()  # fail fast, as in `pool`
            apool = psycopg_pool.AsyncConnectionPool(
                self.conninfo, min_size=1, max_size=self.max_size, open=False,
                kwargs=self._pool_kwargs(), timeout=10, name="pgqueue-async",
            )
            with translated_errors():
                await apool.open(wait=True, timeout=10)
            self._apool = apool
        return self._apool

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        with translated_errors(), self.pool.connection() as conn:
            yield conn

    @asynccontextmanager
    async def aconnection(self) -> AsyncIterator[AsyncConnection]:
        pool = await self.apool()
        with translated_errors():
            async with pool.connection() as conn:
                yield conn

    def run(self, call: Call[T], connection: ExternalConnection | None = None) -> T:
        if connection is not None:
            return run_on(connection, call)
        if self._lane_lock.acquire(blocking=False):
            try:
                return self._run_in_lane(call)
            finally:
                self._lane_lock.release()
        with self.connection() as conn:
            return run_on(conn, call)

    def _run_in_lane(self, call: Call[T]) -> T:
        lane = self._lane
        if lane is None or self._lane_pid != os.getpid() or not _idle_and_alive(lane):
            self._close_lane()
            # After a fork the parent's socket is not ours: open our own (psycopg leaves the
            # inherited one alone when it is garbage collected).
            lane = self._lane = connect(self.conninfo, prepare_threshold=1)
            self._lane_pid = os.getpid()
        try:
            return run_on(lane, call)
        except DatabaseUnavailable:
            self._close_lane()  # the next call reconnects
            raise

    def _close_lane(self) -> None:
        lane, self._lane = self._lane, None
        if lane is not None and self._lane_pid == os.getpid():
            with suppress(psycopg.Error):
                lane.close()


    def copy(self, copy: Copy, connection: ExternalConnection | None = None) -> None:
        with translated_errors():
            if connection is None:
                with self.connection() as conn, conn.transaction(), conn.cursor() as cursor:
                    copy_with(cursor, copy)
            elif hasattr(connection, "copy"):
                copy_with(connection, copy)
            else:
                with connection.cursor() as cursor:
                    copy_with(cursor, copy)

    async def arun(self, call: Call[T], connection: AsyncConnection | None = None) -> T:
        if connection is not None:
            return await arun_on(connection, call)
        async with self.aconnection() as conn:
            return await arun_on(conn, call)

    def close(self) -> None:
        with self._lane_lock:
            self._close_lane()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def aclose(self) -> None:
        if self._apool is not None:
            await self._apool.close()
            self._apool = None



def _idle_and_alive(connection: Connection) -> bool:
    """An idle connection has nothing to read: if its socket is readable, the server closed it
    or sent a fatal error (a restart, `pg_terminate_backend`, an idle timeout). Checking costs
    one poll(0) system call and spares the next call a failure it did not cause."""
    if connection.closed:
        return False
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN)
    return not poller.poll(0)


async def arun_on(connection: AsyncConnection, call: Call[T]) -> T:
    with translated_errors():
        async with connection.cursor(row_factory=tuple_row if call.tuples else dict_row) as cursor:
            await cursor.execute(call.sql, call.params)
            rows = await cursor.fetchall() if cursor.description else []
            return call.decode(rows)


@asynccontextmanager
async def atransaction(connection: AsyncConnection) -> AsyncIterator[None]:
    with translated_errors():
        async with connection.transaction():
            yield


class Listener:
    """The dedicated LISTEN connection of a worker; `wait` returns the notifications that came."""

    def __init__(self, conninfo: str, channels: tuple[str, ...]) -> None:
        self.conninfo = conninfo
        self.channels = channels
        self._conn: AsyncConnection | None = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    async def connect(self) -> None:
        await self.close()
        conn = await aconnect(self.conninfo)
        with translated_errors():
            for channel in self.channels:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        self._conn = conn

    async def wait(self, timeout: float) -> list[tuple[str, str]]:
        """Notifications received within `timeout` seconds (returns as soon as one arrives)."""
        assert self._conn is not None
        received: list[tuple[str, str]] = []
        with translated_errors():
            async for notify in self._conn.notifies(timeout=timeout, stop_after=1):
                received.append((notify.channel, notify.payload))
        return received

    async def ping(self, timeout: float) -> None:
        """Prove the connection alive (a silently dead LISTEN socket would miss every wake-up)."""
        assert self._conn is not None
        with translated_errors():
            try:
                await asyncio.wait_for(self._conn.execute("SELECT 1"), timeout)
            except TimeoutError as exc:
                raise psycopg.OperationalError("listener ping timed out") from exc

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with suppress(psycopg.Error):
                await conn.close()
