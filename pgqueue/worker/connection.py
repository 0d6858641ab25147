"""A connection held by one hot worker loop (the claim loop, the completer) for the worker's
lifetime: checking one out of the pool per statement costs more CPU than a small claim or
acknowledgement itself.

A failed statement closes the connection and the error reaches the caller as before (the claim
loop backs off, the completer retries); the next statement opens a fresh connection, so a
terminated backend or a restarted server costs one failed statement, like a broken pool
connection does.

Claims commit without waiting for the disk (`synchronous_commit = off`): a claim lost in a
database crash only puts its job back to `queued`, to run again as after a worker crash, and
every acknowledgement (a durable commit) flushes the claims before it. It takes a WAL flush off
every claim round trip: +30% jobs/s at concurrency 10. The queries themselves say so, scoped to
their own transaction (`set_config(..., true)` in pgqueue/sql/queries.sql), never the session:
a session setting would leak through a transaction-mode pooler to other clients.

Each connection is named `pgqueue worker <name> claim|ack` for `pg_stat_activity`, and behind a
transaction-mode pooler it prepares nothing (pgqueue.db explains why): both come from the app.

The acknowledgement connection also carries the worker's background services (registration,
heartbeat, rescue, progress, retention, scheduler, metrics) through the same `arun` /
`aconnection` calls as `pgqueue.db.Database`: one at a time (a lock), each a few statements
every few seconds, so a worker holds three server connections (claims, acknowledgements,
LISTEN) instead of six.

Every session is bounded (`SESSION_BOUNDS`): a statement or a lock wait cannot last forever,
and a worker frozen inside a transaction (SIGSTOP, a stalled VM, a half-open connection) has
that transaction ended by the server, releasing its row locks for rescue. They are sent at
connection start, or, behind a transaction-mode pooler (which refuses start-up settings), set
for each explicit transaction by its first statement (autocommit statements cannot be left
idle inside a transaction).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import TYPE_CHECKING, TypeVar

from pgqueue import store
from pgqueue.db import (
    APPLICATION_NAME,
    AsyncConnection,
    Call,
    Pooler,
    WorkerRole,
    aconnect,
    arun_on,
    atransaction,
    prepare_threshold_for,
    worker_application_name,
)
from pgqueue.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from pgqueue.app import App

T = TypeVar("T")

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a new connection, as the pool waits for one."""
SESSION_BOUNDS = {
    "statement_timeout": "1min",
    "lock_timeout": "10s",
    "idle_in_transaction_session_timeout": "30s",
}
"""Far above what any worker statement takes (milliseconds), far below "forever"."""
PLANNER_SETTINGS = {"enable_seqscan": "off", "enable_bitmapscan": "off", "jit": "off"}
"""A queue table swings from empty to a million rows faster than statistics follow. A prepared
statement's generic plan, cached while the table was nearly empty, chose a sequential scan (the
cheapest way to read one page) and kept it: every claim and acknowledgement then read the whole
grown table (measured: a steady 2,000 jobs/s fell 25k jobs behind). Every worker statement
names its rows by an index condition (`id = ANY(...)` on the primary key, a claim index, a
partial index of running jobs: pgqueue/sql/queries.sql), so with sequential scans priced out
each cached plan is an index scan of the batch's rows, whatever the table held when it was
planned; plans stay cached, costing no planning per statement. Bitmap scans are priced out for
the same reason: one reads every index entry that matches before it returns a row, so the
idle worker's "is a job due?" (an EXISTS that needs one row) read the whole backlog's claim
index each time it asked — under a binding concurrency limit, after every claim (a 10,000-job
backlog drained at 855 jobs/s where 3,000 drained at 1,504). A plain index scan stops at the
first row. JIT is off: a sequential scan that no index can replace (a tiny table such as
pgqueue.queue_limits, read by a filter) is priced at 10^10 with seqscans off, which crosses
jit_above_cost and made Postgres compile the statement (340 ms for a look-up of 20 µs).
Behind a transaction-mode pooler nothing is prepared, so every statement is planned afresh on
the table as it is."""


def worker_connection(app: App, worker_name: str, role: WorkerRole) -> DedicatedConnection:
    """The claim or acknowledgement connection of a worker of `app`."""
    return DedicatedConnection(app.dsn, pooler=app.pooler,
                               application_name=worker_application_name(worker_name, role))


class DedicatedConnection:
    def __init__(self, conninfo: str, *, pooler: Pooler = "none",
                 application_name: str = APPLICATION_NAME) -> None:
        self.conninfo = conninfo
        self.pooler = pooler
        self.application_name = application_name
        self._conn: AsyncConnection | None = None
        self._in_use = asyncio.Lock()
        self.connects = 0
        """Connections opened so far (1 for a worker whose database never failed it)."""

    async def run(self, call: Call[T]) -> T:
        async with self.session() as conn:
            return await arun_on(conn, call)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """The connection inside one transaction, for several calls that land together."""
        async with self.session() as conn, atransaction(conn):
            if self.pooler == "transaction":
                await arun_on(conn, store.bound_transaction(SESSION_BOUNDS))
            yield conn

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncConnection]:
        """The connection, to this caller alone until the block ends."""
        async with self._in_use:
            conn = self._conn
            if conn is None or conn.closed:
                conn = await self._connect()
            try:
                yield conn
            except BaseException:
                # Broken, mid-transaction or cut off by a cancellation: never reuse it.
                await self.close()
                raise

    # The face of pgqueue.db.Database that the worker's services use.

    async def arun(self, call: Call[T], connection: AsyncConnection | None = None) -> T:
        if connection is not None:
            return await arun_on(connection, call)
        return await self.run(call)

    def aconnection(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self.session()

    async def _connect(self) -> AsyncConnection:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                self._conn = await aconnect(
                    self.conninfo, prepare_threshold=prepare_threshold_for(self.pooler, 1),
                    application_name=self.application_name,
                    settings={**SESSION_BOUNDS, **PLANNER_SETTINGS}
                    if self.pooler == "none" else None)
        except TimeoutError as exc:
            raise DatabaseUnavailable(
                f"database unavailable: no connection within {CONNECT_TIMEOUT:g}s") from exc
        self.connects += 1
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with suppress(Exception):  # it is being discarded; a failing close changes nothing
                await conn.close()
