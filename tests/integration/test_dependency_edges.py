"""Dependency edges go with their child (migration 0024): pruning, --delete-jobs or a DBA's
DELETE of a dependent job drops its edges; a child kept while its parents are pruned keeps them
(its page names those parents as pruned)."""

from __future__ import annotations

import threading

import psycopg
import pytest

import pgqueue
from pgqueue import chain, chord
from pgqueue.migrate import apply_migrations, migration_files
from tests.apps import canvas_app
from tests.helpers import scalar, wait_until
from tests.integration.test_canvas import canvas_app_on_test_database  # noqa: F401 (fixture)

add, double, collect, explode = (canvas_app.add, canvas_app.double, canvas_app.collect,
                                 canvas_app.explode)
EDGES = "SELECT count(*) FROM pgqueue.job_dependencies"
PRUNE_DAY_OLD = "SELECT pgqueue.prune_batch(interval '1 day', interval '1 day', interval '1 day')"


def _run_all(app: pgqueue.App, **options: object) -> None:
    assert app.run_worker(one_shot=True, poll_interval=0.05, **options) == 0  # type: ignore[arg-type]


def _age(dsn: str, job_ids: list[int]) -> None:
    """Make finished jobs ten days old, as retention would find them."""
    scalar(dsn, "UPDATE pgqueue.jobs SET finished_at = now() - interval '10 days' "
                "WHERE id = ANY(%s) RETURNING 1", (job_ids,))


def test_pruning_a_finished_chord_and_chain_leaves_no_edges(app: pgqueue.App, dsn: str) -> None:
    handles = [chord([double.s(n) for n in range(50)], collect.s()).defer(),
               chain(add.s(1, 2), double.s(), double.s()).defer()]
    _run_all(app)
    assert scalar(dsn, EDGES) == 50 + 2
    _age(dsn, [i for handle in handles for i in handle.job_ids])
    assert scalar(dsn, PRUNE_DAY_OLD) == 50 + 1 + 3
    assert (scalar(dsn, "SELECT count(*) FROM pgqueue.jobs"), scalar(dsn, EDGES)) == (0, 0)


def test_a_child_kept_while_its_parents_are_pruned_keeps_its_edges(
    app: pgqueue.App, dsn: str,
) -> None:
    handle = chord([double.s(n) for n in range(3)], collect.s()).defer()
    _run_all(app)
    *parents, callback = handle.job_ids
    _age(dsn, parents)
    assert scalar(dsn, PRUNE_DAY_OLD) == 3
    assert scalar(dsn, EDGES) == 3
    (kept,) = app.get_workflow(handle.workflow_id)
    assert (kept.id, kept.state, kept.parent_ids) == (callback, "succeeded", tuple(parents))
    _age(dsn, [callback])
    assert scalar(dsn, PRUNE_DAY_OLD) == 1
    assert scalar(dsn, EDGES) == 0


def test_delete_jobs_always_on_a_workflow_leaves_no_edges(app: pgqueue.App, dsn: str) -> None:
    """Rows deleted as their jobs end take their edges as children; the parents, kept for
    their dependents (recorded, not deleted), and what they leave go when pruned."""
    parent = add.defer(1, 2)
    _run_all(app)
    double.using(depends_on=[parent]).defer(5)  # queued: its parent succeeded
    _run_all(app, delete_jobs="always")
    assert (scalar(dsn, "SELECT count(*) FROM pgqueue.jobs"), scalar(dsn, EDGES)) == (1, 0)
    chord([double.s(n) for n in range(20)], collect.s()).defer()
    chain(add.s(1, 2), explode.s(), double.s()).defer()
    _run_all(app, delete_jobs="always")
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs "
                       "WHERE state::text NOT IN ('succeeded', 'failed', 'cancelled')") == 0
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.job_dependencies AS d WHERE NOT EXISTS "
                       "(SELECT FROM pgqueue.jobs AS j WHERE j.id = d.child_id)") == 0
    scalar(dsn, "UPDATE pgqueue.jobs SET finished_at = now() - interval '10 days' RETURNING 1")
    scalar(dsn, PRUNE_DAY_OLD)
    assert (scalar(dsn, "SELECT count(*) FROM pgqueue.jobs"), scalar(dsn, EDGES)) == (0, 0)


