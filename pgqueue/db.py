"""Connections to Postgres: pools, the LISTEN connection, and driver-error translation.

This is the only module that imports psycopg. Everything else hands it a `Call` (a named query,
its parameters and how to decode the rows) and gets typed values back, sync or async, so no
query is written twice.

Every connection opened here carries an `application_name` (`pgqueue`, or `pgqueue worker
<name> <role>` for a worker's own), so a DBA can name and count them in `pg_stat_activity`;
pgqueue's name replaces one set in the DSN. Behind a transaction-mode pooler (`pooler =
"transaction"`) no connection prepares statements: the pooler hands each transaction to
whichever server session is free, where a statement prepared on another one does not exist
(docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    asynccontextmanager,
    contextmanager,
    suppress,
)
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, get_args

import psycopg
import psycopg.conninfo
import psycopg.errors
import psycopg_pool
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from pgqueue.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    DuplicateJob,
    PermissionDenied,
    ReadOnlyDatabase,
    SchemaMissing,
    UnknownParent,
)
from pgqueue.queries import query

T = TypeVar("T")
Row = dict[str, Any]
Connection = psycopg.Connection
AsyncConnection = psycopg.AsyncConnection
# A caller-supplied connection or cursor (psycopg's, or Django's wrapper around psycopg).
ExternalConnection = Any

JOBS_CHANNEL = "pgqueue_jobs"
ABORT_CHANNEL = "pgqueue_abort"

Pooler = Literal["none", "transaction"]
"""What sits between pgqueue and Postgres: "none" (a direct connection, or a session-mode
pooler, which keeps one server session per client) or "transaction" (PgBouncer, Supavisor, RDS
Proxy in transaction mode: no prepared statements, no LISTEN)."""
POOLERS: tuple[Pooler, ...] = get_args(Pooler)

APPLICATION_NAME = "pgqueue"
WorkerRole = Literal["claim", "ack", "listen", "pool"]
_MAX_APPLICATION_NAME = 63
"""The server keeps NAMEDATALEN - 1 bytes of an application_name and cuts the rest."""


class AsyncDatabase(Protocol):
    """What async callers need of a database: `Database` (pools), or a worker's own
    connection (pgqueue.worker.connection), which its background services share."""

    async def arun(self, call: Call[T], connection: AsyncConnection | None = None) -> T: ...

    def aconnection(self) -> AbstractAsyncContextManager[AsyncConnection]: ...


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


def check_conninfo(conninfo: str) -> str:
    """A DSN libpq cannot parse is a configuration error, said in one line, before any
    connection is tried."""
    try:
        psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"not a valid DSN ({' '.join(str(exc).split())}): use "
                                 "postgresql://user@host:port/dbname or 'host=... "
                                 "dbname=...'") from exc
    return conninfo


def resolve_pooler(pooler: str | None) -> Pooler:
    """The argument, else PGQUEUE_POOLER, else "none"; any other value is refused."""
    chosen = pooler or os.environ.get("PGQUEUE_POOLER") or "none"
    for known in POOLERS:
        if chosen == known:
            return known
    source = "" if pooler else " (PGQUEUE_POOLER)"
    raise ConfigurationError(
        f"pooler must be one of {', '.join(POOLERS)}, not {chosen!r}{source}")


def resolve_listen_dsn(listen_dsn: str | None) -> str | None:
    """The argument, else PGQUEUE_LISTEN_DSN, else None (LISTEN on the main DSN, if it can)."""
    return listen_dsn or os.environ.get("PGQUEUE_LISTEN_DSN") or None


def worker_application_name(worker_name: str, role: WorkerRole) -> str:
    """`pgqueue worker <name> <role>`: the stem (below), a space and the role."""
    return f"{worker_application_stem(worker_name)} {role}"


def worker_application_stem(worker_name: str) -> str:
    """`pgqueue worker <name>`, the same for every role of a worker (recorded in
    pgqueue.workers, so workers_overview can count its connections), leaving room for the
    longest role within the 63 bytes the server keeps: a long name loses its head and keeps
    its tail, where the default host-pid name has the pid. Non-ASCII characters become `?`
    here (the server would turn each of their bytes into one)."""
    name = "".join(c if " " <= c <= "~" else "?" for c in worker_name)
    prefix = "pgqueue worker "
    room = _MAX_APPLICATION_NAME - len(prefix) - 1 - max(map(len, get_args(WorkerRole)))
    if len(name) > room:
        name = "~" + name[len(name) - room + 1:]
    return f"{prefix}{name}"


def prepare_threshold_for(pooler: Pooler, threshold: int) -> int | None:
    """Prepare a query on its `threshold`-th run, or never behind a transaction-mode pooler."""
    return None if pooler == "transaction" else threshold


_POOLER_HINT = ("is a transaction-mode pooler (PgBouncer, Supavisor, RDS Proxy) in front of "
               "Postgres? Set pooler='transaction' (PGQUEUE_POOLER=transaction, --pooler "
               "transaction): see docs/deployment.md")


def _pooler_error(exc: psycopg.Error) -> ConfigurationError:
    one_line = " ".join(str(exc).split())
    return ConfigurationError(f"{one_line}: {_POOLER_HINT}")


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turn driver errors a caller can act on into pgqueue errors, keeping the cause.

    A prepared statement missing, duplicated or of another shape is the mark of a
    transaction-mode pooler set up as a direct connection (each transaction may run on another
    server session; a direct session never meets these with psycopg's own statement names):
    that is a configuration error, named with its fix."""
    try:
        yield
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName,
            psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedObject,
            psycopg.errors.UndefinedColumn) as exc:
        # The primary message only: str(exc) adds the statement's text and a caret line.
        raise SchemaMissing(f"pgqueue schema missing or out of date ({_primary(exc)}); "
                            "run `pgqueue migrate`") from exc
    except psycopg.errors.InsufficientPrivilege as exc:
        raise PermissionDenied(f"permission denied: {_primary(exc)}; the role needs the "
                               "grants of migrations_sql/roles.sql") from exc
    except (psycopg.errors.DuplicatePreparedStatement,
            psycopg.errors.InvalidSqlStatementName) as exc:
        raise _pooler_error(exc) from exc
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name != "jobs_unique_key_idx":
            raise
        # Queueing a finished job again (an operator retry) while another holds its key.
        raise DuplicateJob("another queued or running job holds this job's unique key; "
                           "retry it once that job has finished") from exc
    except psycopg.errors.ForeignKeyViolation as exc:
        if exc.diag.message_hint != "pgqueue:unknown_parents":
            raise
        raise UnknownParent(exc.diag.message_primary or str(exc)) from exc
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        # Read-only in a way pgqueue.readonly could not see coming (the server did not report
        # it). The primary message only: str(exc) adds the PL/pgSQL context of prune() etc.
        raise ReadOnlyDatabase(f"read-only: {_primary(exc)}; point the DSN at the primary") \
            from exc
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout,
            psycopg.errors.IdleInTransactionSessionTimeout) as exc:
        if isinstance(exc, psycopg.errors.ProtocolViolation) and "prepared statement" in str(exc):
            raise _pooler_error(exc) from exc
        one_line = " ".join(str(exc).split())
        raise DatabaseUnavailable(f"database unavailable: {one_line}") from exc


