"""Testing code that defers jobs, in your own test suite, on a real Postgres.

No fake engine: jobs go to the same tables and run through the same worker as in production,
in the test's own process when you ask (`run_jobs`), so what a test proves holds in
production. Point your App at a test database and use it as a pytest plugin:

    # conftest.py
    import pytest
    from myproject.tasks import app

    pytest_plugins = ["pgqueue.testing"]

    @pytest.fixture(scope="session")
    def pgqueue_app():
        app.dsn = "postgresql://localhost/myproject_test"   # migrated once per session
        return app

    # test_signup.py
    from myproject.tasks import send_welcome

    def test_signup_sends_a_welcome(pgqueue_tester):
        signup("ada@example.com")
        pgqueue_tester.assert_enqueued(send_welcome, args=["ada@example.com"])
        assert pgqueue_tester.run_jobs() == {"succeeded": 1}
        pgqueue_tester.refute_enqueued(send_welcome)

`pgqueue_tester` deletes every job before and after each test. `QueueTester(app)` works
without pytest too. `run_jobs` runs every due job, and the jobs those jobs defer, with a
one-shot worker in this process (no LISTEN, no scheduler, no retention) and returns how many
attempts ended in each way; a job retried with a delay is left queued, as in production.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from pgqueue import store
from pgqueue.app import App
from pgqueue.migrate import apply_migrations
from pgqueue.tasks import Task
from pgqueue.types import Job
from pgqueue.worker.options import WorkerOptions
from pgqueue.worker.outcome import Outcome

ENQUEUED_STATES = ("queued", "waiting")
"""Jobs deferred and not started yet (waiting: behind a lock)."""
MAX_LISTED = 10_000


class _OutcomeCounter:
    """A worker observer: how many attempts ended in each way."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def job_finished(self, outcome: Outcome, seconds: float) -> None:
        self.counts[str(outcome.kind)] += 1


class QueueTester:
    """Assertions on deferred jobs, and running them on demand, for one App."""

    def __init__(self, app: App) -> None:
        self.app = app

    def migrate(self) -> None:
        """Create or upgrade the pgqueue schema in the app's database."""
        apply_migrations(self.app.dsn)

    def clear(self) -> None:
        """Forget every job."""
        self.app.db.run(store.delete_all_jobs())

    def jobs(self, task: Task[Any, Any] | str | None = None, *,
             states: Sequence[str] = ENQUEUED_STATES, queue: str | None = None) -> list[Job]:
        """Jobs of `task` (a Task or its name; None: every task) in `states`, oldest first."""
        name = task.name if isinstance(task, Task) else task
        found = [job for state in states for job in self.app.list_jobs(
            state=state, queue=queue, task_name=name, limit=MAX_LISTED)]
        return sorted(found, key=lambda job: job.id)

    def enqueued(self, task: Task[Any, Any] | str | None = None, *,
                 args: Sequence[Any] | None = None, kwargs: dict[str, Any] | None = None,
                 queue: str | None = None) -> list[Job]:
        """Enqueued jobs (not started yet) matching every criterion given."""
        return [job for job in self.jobs(task, queue=queue)
                if (args is None or job.args == list(args))
                and (kwargs is None or job.kwargs == kwargs)]

    def assert_enqueued(self, task: Task[Any, Any] | str, *, args: Sequence[Any] | None = None,
                        kwargs: dict[str, Any] | None = None, queue: str | None = None,
                        count: int | None = None) -> list[Job]:
        """At least one (or exactly `count`) enqueued job matches; the matches are returned.
        The failure message lists what is enqueued for the task instead."""
        matches = self.enqueued(task, args=args, kwargs=kwargs, queue=queue)
        if (count is None and matches) or (count is not None and len(matches) == count):
            return matches
        wanted = _describe(task, args, kwargs, queue)
        present = [f"  job {job.id}: args={job.args} kwargs={job.kwargs} queue={job.queue}"
                   for job in self.jobs(task)] or ["  none"]
        expected = "a job" if count is None else f"{count} job(s)"
        raise AssertionError(f"expected {expected} {wanted}, found {len(matches)}; enqueued "
                             "for this task:\n" + "\n".join(present))

    def refute_enqueued(self, task: Task[Any, Any] | str, *,
                        args: Sequence[Any] | None = None, kwargs: dict[str, Any] | None = None,
                        queue: str | None = None) -> None:
        """No enqueued job matches."""
        matches = self.enqueued(task, args=args, kwargs=kwargs, queue=queue)
        if matches:
            raise AssertionError(f"expected no job {_describe(task, args, kwargs, queue)}, "
                                 f"found {len(matches)}: ids {[job.id for job in matches]}")

    def run_jobs(self, *, queues: Sequence[str] | None = None) -> dict[str, int]:
        """Run every due job here and now (see the module docstring); attempts by outcome:
        succeeded, failed, retry, cancelled."""
        from pgqueue.worker.runner import Worker

        counter = _OutcomeCounter()
        worker = Worker(self.app, _one_shot(queues))
        worker.observers.append(counter)
        worker.run()
        return dict(counter.counts)

    async def arun_jobs(self, *, queues: Sequence[str] | None = None) -> dict[str, int]:
        """`run_jobs` from async code (a test already inside an event loop)."""
        from pgqueue.worker.runner import Worker

        counter = _OutcomeCounter()
        worker = Worker(self.app, _one_shot(queues))
        worker.observers.append(counter)
        await worker.arun()
        return dict(counter.counts)


def _one_shot(queues: Sequence[str] | None) -> WorkerOptions:
    return WorkerOptions(queues=tuple(queues) if queues else None, one_shot=True, listen=False,
                         periodic=False, prune_every=None, poll_interval=0.05,
                         name="pgqueue.testing")


def _describe(task: Task[Any, Any] | str, args: Sequence[Any] | None,
              kwargs: dict[str, Any] | None, queue: str | None) -> str:
    name = task.name if isinstance(task, Task) else task
    criteria = [f"{label}={value!r}" for label, value in (
        ("args", None if args is None else list(args)), ("kwargs", kwargs), ("queue", queue))
        if value is not None]
    return f"of {name}" + (f" with {', '.join(criteria)}" if criteria else "")


try:
    import pytest
except ImportError:  # pgqueue.testing without pytest: QueueTester only
    pass
else:
    _migrated: set[str] = set()

    @pytest.fixture
    def pgqueue_tester(pgqueue_app: App) -> Iterator[QueueTester]:
        """A QueueTester on your `pgqueue_app` fixture's App: its database migrated (once per
        DSN and session), every job deleted before and after the test."""
        tester = QueueTester(pgqueue_app)
        if pgqueue_app.dsn not in _migrated:
            tester.migrate()
            _migrated.add(pgqueue_app.dsn)
        tester.clear()
        yield tester
        tester.clear()
