"""Every worker session is bounded: statements and lock waits cannot last forever, and a
worker frozen inside a transaction has it ended by the server, so its row locks go (and rescue
can take its jobs). Direct connections send the bounds at start; behind a transaction-mode
pooler each explicit transaction sets them for itself."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from pgqueue.db import Pooler, arun_on
from pgqueue.errors import DatabaseUnavailable
from pgqueue.worker import connection as worker_connection
from pgqueue.worker.connection import SESSION_BOUNDS, DedicatedConnection
from tests.helpers import SqlCall


def _setting(name: str) -> SqlCall:
    return SqlCall(f"SELECT current_setting('{name}')")


@pytest.mark.parametrize("pooler", ["none", "transaction"])
def test_worker_sessions_carry_the_bounds(dsn: str, pooler: Pooler) -> None:
    async def read() -> tuple[dict[str, str], dict[str, str]]:
        connection = DedicatedConnection(dsn, pooler=pooler)
        try:
            async with connection.transaction() as conn:
                inside = {name: await arun_on(conn, _setting(name))  # type: ignore[arg-type]
                          for name in SESSION_BOUNDS}
            session = {name: await connection.run(_setting(name))  # type: ignore[arg-type]
                       for name in SESSION_BOUNDS}
        finally:
            await connection.close()
        return inside, session

    inside, session = asyncio.run(read())
    assert inside == SESSION_BOUNDS
    # Behind a pooler nothing outlives the transaction (it would reach other clients).
    assert session == (SESSION_BOUNDS if pooler == "none" else {
        "statement_timeout": "0", "lock_timeout": "0",
        "idle_in_transaction_session_timeout": "0"})


@pytest.mark.parametrize("pooler", ["none", "transaction"])
def test_a_worker_frozen_in_a_transaction_loses_it_and_its_locks(
    dsn: str, pooler: Pooler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SESSION_BOUNDS, "idle_in_transaction_session_timeout", "300ms")
    with psycopg.connect(dsn, autocommit=True) as other:
        job_id = other.execute("INSERT INTO pgqueue.jobs (task_name) VALUES ('t') "
                               "RETURNING id").fetchone()[0]

        def row_lock_is_free() -> bool:
            try:
                with other.transaction():
                    other.execute("SELECT 1 FROM pgqueue.jobs WHERE id = %s FOR UPDATE NOWAIT",
                                  (job_id,))
                return True
            except psycopg.errors.LockNotAvailable:
                return False

        lock_free_while: dict[str, bool] = {}

        async def freeze_holding_the_row() -> None:
            connection = worker_connection.DedicatedConnection(dsn, pooler=pooler)
            async with connection.transaction() as conn:
                await arun_on(conn, SqlCall(  # type: ignore[arg-type]
                    f"SELECT id FROM pgqueue.jobs WHERE id = {job_id} FOR UPDATE"))
                lock_free_while["holding"] = row_lock_is_free()
                # Frozen: nothing sent while the transaction is open, well past the bound.
                for _ in range(100):
                    await asyncio.sleep(0.05)
                    if row_lock_is_free():
                        lock_free_while["frozen"] = True
                        break

        with pytest.raises((DatabaseUnavailable, psycopg.OperationalError)):
            asyncio.run(freeze_holding_the_row())  # its transaction was ended meanwhile
        assert lock_free_while == {"holding": False, "frozen": True}
