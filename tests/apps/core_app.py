"""Tasks used by the engine tests; worker subprocesses import this module with --app.

Every task execution appends a row to the `ledger` table of the database in PGQUEUE_DSN (or
the app's DSN), so tests can count exactly how many times each job ran, and in which process.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

from psycopg_pool import ConnectionPool

import pgqueue

app = pgqueue.App()
_local = threading.local()

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS ledger (
    job_id      bigint NOT NULL,
    attempt     integer NOT NULL,
    pid         integer NOT NULL,
    tag         text,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


_pools: dict[tuple[int, str], ConnectionPool] = {}
_pools_lock = threading.Lock()


def _ledger_pool() -> ConnectionPool:
    """Two connections per process whatever the concurrency, so 8 workers x 8 slots stay far
    below a stock server's max_connections."""
    key = (os.getpid(), app.dsn)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = ConnectionPool(app.dsn, min_size=1, max_size=2, open=True,
                                  kwargs={"autocommit": True},
                                  check=ConnectionPool.check_connection)
            _pools[key] = pool
        return pool


def close_ledger_pools() -> None:
    """Tests call this before their database is dropped."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


def _ledger_execute(sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
    with _ledger_pool().connection() as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def record(context: pgqueue.JobContext, tag: str | None = None) -> None:
    _ledger_execute("INSERT INTO ledger (job_id, attempt, pid, tag) VALUES (%s, %s, %s, %s)",
                    (context.job_id, context.attempt, os.getpid(), tag))


@app.task(pass_context=True, retry=False)
def noop(context: pgqueue.JobContext, n: int = 0) -> int:
    record(context)
    return n


@app.task(retry=False)
def add(a: int, b: int) -> int:
    return a + b


@app.task
async def async_echo(value: object) -> object:
    await asyncio.sleep(0)
    return value


@app.task(retry=False)
async def yields_then_returns(turns: int) -> None:
    """Finishes after `turns` event-loop turns: jobs with turns 1..N end one turn apart."""
    for _ in range(turns):
        await asyncio.sleep(0)


@app.task(retry=pgqueue.RetryPolicy(max_attempts=3, backoff="fixed", base_delay=0),
          pass_context=True)
def always_fails(context: pgqueue.JobContext) -> None:
    record(context)
    raise ValueError(f"attempt {context.attempt} failed")


@app.task(pass_context=True, retry=pgqueue.RetryPolicy(max_attempts=2, backoff="fixed",
                                                      base_delay=0))
def retry_signal(context: pgqueue.JobContext) -> str:
    record(context)
    if context.attempt == 1 and not _already_retried(context.job_id):
        raise pgqueue.Retry(delay=0)
    return "done after Retry"


def _already_retried(job_id: int) -> bool:
    rows = _ledger_execute("SELECT count(*) FROM ledger WHERE job_id = %s", (job_id,))
    return bool(rows and rows[0][0] > 1)


@app.task(timeout=0.3, retry=False)
async def async_too_slow() -> None:
    await asyncio.sleep(30)


@app.task(timeout=0.3, retry=False, pass_context=True)
def sync_too_slow(context: pgqueue.JobContext) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not context.should_abort():
        time.sleep(0.01)
    return "stopped"


@app.task(pass_context=True, retry=pgqueue.RetryPolicy(max_attempts=3, backoff="fixed",
                                                      base_delay=0))
def sleep_for(context: pgqueue.JobContext, seconds: float, record_end: bool = True) -> str:
    """Sleeps in small steps so a cancel (should_abort) is seen quickly."""
    record(context, "start")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if context.should_abort():
            return "aborted"
        time.sleep(0.01)
    if record_end:
        record(context, "end")
    return "slept"


@app.task(pass_context=True)
async def async_sleep_for(context: pgqueue.JobContext, seconds: float) -> str:
    record(context, "start")
    await asyncio.sleep(seconds)
    record(context, "end")
    return "slept"


@app.task(retry=False)
def returns_unserialisable() -> object:
    return {1, 2}


CHAINS_DDL = """
CREATE TABLE IF NOT EXISTS chain_steps (
    chain_id integer NOT NULL,
    step     integer NOT NULL,
    runs     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (chain_id, step)
)
"""


@app.task(pass_context=True, retry=pgqueue.RetryPolicy(max_attempts=10, backoff="fixed",
                                                      base_delay=0))
def chain_link(context: pgqueue.JobContext, chain_id: int, step: int, last: int,
               pause: float = 0.0) -> None:
    """Counts its step and enqueues its successor in the transaction that completes the job."""
    time.sleep(pause)
    with context.atomic() as conn:
        conn.execute("INSERT INTO chain_steps (chain_id, step, runs) VALUES (%s, %s, 1) "
                     "ON CONFLICT (chain_id, step) DO UPDATE SET runs = chain_steps.runs + 1",
                     (chain_id, step))
        if step < last:
            chain_link.defer(chain_id, step + 1, last, pause, connection=conn)


@app.task(pass_context=True, retry=1)
def hard_exit(context: pgqueue.JobContext) -> None:
    record(context, "hard_exit")
    os._exit(3)


@app.task(retry=pgqueue.RetryPolicy(max_attempts=2, backoff="fixed", base_delay=0))
def raises_base_exception(kind: str) -> None:
    raise {"memory": MemoryError, "exit": SystemExit,
           "interrupt": KeyboardInterrupt}[kind]("poison")


@app.task(retry=pgqueue.RetryPolicy(max_attempts=2, backoff="fixed", base_delay=0))
async def async_raises_base_exception(kind: str) -> None:
    raise {"memory": MemoryError, "exit": SystemExit,
           "interrupt": KeyboardInterrupt}[kind]("poison")


@app.task(pass_context=True, retry=False)
def ignores_abort(context: pgqueue.JobContext, seconds: float) -> str:
    """Never looks at should_abort(): cancelling it cannot stop it early."""
    record(context, "start")
    time.sleep(seconds)
    return "finished anyway"


@app.task(timeout=30, retry=pgqueue.RetryPolicy(max_attempts=2, backoff="fixed", base_delay=0))
def raises_its_own_timeout() -> None:
    raise TimeoutError("smtp server did not answer")


@app.task(timeout=30, retry=pgqueue.RetryPolicy(max_attempts=2, backoff="fixed", base_delay=0))
async def async_raises_its_own_timeout() -> None:
    raise TimeoutError("smtp server did not answer")


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be printed")


@app.task(retry=False)
def raises_unstorable_error() -> None:
    """Postgres text refuses NUL and lone surrogates: the error must still be recorded."""
    raise ValueError("NUL \x00 and a lone surrogate \ud800 in the message")


@app.task(retry=False)
def raises_unprintable_error() -> None:
    raise _Unprintable()


@app.task(retry=pgqueue.RetryPolicy(max_attempts=3, backoff="fixed", base_delay=0))
def retries_in_ten_thousand_years() -> None:
    raise pgqueue.Retry(delay=1e300)


@app.task(retry=pgqueue.RetryPolicy(max_attempts=2, backoff=lambda attempt: float("nan")))
def fails_with_a_broken_backoff() -> None:
    raise ValueError("fails, and its backoff cannot say when to retry")


@app.task(pass_context=True, retry=pgqueue.RetryPolicy(max_attempts=3, backoff="fixed",
                                                       base_delay=0))
def hold_briefly(context: pgqueue.JobContext, seconds: float, fail: bool = False) -> None:
    """Records its start and end in the ledger, so tests can see what ran at the same time."""
    record(context, "start")
    time.sleep(seconds)
    record(context, "end")
    if fail:
        raise RuntimeError("failing on purpose")


@app.task(pass_context=True, retry=pgqueue.RetryPolicy(max_attempts=3, backoff="fixed",
                                                       base_delay=0))
def chord_part(context: pgqueue.JobContext, index: int, pause: float = 0.0,
               barrier: int | None = None) -> int:
    """A chord's parent (tests/reliability/test_workflow_faults.py): records its start, waits
    `pause` seconds, or at `barrier` (an advisory lock the test holds; every parent waiting at
    it returns at once when the test lets go), then returns its index."""
    record(context, "part")
    time.sleep(pause)
    if barrier is not None:
        _ledger_execute("SELECT pg_advisory_xact_lock_shared(%s)", (barrier,))
    return index


@app.task(pass_context=True, retry=pgqueue.RetryPolicy(max_attempts=3, backoff="fixed",
                                                       base_delay=0))
def chord_merge(context: pgqueue.JobContext, results: list[int]) -> list[int]:
    """A chord's callback: every run is in the ledger (tag 'merge'); returns what it got."""
    record(context, "merge")
    return results
