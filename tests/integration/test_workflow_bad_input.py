"""Bad input to a workflow or a dependent job (issue 15): a typed error at `defer`, and nothing
written -- no job, no dependency edge, no parent marked.

Cycles: a job names its parents by id, and `pgqueue.enqueue_after` (the one way a producer
writes an edge) checks those ids exist before it takes an id for the new job, so the new job
can never be among its own parents, nor among its parents' parents. Naming the very id the
job would get is refused like any unknown id. A workflow's steps are planned in order: every
step's parents are earlier steps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator

import psycopg
import pytest

import pgqueue
from pgqueue import chain, chord, group
from tests.apps import canvas_app
from tests.helpers import scalar

add, double, collect = canvas_app.add, canvas_app.double, canvas_app.collect


@pytest.fixture(name="app")
def canvas_app_on_test_database(dsn: str) -> Iterator[pgqueue.App]:
    canvas_app.app.dsn = dsn
    yield canvas_app.app
    canvas_app.app.close()


def written(dsn: str) -> tuple[int, int, int]:
    """Jobs, dependency edges, and jobs marked as having dependents."""
    return (scalar(dsn, "SELECT count(*) FROM pgqueue.jobs"),
            scalar(dsn, "SELECT count(*) FROM pgqueue.job_dependencies"),
            scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE has_dependents"))


def next_job_id(dsn: str) -> int:
    """The id the next job will get (read without taking it: no nextval)."""
    return scalar(dsn, "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END "
                       "FROM pgqueue.jobs_id_seq")


def test_a_job_cannot_be_its_own_parent(app: pgqueue.App, dsn: str) -> None:
    parent = add.defer(1, 2)
    itself = next_job_id(dsn)
    refused = re.escape(f"unknown parent job ids: {{{itself}}}")
    with pytest.raises(pgqueue.UnknownParent, match=refused):
        double.using(depends_on=[parent, itself]).defer(1)
    assert written(dsn) == (1, 0, 0)
    assert double.defer(1) == itself  # the id it named was the one it would have got


def test_nor_through_defer_async(app: pgqueue.App, dsn: str) -> None:
    parent = add.defer(1, 2)
    itself = next_job_id(dsn)

    async def defer_after_itself() -> None:
        try:
            await double.using(depends_on=[itself, parent]).defer_async(1)
        finally:
            await app.aclose()

    with pytest.raises(pgqueue.UnknownParent):
        asyncio.run(defer_after_itself())
    assert written(dsn) == (1, 0, 0)


def test_nor_through_the_sql_function(app: pgqueue.App, dsn: str) -> None:
    """The SQL enqueue a DBA or another language would call refuses it the same way."""
    parent = add.defer(1, 2)
    with psycopg.connect(dsn) as conn:
        itself = next_job_id(dsn)
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="unknown parent"):
            conn.execute(
                "SELECT pgqueue.enqueue_after(%s, 'cancel', %s, 'default', '[1]', '{}', 0, "
                "now(), 1, NULL, NULL, NULL)", ([parent, itself], double.name))
    assert written(dsn) == (1, 0, 0)


def test_edges_only_point_back_in_enqueue_order(app: pgqueue.App, dsn: str) -> None:
    """What makes a cycle impossible: every edge's parent was enqueued before its child."""
    first = add.defer(1, 2)
    second = double.using(depends_on=[first]).defer(1)
    double.using(depends_on=[first, second]).defer(2)
    chain(chord([add.s(1, 2), group(add.s(3, 4), chain(add.s(5, 6), double.s()))],
                collect.s()), double.s()).defer()
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.job_dependencies") == 8
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.job_dependencies "
                       "WHERE parent_id >= child_id") == 0


def test_unknown_parents_of_several_write_nothing(app: pgqueue.App, dsn: str) -> None:
    real = add.defer(1, 2)
    with pytest.raises(pgqueue.UnknownParent, match=re.escape("{999998,999999}")):
        double.using(depends_on=[999999, real, 999998]).defer(1)
    with psycopg.connect(dsn) as conn:
        add.defer(5, 6, connection=conn)
        with pytest.raises(pgqueue.UnknownParent):
            double.using(depends_on=[real, 999999]).defer(1, connection=conn)
        conn.rollback()  # the caller's transaction is theirs to end; it wrote nothing
    assert written(dsn) == (1, 0, 0)


def test_a_step_of_a_task_no_longer_registered(app: pgqueue.App, dsn: str) -> None:
    """A Task renamed after registration (or built by hand) names no task a worker claims:
    refused before the first step is written, wherever it is in the workflow."""
    ghost = dataclasses.replace(double, name="tests.apps.canvas_app.renamed")
    for workflow in (chain(add.s(1, 2), ghost.s()),
                     chord([add.s(1, 2), ghost.s(3)], collect.s()),
                     chain(add.s(1, 2), group(double.s(), ghost.s()))):
        with pytest.raises(pgqueue.UnknownTask, match=re.escape(ghost.name)):
            workflow.defer()
    with pytest.raises(pgqueue.UnknownTask):
        app.signature("tests.apps.canvas_app.renamed", 1)
    assert written(dsn) == (0, 0, 0)


def test_partial_arguments_that_are_not_json(app: pgqueue.App, dsn: str) -> None:
    for bad in (object(), {1: "int keys"}, {"a": {1, 2}}, float("nan"), b"bytes"):
        with pytest.raises(pgqueue.InvalidArguments):
            add.s(bad)
        with pytest.raises(pgqueue.InvalidArguments):
            collect.s(label=bad)
        with pytest.raises(pgqueue.InvalidArguments):
            pgqueue.Signature(double, (bad,))
    with pytest.raises(pgqueue.PayloadTooLarge):
        add.s("x" * (app.max_payload_bytes + 1))
    with pytest.raises(pgqueue.InvalidArguments):  # the result makes three arguments
        chain(add.s(1, 2), double.s(4)).defer()
    assert written(dsn) == (0, 0, 0)
