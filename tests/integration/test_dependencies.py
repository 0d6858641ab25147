"""Job dependencies (issue 15, slice 2): `using(depends_on=[ids])` holds a job `blocked` until
every parent succeeded, released by the trigger in the parent's own acknowledgement."""

from __future__ import annotations

import threading

import psycopg
import pytest

import pgqueue
from pgqueue.errors import ConfigurationError
from tests.apps import retry_app
from tests.helpers import scalar, wait_until
from tests.integration.retry_app_fixtures import (  # noqa: F401 (a fixture)
    retry_app_on_test_database,
    run_one_shot,
)


def test_a_dependent_job_runs_after_every_parent_succeeded(app: pgqueue.App) -> None:
    first, second = retry_app.succeeds.defer(), retry_app.succeeds.defer()
    child = retry_app.succeeds.using(depends_on=[first, second]).defer()
    assert app.get_job(child).state == "blocked"
    run_one_shot(app)
    jobs = [app.get_job(i) for i in (first, second, child)]
    assert [j.state for j in jobs] == ["succeeded"] * 3
    assert jobs[2].started_at > max(jobs[0].finished_at, jobs[1].finished_at)


def test_a_failed_parent_cancels_dependents_and_theirs_with_the_reason(
    app: pgqueue.App,
) -> None:
    ok = retry_app.succeeds.defer()
    bad = retry_app.gives_up.defer("no")
    child = retry_app.succeeds.using(depends_on=[ok, bad]).defer()
    grandchild = retry_app.succeeds.using(depends_on=[child]).defer()
    runs_anyway = retry_app.succeeds.using(depends_on=[bad], on_parent_failure="run").defer()
    run_one_shot(app)
    cancelled = app.get_job(child)
    assert cancelled.state == "cancelled" and cancelled.error is not None
    assert (cancelled.error.type, cancelled.error.message) == (
        "ParentFailed", f"parent job {bad} ended failed")
    assert app.get_job(grandchild).state == "cancelled"
    assert app.get_job(grandchild).error.message == f"parent job {child} ended cancelled"
    assert app.get_job(runs_anyway).state == "succeeded"


def test_parents_already_finished_at_defer_time(app: pgqueue.App) -> None:
    done, failed = retry_app.succeeds.defer(), retry_app.gives_up.defer("x")
    run_one_shot(app)
    queued = retry_app.succeeds.using(depends_on=[done]).defer()
    cancelled = retry_app.succeeds.using(depends_on=[done, failed]).defer()
    assert app.get_job(queued).state == "queued"
    assert app.get_job(cancelled).state == "cancelled"
    assert app.get_job(cancelled).error.message == f"parent job {failed} ended failed"


def test_operator_cancel_of_a_parent_or_a_blocked_job(app: pgqueue.App) -> None:
    parent = retry_app.succeeds.defer()
    child = retry_app.succeeds.using(depends_on=[parent]).defer()
    other_parent = retry_app.succeeds.defer()
    blocked = retry_app.succeeds.using(depends_on=[other_parent]).defer()
    assert app.cancel_job(parent) == "cancelled"
    assert app.get_job(child).state == "cancelled"
    assert app.cancel_job(blocked) == "cancelled"
    run_one_shot(app)
    assert app.get_job(other_parent).state == "succeeded"
    assert app.get_job(blocked).state == "cancelled"  # settling skips a finished child


def test_unknown_parents_raise_and_write_nothing(app: pgqueue.App, dsn: str) -> None:
    real = retry_app.succeeds.defer()
    with pytest.raises(pgqueue.UnknownParent, match="999999"):
        retry_app.succeeds.using(depends_on=[real, 999999]).defer()
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1
    assert scalar(dsn, "SELECT has_dependents FROM pgqueue.jobs") is False
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.job_dependencies") == 0


def test_bad_dependency_options_are_refused() -> None:
    for bad in ([], [0], ["1"], 5):
        with pytest.raises(ConfigurationError):
            retry_app.succeeds.using(depends_on=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        retry_app.succeeds.using(on_parent_failure="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        retry_app.succeeds.using(depends_on=[1], lock="x")
    with pytest.raises(ConfigurationError):
        retry_app.succeeds.using(depends_on=[1]).defer_many([()])


def test_dependent_enqueue_joins_the_callers_transaction(app: pgqueue.App, dsn: str) -> None:
    parent = retry_app.succeeds.defer()
    with psycopg.connect(dsn) as conn:
        retry_app.succeeds.using(depends_on=[parent]).defer(connection=conn)
        conn.rollback()
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.job_dependencies") == 0


def test_two_parents_acknowledged_at_once_release_the_child_exactly_once(
    app: pgqueue.App, dsn: str,
) -> None:
    """Two sessions record the two parents' successes at once: the first's trigger locks the
    second parent's row (leaving the child to its end, migration 0023), so the second waits
    until the first commits, then finds no parent left; the child is queued once, by the
    second."""
    parents = [retry_app.succeeds.defer() for _ in range(2)]
    child = retry_app.succeeds.using(depends_on=parents).defer()
    scalar(dsn, "UPDATE pgqueue.jobs SET state = 'running', claim_token = gen_random_uuid() "
                "WHERE id = ANY(%s) RETURNING 1", (parents,))
    finish = "UPDATE pgqueue.jobs SET state = 'succeeded', finished_at = now() WHERE id = %s"
    errors: list[BaseException] = []
    with psycopg.connect(dsn) as first, psycopg.connect(dsn) as second:
        first.execute(finish, (parents[0],))  # uncommitted: holds the child's row
        second_pid = second.info.backend_pid

        def acknowledge_second() -> None:
            try:
                second.execute(finish, (parents[1],))
                second.commit()
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        thread = threading.Thread(target=acknowledge_second)
        thread.start()
        wait_until(lambda: scalar(dsn, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity "
                                       "WHERE pid = %s", (second_pid,)),
                   message="the second acknowledgement to wait for the first")
        assert scalar(dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = %s",
                      (child,)) == "blocked"
        first.commit()
        thread.join(30)
    assert not errors
    assert scalar(dsn, "SELECT state::text || ':' || parents_pending FROM pgqueue.jobs "
                       "WHERE id = %s", (child,)) == "queued:0"
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.job_dependencies WHERE done") == 2