def _primary(exc: psycopg.Error) -> str:
    return exc.diag.message_primary or str(exc).splitlines()[0]


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


def connect(conninfo: str, *, autocommit: bool = True, prepare_threshold: int | None = 5,
            application_name: str = APPLICATION_NAME) -> Connection:
    check_conninfo(conninfo)
    with translated_errors():
        return psycopg.connect(conninfo, autocommit=autocommit, row_factory=dict_row,
                               prepare_threshold=prepare_threshold,
                               application_name=application_name)


async def aconnect(conninfo: str, *, autocommit: bool = True, prepare_threshold: int | None = 1,
                   application_name: str = APPLICATION_NAME,
                   settings: Mapping[str, str] | None = None) -> AsyncConnection:
    """`settings` are session settings sent at connection start (`-c name=value`): only for
    direct connections, since a transaction-mode pooler refuses or drops them. They are added
    to the DSN's own `options` (`-c role=...`, say), which an `options` argument would
    otherwise replace."""
    check_conninfo(conninfo)
    extra = {}
    if settings:
        own = psycopg.conninfo.conninfo_to_dict(conninfo).get("options")
        ours = " ".join(f"-c {name}={value}" for name, value in settings.items())
        extra["options"] = f"{own} {ours}" if own else ours
    with translated_errors():
        return await psycopg.AsyncConnection.connect(
            conninfo, autocommit=autocommit, row_factory=dict_row,
            prepare_threshold=prepare_threshold, application_name=application_name, **extra)


class Database:
    """Lazily opened sync and async pools on one DSN; both run the same `Call` objects.

    Sync calls go first to a "fast lane": one connection kept for single statements, used by
    whichever thread finds it free. A pool checkout costs about as much as a small INSERT's
    own client work, so a producer calling `defer()` in a loop skips it; callers that find the
    lane busy (concurrent threads) fall back to the pool, so connections stay bounded.
    """

    def __init__(self, conninfo: str, *, max_size: int = 10, pooler: Pooler = "none",
                 application_name: str = APPLICATION_NAME) -> None:
        self.conninfo = conninfo
        self.max_size = max_size
        self.pooler = pooler
        self.application_name = application_name
        """Carried by the connections opened from now on: a worker names the pool of its own
        app before first use (`pgqueue worker <name> pool`)."""
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._apool: psycopg_pool.AsyncConnectionPool | None = None
        self._lane: Connection | None = None
        self._lane_pid = 0
        self._lane_lock = threading.Lock()

    def _pool_kwargs(self) -> dict[str, Any]:
        return {"autocommit": True, "row_factory": dict_row,
                "prepare_threshold": prepare_threshold_for(self.pooler, 1),
                "application_name": self.application_name}

    @property
    def pool(self) -> psycopg_pool.ConnectionPool:
        if self._pool is None:
            with connect(self.conninfo, prepare_threshold=None,
                         application_name=self.application_name):
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
            probe = await aconnect(self.conninfo, prepare_threshold=None,
                                   application_name=self.application_name)
            await probe.close()  # fail fast, as in `pool`
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

    @contextmanager
    def transaction(self) -> Iterator[ExternalConnection | None]:
        """One transaction for several `run` calls (a workflow's jobs): pass what it yields
        as their `connection`. Here a pool connection; Django's database yields None inside
        `atomic()`, so the calls join the ORM's transaction."""
        with self.connection() as conn, conn.transaction():
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
            lane = self._lane = connect(
                self.conninfo, prepare_threshold=prepare_threshold_for(self.pooler, 1),
                application_name=self.application_name)
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
    """The dedicated LISTEN connection of a worker; `wait` returns the notifications that came.

    It must be a direct session (a transaction-mode pooler would run LISTEN on one server
    session and hand it to other clients after). It runs nothing worth preparing."""

    def __init__(self, conninfo: str, channels: tuple[str, ...], *,
                 application_name: str = APPLICATION_NAME) -> None:
        self.conninfo = conninfo
        self.channels = channels
        self.application_name = application_name
        self._conn: AsyncConnection | None = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    async def connect(self) -> None:
        await self.close()
        conn = await aconnect(self.conninfo, prepare_threshold=None,
                              application_name=self.application_name)
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
