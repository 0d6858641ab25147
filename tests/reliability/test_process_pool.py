"""`pgqueue worker --pool process` as a real process with real children, faults injected: a
child killed, segfaulting or exiting mid-job; a poison task; timeouts and cancellation of tasks
that never look at should_abort(); shutdown by one signal, two signals, Ctrl-C and the
shutdown deadline; the worker itself killed; the per-child limits from the command line.

The heartbeat timeout is 60 s throughout: a job that ends as WorkerLost well before it did not
wait for a rescue."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

import pgqueue
from tests.apps import pool_app
from tests.helpers import wait_until
from tests.reliability.conftest import WorkerProcesses

APP = "tests.apps.pool_app:app"
BEATS = ("--heartbeat-interval", "0.5", "--heartbeat-timeout", "60")
LONG_BEFORE_A_RESCUE = 30.0


@pytest.fixture
def app(dsn: str) -> Iterator[pgqueue.App]:
    pool_app.app.dsn = dsn
    yield pool_app.app
    pool_app.app.close()


def _start(workers: WorkerProcesses, dsn: str, *args: str) -> subprocess.Popen[str]:
    return workers.start(dsn, "--pool", "process", *BEATS, *args, app=APP)


def _job(app: pgqueue.App, job_id: int) -> pgqueue.Job:
    return app.get_job(job_id)


def _done(app: pgqueue.App, job_id: int, timeout: float = 60) -> pgqueue.Job:
    return wait_until(lambda: (job := _job(app, job_id)).state in (
        "succeeded", "failed", "cancelled") and job, timeout=timeout,
        message=f"job {job_id} finished")


def _children(dsn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM pgqueue.worker_children WHERE alive").fetchall()


def _child_running(dsn: str, job_id: int) -> int:
    """The pid of the child running the job, once the heartbeat has shown it."""
    return wait_until(lambda: next((row["pid"] for row in _children(dsn)
                                    if row["job_id"] == job_id), None),
                      timeout=30, message=f"a child running job {job_id}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    """Where a spinning task marks that it runs (one file per process)."""
    directory = tmp_path / "marks"
    directory.mkdir()
    return directory


def _marks(marker_dir: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in marker_dir.iterdir()}


def _stopped_running(marker_dir: Path) -> None:
    """The task that writes a mark every 50 ms has stopped: nothing grows for half a second
    (and its process is gone)."""
    before = _marks(marker_dir)
    time.sleep(0.5)
    assert _marks(marker_dir) == before
    assert not any(_alive(int(pid)) for pid in before)


def test_a_child_killed_mid_job_ends_that_attempt_at_once_and_spares_the_others(
    app: pgqueue.App, workers: WorkerProcesses
) -> None:
    victim = pool_app.slow_first_attempt.defer(60)
    bystander = pool_app.sleeps.defer(4)
    worker = _start(workers, app.dsn, "-c", "2")
    victim_pid = _child_running(app.dsn, victim)
    bystander_pid = _child_running(app.dsn, bystander)
    os.kill(victim_pid, signal.SIGKILL)
    killed_at = time.monotonic()
    lost = wait_until(lambda: (job := _job(app, victim)).error and job, timeout=60,
                      message="the attempt recorded as lost")
    ended_after = time.monotonic() - killed_at
    print(f"\n[process pool] SIGKILLed child: attempt recorded {ended_after:.2f}s later")
    assert ended_after < LONG_BEFORE_A_RESCUE
    assert lost.error.type == "WorkerLost" and "signal SIGKILL" in lost.error.message
    retried = _done(app, victim)  # its retry policy allows a second attempt
    assert (retried.state, retried.attempts) == ("succeeded", 2)
    assert retried.result not in (victim_pid, worker.pid)
    assert _done(app, bystander).result == bystander_pid  # untouched
    output = workers.output(worker)
    assert f"pool.child_died pid={victim_pid} job_id={victim} exit=\"signal SIGKILL\"" in output
    assert 'error="WorkerLost: the child process' in output
    assert worker.poll() is None


@pytest.mark.parametrize(("task", "args", "exit_text"), [
    ("exits_hard", (3,), "exit code 3"),
    ("segfaults", (), "signal SIGSEGV"),
    ("killed_by_signal", ("SIGKILL",), "signal SIGKILL"),  # as the OOM killer ends a process
])
def test_a_job_whose_child_dies_follows_its_retry_policy_and_the_pool_goes_on(
    app: pgqueue.App, workers: WorkerProcesses, task: str, args: tuple[Any, ...],
    exit_text: str
) -> None:
    poison = app.get_task(f"tests.apps.pool_app.{task}").defer(*args)
    worker = _start(workers, app.dsn, "-c", "1")
    failed = _done(app, poison)
    assert (failed.state, failed.attempts, failed.error.type) == ("failed", 2, "WorkerLost")
    assert exit_text in failed.error.message
    after = pool_app.whoami.defer()
    assert _done(app, after).state == "succeeded"
    assert worker.poll() is None


def test_poison_jobs_cannot_crash_loop_the_pool(
    app: pgqueue.App, workers: WorkerProcesses
) -> None:
    poison = [pool_app.exits_hard.defer() for _ in range(3)]
    worker = _start(workers, app.dsn, "-c", "2")
    for job_id in poison:
        job = _done(app, job_id)
        assert (job.state, job.attempts, job.error.type) == ("failed", 2, "WorkerLost")
    assert _done(app, pool_app.whoami.defer()).state == "succeeded"
    output = workers.output(worker)
    assert output.count("pool.child_died") == 6  # one per attempt, not one more
    assert "pool.children_crashing" in output  # replacements were spaced out
    assert worker.poll() is None


def test_a_timed_out_task_that_ignores_should_abort_is_killed_and_frees_its_slot(
    app: pgqueue.App, workers: WorkerProcesses, marker_dir: Path
) -> None:
    spinner = pool_app.spins_past_its_timeout.defer(str(marker_dir))
    after = pool_app.whoami.defer()
    _start(workers, app.dsn, "-c", "1")
    failed = _done(app, spinner)
    assert (failed.state, failed.attempts, failed.error.type) == ("failed", 2, "TaskTimeout")
    assert len(_marks(marker_dir)) == 2  # each attempt in its own child
    _stopped_running(marker_dir)
    assert _done(app, after).state == "succeeded"  # its one slot was given back


def test_cancelling_a_task_that_ignores_should_abort_kills_its_child(
    app: pgqueue.App, workers: WorkerProcesses, marker_dir: Path
) -> None:
    stuck = pool_app.runs_until_killed.defer(str(marker_dir))
    _start(workers, app.dsn, "-c", "1")
    child = _child_running(app.dsn, stuck)
    wait_until(lambda: _marks(marker_dir), message="the task running")
    assert app.cancel_job(stuck) == "running"
    assert _done(app, stuck, timeout=15).state == "cancelled"
    _stopped_running(marker_dir)
    assert not _alive(child)
    after = _done(app, pool_app.whoami.defer())
    assert after.state == "succeeded" and after.result != child


def test_sigterm_drains_running_jobs_in_their_children(
    app: pgqueue.App, workers: WorkerProcesses
) -> None:
    jobs = [pool_app.sleeps.defer(3) for _ in range(2)]
    worker = _start(workers, app.dsn, "-c", "2")
    children = [_child_running(app.dsn, job_id) for job_id in jobs]
    worker.send_signal(signal.SIGTERM)
    output = workers.finish(worker, timeout=60)
    assert worker.returncode == 0, output
    assert [_job(app, job_id).state for job_id in jobs] == ["succeeded", "succeeded"]
    assert not any(_alive(pid) for pid in children)


def test_ctrl_c_reaching_the_children_does_not_end_their_jobs(
    app: pgqueue.App, workers: WorkerProcesses
) -> None:
    job_id = pool_app.sleeps.defer(3)
    worker = _start(workers, app.dsn, "-c", "2")
    child = _child_running(app.dsn, job_id)
    pids = [worker.pid, *(row["pid"] for row in _children(app.dsn))]
    for pid in pids:  # what a terminal's Ctrl-C does: SIGINT to the whole process group
        os.kill(pid, signal.SIGINT)
    output = workers.finish(worker, timeout=60)
    assert worker.returncode == 0, output
    job = _job(app, job_id)
    assert (job.state, job.result) == ("succeeded", child)


def test_the_shutdown_deadline_releases_the_job_and_kills_its_child(
    app: pgqueue.App, workers: WorkerProcesses, marker_dir: Path
) -> None:
    stuck = pool_app.runs_until_killed.defer(str(marker_dir))
    worker = _start(workers, app.dsn, "-c", "1", "--shutdown-timeout", "1")
    child = _child_running(app.dsn, stuck)
    worker.send_signal(signal.SIGTERM)
    output = workers.finish(worker, timeout=30)
    assert worker.returncode == 0, output
    job = _job(app, stuck)
    assert (job.state, job.attempts) == ("queued", 0)  # given back, no attempt spent
    _stopped_running(marker_dir)
    assert not _alive(child)


def test_a_second_signal_releases_the_job_at_once_and_kills_its_child(
    app: pgqueue.App, workers: WorkerProcesses, marker_dir: Path
) -> None:
    stuck = pool_app.runs_until_killed.defer(str(marker_dir))
    worker = _start(workers, app.dsn, "-c", "1")  # a 30 s shutdown timeout
    child = _child_running(app.dsn, stuck)
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: "worker.stopping" in workers.output(worker), message="first signal seen")
    worker.send_signal(signal.SIGTERM)
    output = workers.finish(worker, timeout=15)
    assert worker.returncode == 0, output
    assert "worker.stop_forced" in output
    assert _job(app, stuck).state == "queued"
    _stopped_running(marker_dir)
    assert not _alive(child)


def test_children_of_a_killed_worker_stop_their_jobs(
    app: pgqueue.App, workers: WorkerProcesses, marker_dir: Path
) -> None:
    stuck = pool_app.runs_until_killed.defer(str(marker_dir))
    worker = _start(workers, app.dsn, "-c", "2")
    child = _child_running(app.dsn, stuck)
    idle = next(row["pid"] for row in _children(app.dsn) if row["pid"] != child)
    worker.kill()
    worker.wait(10)
    # An orphan must not go on running a job that another worker will be given.
    wait_until(lambda: not _alive(child) and not _alive(idle), timeout=10,
               message="the orphaned children gone")
    _stopped_running(marker_dir)


def test_per_child_limits_from_the_command_line(
    app: pgqueue.App, workers: WorkerProcesses
) -> None:
    by_count = [pool_app.whoami.defer() for _ in range(3)]
    worker = _start(workers, app.dsn, "-c", "1", "--max-tasks-per-child", "1")
    pids = [_done(app, job_id).result for job_id in by_count]
    assert len(set(pids)) == 3
    worker.send_signal(signal.SIGTERM)
    workers.finish(worker)
    big = pool_app.grow.defer(200)
    after = pool_app.whoami.defer()
    worker = _start(workers, app.dsn, "-c", "1", "--max-memory-per-child", "150")
    grown = _done(app, big).result
    assert _done(app, after).result != grown
    assert "pool.child_retired" in workers.output(worker)
    assert "reason=max_memory" in workers.output(worker)
