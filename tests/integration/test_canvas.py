"""Workflows (issue 15, slice 3): chain / group / chord enqueued in one transaction, results
handed on by the release trigger, run by real workers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import pgqueue
from pgqueue import chain, chord, group
from tests.apps import canvas_app
from tests.helpers import ThreadedWorker, scalar, wait_until

add, double, collect, explode = (canvas_app.add, canvas_app.double, canvas_app.collect,
                                 canvas_app.explode)


@pytest.fixture(name="app")
def canvas_app_on_test_database(dsn: str) -> Iterator[pgqueue.App]:
    canvas_app.app.dsn = dsn
    canvas_app.calls.clear()
    yield canvas_app.app
    canvas_app.app.close()


def finished(app: pgqueue.App, handle: pgqueue.WorkflowHandle) -> list[pgqueue.WorkflowJob]:
    def all_ended() -> list[pgqueue.WorkflowJob] | None:
        jobs = app.get_workflow(handle.workflow_id)
        return jobs if all(job.state.is_final for job in jobs) else None
    return wait_until(all_ended, timeout=20, message="workflow finished")


def test_chain_passes_each_result_to_the_next_step(
    app: pgqueue.App, worker_thread: Callable[..., ThreadedWorker],
) -> None:
    handle = chain(add.s(1, 2), double.s(), add.s(10)).defer()
    assert len(handle.job_ids) == 3
    states = [job.state for job in app.get_workflow(handle.workflow_id)]
    assert states == ["queued", "blocked", "blocked"]
    worker_thread()
    jobs = finished(app, handle)
    assert [job.result for job in jobs] == [3, 6, 16]
    assert [(job.id, job.task_name) for job in jobs] == [
        (handle.job_ids[0], add.name), (handle.job_ids[1], double.name),
        (handle.job_ids[2], add.name)]
    assert canvas_app.calls == [("add", (1, 2)), ("double", 3), ("add", (6, 10))]


def test_chord_callback_runs_once_with_every_result_in_header_order(
    app: pgqueue.App, worker_thread: Callable[..., ThreadedWorker],
) -> None:
    header = [double.s(n) for n in range(8)]
    handle = chord(header, collect.s(label="sum")).defer()
    worker_thread(concurrency=4)
    worker_thread(concurrency=4)
    jobs = finished(app, handle)
    assert jobs[-1].result == {"label": "sum", "results": [2 * n for n in range(8)]}
    assert [c for c in canvas_app.calls if c[0] == "collect"] == [
        ("collect", ([2 * n for n in range(8)], "sum"))]
    assert scalar(app.dsn, "SELECT status FROM pgqueue.workflow_status WHERE workflow_id = %s",
                  (handle.workflow_id,)) == "succeeded"


def test_group_then_chain_and_chain_inside_a_chord(
    app: pgqueue.App, worker_thread: Callable[..., ThreadedWorker],
) -> None:
    handle = chain(group(add.s(1, 1), chain(add.s(2, 2), double.s())),
                   collect.s("g"), ).defer()
    worker_thread()
    jobs = finished(app, handle)
    assert jobs[-1].result == {"label": "g", "results": [2, 8]}


def test_a_failed_parent_cancels_everything_downstream(
    app: pgqueue.App, worker_thread: Callable[..., ThreadedWorker],
) -> None:
    handle = chain(add.s(1, 1), explode.s(), double.s(), chord([double.s()], collect.s())
                   ).defer()
    worker_thread()
    jobs = finished(app, handle)
    assert [job.state for job in jobs] == ["succeeded", "failed", "cancelled", "cancelled",
                                           "cancelled"]
    assert jobs[2].error_type == "ParentFailed"
    assert jobs[2].error_message == f"parent job {jobs[1].id} ended failed"
    assert [c[0] for c in canvas_app.calls] == ["add", "explode"]
    row = scalar(app.dsn, "SELECT (status, failed, cancelled)::text FROM pgqueue.workflow_status"
                 " WHERE workflow_id = %s", (handle.workflow_id,))
    assert row == "(failed,1,3)"


def test_the_whole_workflow_rolls_back_with_the_callers_transaction(
    app: pgqueue.App, dsn: str,
) -> None:
    with psycopg.connect(dsn) as conn:
        handle = chord([add.s(1, 2), add.s(3, 4)], collect.s()).defer(connection=conn)
        assert len(app.get_workflow(handle.workflow_id)) == 0  # not committed yet
        conn.rollback()
    assert app.get_workflow(handle.workflow_id) == []
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.job_dependencies") == 0
    with psycopg.connect(dsn) as conn:
        committed = chain(add.s(1, 2), double.s()).defer(connection=conn)
    assert [job.state for job in app.get_workflow(committed.workflow_id)] == ["queued",
                                                                              "blocked"]


def test_a_bad_step_writes_nothing(app: pgqueue.App, dsn: str) -> None:
    with pytest.raises(pgqueue.InvalidArguments):
        chain(add.s(1, 2), add.s(1, 2)).defer()  # the second gets the result too: 3 arguments
    with pytest.raises(pgqueue.InvalidArguments):
        chord([add.s(1, 2)], add.s()).defer()
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0


def test_signatures_are_checked_when_created() -> None:
    with pytest.raises(pgqueue.InvalidArguments):
        add.s(object())
    with pytest.raises(pgqueue.InvalidArguments):
        add.s({1: "int keys do not survive JSON"})
    with pytest.raises(pgqueue.UnknownTask):
        canvas_app.app.signature("no.such.task", 1)
    assert canvas_app.app.signature(add.name, 1) == add.s(1)
    with pytest.raises(pgqueue.ConfigurationError):
        chain()
    with pytest.raises(pgqueue.ConfigurationError):
        group(add.s(1, 2), add)  # type: ignore[arg-type]
    with pytest.raises(pgqueue.ConfigurationError):
        chord(add.s(1, 2), collect.s())  # type: ignore[arg-type]
    with pytest.raises(pgqueue.ConfigurationError):
        chain(add.using(lock="k").s(1, 2)).defer()
    other = pgqueue.App()
    with pytest.raises(pgqueue.ConfigurationError):
        chain(add.s(1, 2), other.task(name="t")(lambda x: x).s())


def test_cancel_workflow_cancels_its_unfinished_jobs_only(app: pgqueue.App, dsn: str) -> None:
    handle = chain(add.s(1, 2), double.s(), double.s()).defer()
    bystander = add.defer(5, 5)
    assert app.cancel_workflow(str(handle.workflow_id)) == 1  # the root; the trigger the rest
    assert [job.state for job in app.get_workflow(handle.workflow_id)] == ["cancelled"] * 3
    assert app.get_job(bystander).state == "queued"
    assert app.cancel_workflow(handle.workflow_id) == 0
    assert app.get_workflow(uuid.uuid4()) == []
    with pytest.raises(pgqueue.ConfigurationError):
        app.get_workflow("not-a-uuid")


def test_a_callback_that_runs_anyway_gets_null_for_a_failed_parent(
    app: pgqueue.App, worker_thread: Callable[..., ThreadedWorker],
) -> None:
    anyway = collect.using(on_parent_failure="run", queue="default").s("anyway")
    handle = chord([add.s(1, 1), explode.s(2)], anyway).defer()
    worker_thread()
    jobs = finished(app, handle)
    assert [job.state for job in jobs] == ["succeeded", "failed", "succeeded"]
    assert jobs[-1].result == {"label": "anyway", "results": [2, None]}


def test_chord_parents_acknowledged_at_once_hand_on_both_results(
    app: pgqueue.App, dsn: str,
) -> None:
    """The first acknowledgement's trigger locks the other parent's row (it leaves the callback
    to that parent's end, migration 0023), so the second acknowledgement waits until the first
    commits; the list it then writes holds the first's result too (a fresh snapshot)."""
    handle = chord([double.s(1), double.s(2)], collect.s()).defer()
    header, callback = handle.job_ids[:2], handle.job_ids[2]
    scalar(dsn, "UPDATE pgqueue.jobs SET state = 'running' WHERE id = ANY(%s) RETURNING 1",
           (list(header),))
    ack = "UPDATE pgqueue.jobs SET state = 'succeeded', result = %s::jsonb WHERE id = %s"
    with psycopg.connect(dsn) as first, psycopg.connect(dsn) as second:
        first.execute(ack, ("2", header[0]))
        blocked_pid = second.info.backend_pid
        thread = threading.Thread(target=lambda: (second.execute(ack, ("4", header[1])),
                                                  second.commit()))
        thread.start()
        wait_until(lambda: scalar(dsn, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity "
                                       "WHERE pid = %s", (blocked_pid,)),
                   message="the second acknowledgement to wait for the first")
        first.commit()
        thread.join(30)
    assert scalar(dsn, "SELECT jsonb_build_array(state::text, args) FROM pgqueue.jobs "
                       "WHERE id = %s", (callback,)) == ["queued", [[2, 4]]]


def test_every_step_keeps_its_tasks_options(app: pgqueue.App, dsn: str) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    configured = add.using(queue="slow", priority=5, run_at=when, timeout=7.5,
                           retry=3, concurrency_key="k",
                           on_parent_failure="run")
    handle = chain(double.s(1), configured.s(2), add.using(delay=60).s(3)).defer()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT queue, priority, run_at, max_attempts, timeout_seconds, concurrency_key, "
            "on_parent_failure, state::text, parents_pending, has_dependents, pass_results, "
            "args, run_at > now() + interval '59 seconds' FROM pgqueue.jobs "
            "WHERE id = ANY(%s) ORDER BY id", (list(handle.job_ids),)).fetchall()
    assert rows[1][:9] == ("slow", 5, when, 4, 7.5, "k", "run", "blocked", 1)
    assert [row[9:12] for row in rows] == [(True, None, [1]), (True, "one", [2]),
                                           (False, "one", [3])]
    assert rows[0][6] is None and rows[0][7] == "queued" and rows[2][12]
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.job_dependencies") == 2


