"""A worker claims only jobs of the tasks it has (migration 0015): it never spends an attempt
on a job it cannot run. Such jobs stay queued, shown by pgqueue.unserved_jobs, health and
`pgqueue stats`, until a worker that has the task takes them."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import store
from pgqueue.app import App
from pgqueue.tasks import Task
from pgqueue.types import ClaimedJob
from tests.apps import core_app
from tests.helpers import run_cli, scalar, wait_until


def _state(dsn: str, job_id: int) -> tuple[str, int, str | None]:
    return scalar(dsn, "SELECT row(state::text, attempts, error_type)::text FROM pgqueue.jobs "
                       "WHERE id = %s", (job_id,))


def test_a_worker_never_claims_a_job_of_a_task_it_does_not_have(app: App, dsn: str) -> None:
    """Before, it claimed the job and failed it with UnknownTask, attempt spent."""
    stranger = scalar(dsn, "SELECT pgqueue.enqueue('billing.charge', '[1]', max_attempts => 1)")
    mine = core_app.noop.defer(1)
    assert app.run_worker(one_shot=True) == 0
    assert _state(dsn, mine) == "(succeeded,1,)"
    assert _state(dsn, stranger) == "(queued,0,)"


def test_two_applications_on_one_queue_each_run_only_their_own(app: App, dsn: str) -> None:
    billing = pgqueue.App(dsn)

    @billing.task(name="billing.charge")
    def charge(amount: int) -> int:
        return amount * 2

    try:
        theirs = charge.defer(21)
        ours = core_app.noop.defer(1)
        assert app.run_worker(one_shot=True) == 0
        assert _state(dsn, theirs) == "(queued,0,)"
        assert billing.run_worker(one_shot=True) == 0
        assert _state(dsn, ours) == "(succeeded,1,)"
        assert _state(dsn, theirs) == "(succeeded,1,)"
        assert billing.get_job(theirs).result == 42
    finally:
        billing.close()


def test_jobs_no_live_worker_can_take_are_shown(app: App, dsn: str, worker_thread: Any) -> None:
    for _ in range(3):
        scalar(dsn, "SELECT pgqueue.enqueue('billing.charge', '[]')")
    elsewhere = core_app.noop.using(queue="elsewhere").defer(1)
    with psycopg.connect(dsn) as conn:  # no live worker at all: every due job is unserved
        assert conn.execute("SELECT queue, task_name, due FROM pgqueue.unserved_jobs"
                            ).fetchall() == [("default", "billing.charge", 3),
                                             ("elsewhere", core_app.noop.name, 1)]
    worker_thread(queues=["default"])  # has the core tasks, serves only the default queue
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT queue, task_name, due FROM pgqueue.unserved_jobs"
                            ).fetchall() == [("default", "billing.charge", 3),
                                             ("elsewhere", core_app.noop.name, 1)]
        assert conn.execute("SELECT unserved_jobs FROM pgqueue.health").fetchone()[0] == 4
        assert conn.execute("SELECT tasks FROM pgqueue.workers").fetchone()[0] == sorted(
            core_app.app.tasks)
    stats = run_cli("stats", dsn=dsn)
    assert stats.returncode == 0, stats.stderr
    assert ("4 due jobs wait for a worker that has its task and serves its queue "
            "(pgqueue.unserved_jobs): billing.charge in default: 3, "
            f"{core_app.noop.name} in elsewhere: 1") in stats.stdout
    worker_thread(queues=["elsewhere"])
    wait_until(lambda: _state(dsn, elsewhere) == "(succeeded,1,)", message="its worker")
    assert scalar(dsn, "SELECT sum(due) FROM pgqueue.unserved_jobs") == 3


class _ClaimCounter:
    def __init__(self) -> None:
        self.claims = 0

    def jobs_claimed(self, jobs: Sequence[ClaimedJob], seconds: float) -> None:
        self.claims += 1


def test_an_idle_worker_facing_only_jobs_it_cannot_run_does_not_spin(
    app: App, dsn: str, worker_thread: Any
) -> None:
    """Jobs it lacks are not "due now" to it, so it sleeps for the poll interval instead of
    claiming again and again (10 ms, 20 ms, ... as for a due job another session holds)."""
    for _ in range(50):
        scalar(dsn, "SELECT pgqueue.enqueue('billing.charge', '[]')")
    handle = worker_thread(poll_interval=0.5)
    counter = _ClaimCounter()
    handle.worker.observers.append(counter)
    time.sleep(3.0)  # what is measured is how often it claims in this span
    assert counter.claims <= 10, counter.claims  # one per poll interval, and a few wake-ups
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE attempts > 0") == 0


def test_the_worker_says_which_tasks_and_queues_it_serves(ledger_free_dsn: str) -> None:
    result = run_cli("--app", "tests.apps.idle_app:app", "worker", "--one-shot", "-q",
                     "a,b:2", dsn=ledger_free_dsn)
    assert result.returncode == 0, result.stderr
    assert "worker.started" in result.stderr
    assert "queues=a,b:2" in result.stderr and "tasks=idle.nightly" in result.stderr
    assert "worker.serves_no_tasks" not in result.stderr


def test_a_worker_with_no_task_warns_that_it_claims_nothing(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    empty = pgqueue.App(dsn)
    job_id = scalar(dsn, "SELECT pgqueue.enqueue('billing.charge', '[]')")
    try:
        with caplog.at_level(logging.INFO, logger="pgqueue.worker"):
            assert empty.run_worker(one_shot=True) == 0
    finally:
        empty.close()
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("worker.serves_no_tasks") for m in messages), messages
    assert any("tasks= " in m or m.endswith("tasks=") or 'tasks=""' in m
               for m in messages if m.startswith("worker.started")), messages
    assert _state(dsn, job_id) == "(queued,0,)"


class _Resolving(dict[str, Task[Any, Any]]):
    """A registry that finds tasks it has not seen, as the Django app's does."""

    def __init__(self, resolve: Any) -> None:
        super().__init__()
        self.resolve = resolve

    def __missing__(self, name: str) -> Task[Any, Any]:
        task = self.resolve(name)
        if task is None:
            raise KeyError(name)
        return task

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[name]
        except KeyError:
            return default


