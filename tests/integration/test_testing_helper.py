"""pgqueue.testing, the helper for users' own test suites: assertions on enqueued jobs and
running due jobs in the test's process, on the real database."""

from __future__ import annotations

import asyncio

import pytest

import pgqueue
from pgqueue.testing import QueueTester
from tests.apps import core_app


@pytest.fixture
def tester(app: pgqueue.App) -> QueueTester:
    return QueueTester(app)


def test_assert_enqueued_matches_task_args_kwargs_and_queue(tester: QueueTester) -> None:
    core_app.add.defer(1, b=2)
    core_app.add.using(queue="math").defer(3, 4)
    [job] = tester.assert_enqueued(core_app.add, args=[1], kwargs={"b": 2})
    assert job.queue == "default"
    assert tester.assert_enqueued("tests.apps.core_app.add", args=[3, 4], queue="math")
    tester.assert_enqueued(core_app.add, count=2)
    tester.refute_enqueued(core_app.add, args=[9])
    tester.refute_enqueued(core_app.noop)
    with pytest.raises(AssertionError) as missing:
        tester.assert_enqueued(core_app.add, args=[5])
    message = str(missing.value)
    assert "expected a job of tests.apps.core_app.add with args=[5], found 0" in message
    assert "args=[1] kwargs={'b': 2} queue=default" in message  # what is there instead
    with pytest.raises(AssertionError, match="expected no job"):
        tester.refute_enqueued(core_app.add, queue="math")
    with pytest.raises(AssertionError, match=r"expected 3 job\(s\)"):
        tester.assert_enqueued(core_app.add, count=3)


def test_run_jobs_runs_every_due_job_and_those_they_defer_here(dsn: str) -> None:
    shop = pgqueue.App(dsn)
    tester = QueueTester(shop)

    @shop.task(name="shop.ship")
    def ship(order: int) -> str:
        return f"shipped {order}"

    @shop.task(name="shop.checkout")
    def checkout(order: int) -> None:
        ship.defer(order)  # deferred while the job runs: run_jobs runs it too

    @shop.task(name="shop.flaky", retry=pgqueue.RetryPolicy(max_attempts=3, backoff="fixed",
                                                            base_delay=0))
    def flaky() -> None:
        raise ValueError("no luck")

    try:
        checkout.defer(7)
        flaky.defer()  # three attempts, no backoff: every one runs now
        later = ship.using(delay=3600).defer(8)
        assert tester.run_jobs() == {"succeeded": 2, "retry": 2, "failed": 1}
        assert [job.id for job in tester.enqueued()] == [later]  # not due: left queued
        [shipped] = tester.jobs(ship, states=("succeeded",))
        assert shipped.result == "shipped 7"
    finally:
        shop.close()


def test_arun_jobs_from_async_code(tester: QueueTester) -> None:
    job_id = core_app.async_echo.defer("hi")
    assert asyncio.run(tester.arun_jobs()) == {"succeeded": 1}
    assert tester.app.get_job(job_id).result == "hi"


def test_clear_forgets_every_job(tester: QueueTester) -> None:
    core_app.add.defer(1, 2)
    tester.clear()
    assert tester.jobs(states=("queued", "succeeded")) == []