def test_enqueue_workflow_refuses_an_edge_that_does_not_point_back(dsn: str) -> None:
    step = '{"task_name": "t", "queue": "default", "priority": 0, "delay": 0, "max_attempts": 1}'
    with psycopg.connect(dsn) as conn:
        for children, parents in (([1], [2]), ([2], [2]), ([3], [1]), ([2], [0])):
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                conn.execute("SELECT pgqueue.enqueue_workflow(gen_random_uuid(), %s, "
                             "'[[], []]', '[{}, {}]', %s, %s)",
                             (f"[{step}, {step}]", children, parents))
            conn.rollback()
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0


@pytest.mark.parametrize("delete_jobs", ["successful", "always"])
def test_delete_jobs_keeps_the_rows_a_workflow_still_reads(
    app: pgqueue.App, delete_jobs: str,
) -> None:
    """`--delete-jobs` drops a finished row at once, but a parent's row carries its result to
    its dependents and its end to their release: such rows are recorded, not deleted (retention
    prunes them later); the callback, which nothing depends on, is deleted as it ends."""
    handle = chord([double.s(n) for n in range(4)], collect.s(label="sum")).defer()
    app.run_worker(one_shot=True, concurrency=4, delete_jobs=delete_jobs)
    assert [c for c in canvas_app.calls if c[0] == "collect"] == [
        ("collect", ([0, 2, 4, 6], "sum"))]
    assert scalar(app.dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s",
                  (handle.job_ids[-1],)) == 0
    assert [job.state for job in app.get_workflow(handle.workflow_id)] == ["succeeded"] * 4