def test_an_app_whose_registry_resolves_names_claims_any_task(dsn: str) -> None:
    lazy = pgqueue.App(dsn)

    def resolve(name: str) -> Task[Any, Any] | None:
        return Task(app=lazy, func=lambda: "found", name=name) if name == "late.task" else None

    lazy.tasks = _Resolving(resolve)
    try:
        assert lazy.served_tasks() is None
        job_id = scalar(dsn, "SELECT pgqueue.enqueue('late.task', '[]')")
        assert lazy.run_worker(one_shot=True) == 0
        assert lazy.get_job(job_id).result == "found"
        assert scalar(dsn, "SELECT count(*) FROM pgqueue.workers WHERE tasks IS NOT NULL") == 0
    finally:
        lazy.close()


def test_a_worker_not_upgraded_yet_still_claims(dsn: str) -> None:
    """During a rolling deploy, old workers call the two-argument form."""
    job_id = scalar(dsn, "SELECT pgqueue.enqueue('billing.charge', '[]')")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT pgqueue.claimable_job_ids(10, NULL)").fetchone()[0] == [
            job_id]
        assert conn.execute("SELECT pgqueue.claimable_job_ids(10, NULL, ARRAY['other'])"
                            ).fetchone()[0] == []


@pytest.fixture
def ledger_free_dsn(dsn: str) -> str:
    return dsn


def test_names_of_any_spelling_reach_the_claim_intact(app: App, dsn: str) -> None:
    """The claim sends queue and task names as one text[] literal (store._names): quotes,
    backslashes, commas, braces and the word NULL must arrive as written."""
    names = ('plain', 'a,b', 'say "hi"', 'back\\slash', '{braced}', 'NULL', ' spaced ', 'ünï')
    registered = App(dsn=dsn)
    for name in names:
        registered.task(name=name)(lambda: None)
    job_ids = [scalar(dsn, "SELECT pgqueue.enqueue(%s, queue => %s)", (name, name))
               for name in names]
    with psycopg.connect(dsn, autocommit=True) as conn:
        sent = conn.execute("SELECT %s::text[]", (store._names(names),)).fetchone()
        assert sent is not None and sent[0] == list(names)
        worker_id = registered.db.run(store.register_worker(
            name="w", hostname="h", pid=1, queues=None, concurrency=10))
    claimed = registered.db.run(store.claim_jobs(worker_id=worker_id, queues=names,
                                                 limit=20, tasks=registered.served_tasks()))
    assert sorted(job.id for job in claimed) == sorted(job_ids)
    registered.close()
