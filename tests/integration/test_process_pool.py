"""The process pool (`pool="process"`, pgqueue.worker.process_pool) on a real database, with
workers in threads of the test process and their children real processes: where each kind of
task runs, what crosses the process boundary, how outcomes are classified, when children are
replaced, and what the workers table and its views show of them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue.errors import ConfigurationError
from pgqueue.worker.child_process import ChildStartFailed
from pgqueue.worker.options import WorkerOptions
from pgqueue.worker.process_pool import app_reference
from pgqueue.worker.runner import Worker
from tests.apps import pool_app
from tests.helpers import ThreadedWorker, scalar, wait_until

StartWorker = Callable[..., ThreadedWorker]


POOL = {"pool": "process", "poll_interval": 1.0, "heartbeat_interval": 0.5}
"""Retries are claimed by the poll when no notification wakes the worker."""


@pytest.fixture
def app(dsn: str) -> Iterator[pgqueue.App]:
    """The pool test app (the conftest's worker_thread runs workers of it)."""
    pool_app.app.dsn = dsn
    yield pool_app.app
    pool_app.app.process_setup = None
    pool_app.app.close()


def _finished(app: pgqueue.App, job_id: int) -> pgqueue.Job:
    return wait_until(lambda: (job := app.get_job(job_id)).state in (
        "succeeded", "failed", "cancelled") and job, timeout=60, message=f"job {job_id} done")


def _results(app: pgqueue.App, job_ids: list[int]) -> list[Any]:
    return [_finished(app, job_id).result for job_id in job_ids]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def test_sync_tasks_run_in_children_async_on_the_loop_and_per_task_pools_win(
    app: pgqueue.App, worker_thread: StartWorker
) -> None:
    in_children = [pool_app.whoami.defer() for _ in range(6)]
    in_thread = pool_app.whoami_in_thread.defer()
    on_loop = pool_app.whoami_async.defer()
    handle = worker_thread(**POOL, concurrency=2)
    child_pids = set(_results(app, in_children))
    assert len(child_pids) == 2 and os.getpid() not in child_pids  # both children, reused
    assert _finished(app, in_thread).result == os.getpid()
    assert _finished(app, on_loop).result == os.getpid()
    handle.stop()
    assert handle.exit_codes == [0]
    wait_until(lambda: not any(_alive(pid) for pid in child_pids), timeout=10,
               message="children exited with their worker")


def test_a_thread_worker_runs_process_tasks_in_children_started_on_demand(
    app: pgqueue.App, worker_thread: StartWorker
) -> None:
    worker_thread(concurrency=2, poll_interval=1.0)
    plain = pool_app.whoami.defer()
    assert _finished(app, plain).result == os.getpid()
    assert scalar(app.dsn, "SELECT count(*) FROM pgqueue.worker_children") == 0
    in_child = pool_app.whoami_in_child.defer()
    child_pid = _finished(app, in_child).result
    assert child_pid != os.getpid() and _alive(child_pid)


def test_arguments_results_and_context_cross_as_json(
    app: pgqueue.App, worker_thread: StartWorker
) -> None:
    nested = {"unicode": "żółw \u2603", "numbers": [1, -2.5, 10**18], "empty": {}, "none": None}
    echo = pool_app.echo.defer(1, "two", [3], key=nested)
    context = pool_app.context_fields.using(queue="reports").defer()
    worker_thread(**POOL, concurrency=1, name="pool-worker")
    assert _finished(app, echo).result == {"args": [1, "two", [3]], "kwargs": {"key": nested}}
    fields = _finished(app, context).result
    job = app.get_job(context)
    assert fields["job_id"] == context and fields["attempt"] == 1
    assert fields["queue"] == "reports" and fields["worker"] == "pool-worker"
    assert fields["pid"] != os.getpid()
    assert job.error is None and fields["claim_token"]


def test_outcomes_are_classified_as_in_a_thread(
    app: pgqueue.App, worker_thread: StartWorker, tmp_path: Path
) -> None:
    fails = pool_app.fails.defer("boom")
    unstorable = pool_app.returns_a_set.defer()
    system_exit = pool_app.raises_system_exit.defer()
    retried = pool_app.asks_to_retry.defer(str(tmp_path / "asked"))
    after = [pool_app.whoami.defer() for _ in range(3)]
    worker_thread(**POOL, concurrency=1)
    failed = _finished(app, fails)
    assert (failed.state, failed.attempts, failed.error.type, failed.error.message) == (
        "failed", 3, "ValueError", "boom")
    assert "raise ValueError(message)" in (failed.error.traceback or "")
    bad = _finished(app, unstorable)
    assert (bad.state, bad.attempts, bad.error.type) == ("failed", 1, "InvalidArguments")
    exited = _finished(app, system_exit)
    assert (exited.state, exited.attempts, exited.error.type) == ("failed", 2, "SystemExit")
    again = _finished(app, retried)
    assert (again.state, again.result, again.attempts) == ("succeeded", "second run", 1)
    # None of these cost the child: one process ran them all.
    assert len(set(_results(app, after))) == 1


def test_max_tasks_per_child_replaces_the_child_after_n_jobs(
    app: pgqueue.App, worker_thread: StartWorker
) -> None:
    ids = [pool_app.whoami.defer() for _ in range(5)]
    worker_thread(**POOL, concurrency=1, max_tasks_per_child=2)
    pids = _results(app, ids)
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    wait_until(lambda: not _alive(pids[0]), message="the retired child gone")


def test_max_memory_per_child_replaces_the_child_after_the_job_that_crossed_the_line(
    app: pgqueue.App, worker_thread: StartWorker
) -> None:
    small = [pool_app.grow.defer(1) for _ in range(2)]
    big = pool_app.grow.defer(200)
    next_one = pool_app.whoami.defer()
    worker_thread(**POOL, concurrency=1, max_memory_per_child=150)
    first, second = _results(app, small)
    crossed = _finished(app, big)
    assert first == second == crossed.result  # under the line: kept
    assert crossed.state == "succeeded"  # the job that crossed it keeps its outcome
    assert _finished(app, next_one).result != crossed.result
    wait_until(lambda: not _alive(crossed.result), message="the retired child gone")


def test_spawn_start_method_runs_jobs_too(app: pgqueue.App, worker_thread: StartWorker) -> None:
    ids = [pool_app.burn.defer(5) for _ in range(4)]
    worker_thread(**POOL, concurrency=2, child_start_method="spawn")
    assert os.getpid() not in set(_results(app, ids))


def test_children_are_shown_in_the_workers_table_and_views(
    app: pgqueue.App, worker_thread: StartWorker, tmp_path: Path
) -> None:
    busy = pool_app.runs_until_killed.defer(str(tmp_path))
    handle = worker_thread(**POOL, concurrency=2)

    def children() -> list[dict[str, Any]]:
        with psycopg.connect(app.dsn, row_factory=psycopg.rows.dict_row) as conn:
            return conn.execute("SELECT * FROM pgqueue.worker_children").fetchall()

    rows = wait_until(lambda: len(rows := children()) == 2 and any(r["job_id"] for r in rows)
                      and rows, timeout=30, message="both children in worker_children")
    running = next(r for r in rows if r["job_id"] == busy)
    idle = next(r for r in rows if r["job_id"] is None)
    assert running["task_name"] == "tests.apps.pool_app.runs_until_killed"
    assert running["worker_id"] == handle.worker.worker_id and running["alive"]
    assert all(r["rss_bytes"] > 5 * 2**20 and r["jobs_run"] == 0 for r in rows)
    assert idle["task_name"] is None
    with psycopg.connect(app.dsn, row_factory=psycopg.rows.dict_row) as conn:
        overview = conn.execute("SELECT pool, child_processes, children_rss_bytes "
                                "FROM pgqueue.workers_overview").fetchone()
    assert overview["pool"] == "process" and overview["child_processes"] == 2
    assert overview["children_rss_bytes"] == sum(r["rss_bytes"] for r in rows)
    assert app.cancel_job(busy) == "running"
    assert _finished(app, busy).state == "cancelled"


def test_a_thread_worker_shows_no_children(app: pgqueue.App, worker_thread: StartWorker) -> None:
    worker_thread(concurrency=1, heartbeat_interval=0.5)
    job = pool_app.whoami.defer()
    _finished(app, job)
    wait_until(lambda: scalar(app.dsn, "SELECT count(*) FROM pgqueue.workers WHERE "
                                       "last_heartbeat_at > started_at"), message="a heartbeat")
    assert scalar(app.dsn, "SELECT pool || ':' || child_processes FROM "
                           "pgqueue.workers_overview") == "thread:0"


def test_a_child_that_cannot_start_stops_the_worker_at_start(
    app: pgqueue.App, dsn: str
) -> None:
    app.process_setup = "tests.apps.pool_app:no_such_function"
    with pytest.raises(ChildStartFailed, match="no_such_function"):
        Worker(app, WorkerOptions(pool="process", concurrency=2)).run()
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.workers") == 0  # unregistered


def test_the_app_setup_hook_runs_in_each_child_before_the_app_is_imported(
    app: pgqueue.App, worker_thread: StartWorker
) -> None:
    app.process_setup = "tests.apps.pool_app:mark_setup_done"
    job = pool_app.setup_was_done.defer()
    worker_thread(**POOL, concurrency=1)
    assert _finished(app, job).result is True


@pytest.mark.parametrize(("options", "message"), [
    ({"pool": "fork"}, "pool must be thread or process"),
    ({"max_tasks_per_child": 0}, "max_tasks_per_child must be an int >= 1"),
    ({"max_memory_per_child": 1.5}, "max_memory_per_child must be an int >= 1"),
    ({"child_start_method": "fork"}, "child_start_method must be forkserver or spawn"),
])
def test_bad_pool_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WorkerOptions(**options)


def test_a_task_pool_is_checked_at_definition() -> None:
    app = pgqueue.App("postgresql://unused")

    def plain() -> None:
        return None

    with pytest.raises(ConfigurationError, match="pool must be 'thread' or 'process'"):
        app.task(pool="fork")(plain)  # type: ignore[arg-type]

    async def coroutine() -> None:
        return None

    with pytest.raises(ConfigurationError, match="applies to plain functions only"):
        app.task(pool="process")(coroutine)


def test_children_need_an_importable_app() -> None:
    assert app_reference(pool_app.app, None) == "tests.apps.pool_app:app"
    assert app_reference(pool_app.app, "given:app") == "given:app"
    with pytest.raises(ConfigurationError, match="importable module"):
        app_reference(pgqueue.App("postgresql://unused"), None)