@pytest.mark.parametrize("first_step", ["add", "explode"])
def test_a_blocked_child_deleted_before_its_parent_ends(
    app: pgqueue.App, dsn: str, first_step: str,
) -> None:
    """A DBA deletes a blocked step: its parent's end (success or failure) still records, and
    drops the edge the deleted child left to it."""
    first = add.s(1, 2) if first_step == "add" else explode.s(1)
    handle = chain(first, double.s(), double.s()).defer()
    parent, child, grandchild = handle.job_ids
    scalar(dsn, "DELETE FROM pgqueue.jobs WHERE id = %s RETURNING 1", (child,))
    _run_all(app)
    assert scalar(dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = %s", (parent,)) == (
        "succeeded" if first_step == "add" else "failed")
    assert scalar(dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = %s",
                  (grandchild,)) == "cancelled"  # its parent was deleted unfinished
    assert scalar(dsn, "SELECT array_agg(child_id) FROM pgqueue.job_dependencies") == [grandchild]


def test_deleting_a_child_while_its_parent_ends_does_not_deadlock(
    app: pgqueue.App, dsn: str,
) -> None:
    """The parent's acknowledgement locks the edge, then waits for the child's row, which a DBA
    holds and deletes: the child's trigger must not wait for the edge (a deadlock, one of the two
    transactions aborted). The parent's trigger drops the edge once the delete has committed."""
    parent, child = chain(add.s(1, 2), double.s()).defer().job_ids
    scalar(dsn, "UPDATE pgqueue.jobs SET state = 'running', claim_token = gen_random_uuid() "
                "WHERE id = %s RETURNING 1", (parent,))
    errors: list[BaseException] = []
    with psycopg.connect(dsn) as dba, psycopg.connect(dsn) as worker:
        dba.execute("SELECT 1 FROM pgqueue.jobs WHERE id = %s FOR UPDATE", (child,))
        worker_pid = worker.info.backend_pid

        def acknowledge_parent() -> None:
            try:
                worker.execute("UPDATE pgqueue.jobs SET state = 'succeeded', finished_at = now() "
                               "WHERE id = %s", (parent,))
                worker.commit()
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        thread = threading.Thread(target=acknowledge_parent)
        thread.start()
        wait_until(lambda: scalar(dsn, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity "
                                       "WHERE pid = %s", (worker_pid,)),
                   message="the acknowledgement to wait on the child's row")
        dba.execute("DELETE FROM pgqueue.jobs WHERE id = %s", (child,))
        dba.commit()
        thread.join(30)
    assert not errors
    assert scalar(dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = %s", (parent,)) == (
        "succeeded")
    assert scalar(dsn, EDGES) == 0


def test_the_migration_drops_edges_left_by_children_deleted_before_it(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        for migration in migration_files():
            if migration.name < "0024":
                conn.execute(migration.sql.encode())
        (parent,) = conn.execute("SELECT pgqueue.enqueue('t')").fetchone() or ()
        children = [conn.execute(
            "SELECT pgqueue.enqueue_after(ARRAY[%s]::bigint[], 'cancel', 't', 'default', '[]', "
            "'{}', 0, now(), 1, NULL, NULL, NULL)", (parent,)).fetchone()[0]  # type: ignore[index]
            for _ in range(3)]
        conn.execute("DELETE FROM pgqueue.jobs WHERE id = ANY(%s)", (children[:2],))
        assert conn.execute(EDGES).fetchone() == (3,)
    assert "0024_dependency_edges" in apply_migrations(empty_dsn)
    assert scalar(empty_dsn, "SELECT array_agg(child_id) FROM pgqueue.job_dependencies") == [
        children[2]]
