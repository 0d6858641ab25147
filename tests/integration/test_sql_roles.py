"""migrations_sql/roles.sql: each least-privilege role can do its job and nothing more.

Roles are cluster-wide, so every test creates them under names unique to the test (the file's
role names with a random suffix) and drops them afterwards. Sessions act as a role through the
`options=-c role=...` connection parameter: the same as SET ROLE, for whole processes too.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

import pgqueue
from pgqueue.app import App
from tests.apps import observe_app
from tests.helpers import REPO_ROOT, app_on, run_cli

ROLES_SQL = REPO_ROOT / "migrations_sql" / "roles.sql"
ROLE_NAMES = ("pgqueue_producer", "pgqueue_worker", "pgqueue_observer")
VIEWS = ("queue_stats", "task_stats", "stuck_jobs", "workers_overview", "worker_children",
         "health", "queue_overview", "workflow_status", "running_jobs")
Denied = psycopg.errors.InsufficientPrivilege


@dataclass(frozen=True)
class Roles:
    dsn: str
    producer: str
    worker: str
    observer: str

    def dsn_as(self, role: str) -> str:
        return make_conninfo(self.dsn, options=f"-c role={role}")

    def connect_as(self, role: str) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn_as(role), autocommit=True)


@pytest.fixture
def roles(dsn: str) -> Iterator[Roles]:
    suffix = f"_{secrets.token_hex(4)}"
    names = {name: name + suffix for name in ROLE_NAMES}
    script = ROLES_SQL.read_text(encoding="utf-8")
    for name, unique in names.items():
        script = script.replace(name, unique)
    with psycopg.connect(dsn, autocommit=True) as admin:
        can_create = admin.execute(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if not (can_create and can_create[0]):
            pytest.skip("the test server's user may not create roles")
        try:
            admin.execute(script.encode())
            # Applying it twice (after the next `pgqueue migrate`) must work.
            admin.execute(script.encode())
            yield Roles(dsn, *names.values())
        finally:
            for unique in names.values():
                role = sql.Identifier(unique)
                admin.execute(sql.SQL("DROP OWNED BY {}").format(role))
                admin.execute(sql.SQL("DROP ROLE {}").format(role))


@pytest.fixture
def owner(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


def _assert_denied(conn: psycopg.Connection[Any], statement: str, *params: Any) -> None:
    with pytest.raises(Denied):
        conn.execute(statement, params or None)


def test_producer_enqueues_and_can_do_nothing_else(roles: Roles,
                                                   owner: psycopg.Connection[Any]) -> None:
    producer_app = App(roles.dsn_as(roles.producer))
    send = producer_app.task(name="observe.quick", queue="emails")(lambda n=0: n)
    try:
        first = send.defer(1)
        many = send.defer_many([(2,), (3,)])
        after = send.using(depends_on=[first]).defer(9)  # marks its parent as a definer
    finally:
        producer_app.close()
    assert len({first, *many}) == 3
    with roles.connect_as(roles.producer) as conn:
        row = conn.execute("SELECT pgqueue.enqueue('observe.quick', '[4]', 'emails')").fetchone()
        assert row is not None
        by_sql = row[0]
        _assert_denied(conn, "SELECT args FROM pgqueue.jobs")
        _assert_denied(conn, "SELECT * FROM pgqueue.workers")
        _assert_denied(conn, "INSERT INTO pgqueue.jobs (task_name, state) "
                             "VALUES ('x', 'succeeded')")
        _assert_denied(conn, "UPDATE pgqueue.jobs SET priority = 5")
        _assert_denied(conn, "DELETE FROM pgqueue.jobs")
        # Edges come only from enqueue_after, which refuses a parent that does not exist yet:
        # a producer cannot write a cycle (tests/integration/test_workflow_bad_input.py).
        _assert_denied(conn, "INSERT INTO pgqueue.job_dependencies (parent_id, child_id) "
                             "VALUES (%s, %s)", after, first)
        _assert_denied(conn, "SELECT pgqueue.cancel_job(%s)", first)
        _assert_denied(conn, "SELECT pgqueue.pause_queue('emails')")
        for view in VIEWS:
            _assert_denied(conn, f"SELECT * FROM pgqueue.{view}")
    with roles.connect_as(roles.observer) as conn:
        _assert_denied(conn, "SELECT pgqueue.enqueue_after(ARRAY[%s]::bigint[], 'cancel', 'x', "
                             "'q', '[]', '{}', 0, now(), 1, NULL, NULL, NULL)", first)
    states = owner.execute("SELECT state::text, count(*) FROM pgqueue.jobs GROUP BY 1").fetchall()
    assert sorted(states) == [("blocked", 1), ("queued", 4)]
    assert by_sql > after > first


def test_worker_runs_jobs_but_cannot_steer_the_queue(roles: Roles,
                                                     owner: psycopg.Connection[Any]) -> None:
    ok = owner.execute("SELECT pgqueue.enqueue('observe.quick', '[1]', 'emails')").fetchone()
    bad = owner.execute("SELECT pgqueue.enqueue('observe.broken', '[]', 'emails', "
                        "max_attempts => 1)").fetchone()
    reporting = owner.execute("SELECT pgqueue.enqueue('observe.slow', '[0]', 'reports')"
                              ).fetchone()
    assert ok and bad and reporting
    # The real CLI as the worker role: schema check, register, heartbeat and rescue, claim,
    # record success and failure (and progress), unregister.
    result = run_cli("--app", "tests.apps.observe_app:app", "worker", "--one-shot",
                     dsn=roles.dsn_as(roles.worker))
    assert result.returncode == 0, result.stdout + result.stderr
    states = dict(owner.execute("SELECT id, state::text FROM pgqueue.jobs").fetchall())
    assert states == {ok[0]: "succeeded", bad[0]: "failed", reporting[0]: "succeeded"}
    assert owner.execute("SELECT progress, progress_message FROM pgqueue.jobs WHERE id = %s",
                         (reporting[0],)).fetchone() == (0.25, "rendering page 1 of 4")
    assert owner.execute("SELECT jsonb_array_length(errors) FROM pgqueue.jobs WHERE id = %s",
                         (bad[0],)).fetchone() == (1,)  # the history, written as the worker
    assert owner.execute("SELECT count(*) FROM pgqueue.workers").fetchone() == (0,)

    with app_on(observe_app.app, roles.dsn_as(roles.worker)) as worker_app:
        follow_up = observe_app.quick.defer(5)  # tasks may enqueue follow-up jobs
        assert worker_app.run_worker(one_shot=True, delete_jobs="always") == 0
    assert owner.execute("SELECT count(*) FROM pgqueue.jobs WHERE id = %s",
                         (follow_up,)).fetchone() == (0,)

    with roles.connect_as(roles.worker) as conn:
        assert conn.execute("SELECT count(*) FROM pgqueue.paused_queues").fetchone() == (0,)
        _assert_denied(conn, "SELECT pgqueue.pause_queue('emails')")
        _assert_denied(conn, "INSERT INTO pgqueue.migrations (name) VALUES ('9999_x')")
        _assert_denied(conn, "TRUNCATE pgqueue.jobs")
        _assert_denied(conn, "ALTER TABLE pgqueue.jobs ADD COLUMN x int")


def test_observer_reads_the_views_and_nothing_else(roles: Roles,
                                                   owner: psycopg.Connection[Any]) -> None:
    job = owner.execute("SELECT pgqueue.enqueue('observe.quick', '[\"secret\"]', 'emails')"
                        ).fetchone()
    assert job is not None
    owner.execute("SELECT pgqueue.pause_queue('reports')")
    with roles.connect_as(roles.observer) as conn:
        for view in VIEWS:
            conn.execute(f"SELECT * FROM pgqueue.{view}").fetchall()
        stats = conn.execute("SELECT queue, queued, paused FROM pgqueue.queue_stats").fetchall()
        assert stats == [("emails", 1, False), ("reports", 0, True)]
        health = conn.execute("SELECT queued, notification_queue_usage FROM pgqueue.health"
                              ).fetchone()
        # The NOTIFY queue is the server's, shared with every other database's listeners.
        assert health[0] == 1 and 0.0 <= health[1] < 1.0
        _assert_denied(conn, "SELECT args FROM pgqueue.jobs")
        _assert_denied(conn, "SELECT * FROM pgqueue.workers")
        _assert_denied(conn, "SELECT * FROM pgqueue.paused_queues")
        _assert_denied(conn, "SELECT pgqueue.enqueue('observe.quick')")
        _assert_denied(conn, "SELECT pgqueue.retry_job(%s)", job[0])
        _assert_denied(conn, "SELECT pgqueue.cancel_job(%s)", job[0])
        _assert_denied(conn, "SELECT pgqueue.resume_queue('reports')")
        _assert_denied(conn, "CALL pgqueue.prune()")
    # `pgqueue top` reads only the views: the observer role is enough.
    top = run_cli("top", "--once", dsn=roles.dsn_as(roles.observer))
    assert top.returncode == 0, top.stdout + top.stderr
    assert "emails" in top.stdout and "paused" in top.stdout


def test_producer_enqueues_unique_jobs(roles: Roles, owner: psycopg.Connection[Any]) -> None:
    producer_app = App(roles.dsn_as(roles.producer))
    send = producer_app.task(name="observe.quick", queue="emails")(lambda n=0: n)
    try:
        first = send.using(unique_key="k").defer(1)
        assert send.using(unique_key="k").defer(2) == first
        assert send.defer_many([(3,), (4,)], unique_keys=["k", "j"])[0] == first
    finally:
        producer_app.close()
    with roles.connect_as(roles.producer) as conn:
        by_sql = conn.execute("SELECT pgqueue.enqueue('observe.quick', '[5]', 'emails', "
                              "unique_key => 'k')").fetchone()
        assert by_sql == (first,)
        _assert_denied(conn, "SELECT args FROM pgqueue.jobs")
    assert owner.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (2,)


def test_producer_enqueues_a_workflow_and_waits_for_it(
    roles: Roles, owner: psycopg.Connection[Any],
) -> None:
    producer_app = App(roles.dsn_as(roles.producer))
    size = producer_app.task(name="observe.size")(lambda text: len(text))
    total = producer_app.task(name="observe.total")(lambda sizes: sum(sizes))
    try:
        handle = pgqueue.chord([size.s("ab"), size.s("abc")], total.s()).defer()
        first, second, callback = handle.job_ids
        for job_id, result in ((second, "3"), (first, "2")):  # as a worker's ack would
            owner.execute("UPDATE pgqueue.jobs SET state = 'succeeded', result = %s::jsonb, "
                          "finished_at = now() WHERE id = %s", (result, job_id))
        assert producer_app.wait(first, 5) == 2
    finally:
        producer_app.close()
    assert owner.execute("SELECT state::text, args FROM pgqueue.jobs WHERE id = %s",
                         (callback,)).fetchone() == ("queued", [[2, 3]])
    with roles.connect_as(roles.producer) as conn:
        _assert_denied(conn, "SELECT result FROM pgqueue.jobs")
        _assert_denied(conn, "UPDATE pgqueue.jobs SET workflow_id = NULL")
    with roles.connect_as(roles.observer) as conn:
        _assert_denied(conn, "SELECT pgqueue.watch_jobs(ARRAY[1]::bigint[])")
        _assert_denied(conn, "SELECT pgqueue.enqueue_workflow(gen_random_uuid(), '[]', '[]', "
                             "'[]', '{}', '{}')")


def test_a_worker_role_without_the_progress_grants_still_records_outcomes(
    roles: Roles, owner: psycopg.Connection[Any],
) -> None:
    """roles.sql not applied again after migration 0021: progress is dropped, with an error
    in the log, and nothing else changes (the job succeeds, the worker goes on)."""
    owner.execute(sql.SQL("REVOKE UPDATE (progress, progress_message, progress_at, meta) "
                          "ON pgqueue.jobs FROM {}").format(sql.Identifier(roles.worker)))
    reporting = [owner.execute("SELECT pgqueue.enqueue('observe.slow', '[0]', 'reports')"
                               ).fetchone()[0] for _ in range(3)]
    result = run_cli("--app", "tests.apps.observe_app:app", "worker", "--one-shot",
                     dsn=roles.dsn_as(roles.worker))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "progress.write_refused" in result.stderr
    assert "service_died" not in result.stderr
    rows = owner.execute("SELECT state::text, progress FROM pgqueue.jobs WHERE id = ANY(%s)",
                         (reporting,)).fetchall()
    assert rows == [("succeeded", None)] * 3


def test_worker_prunes_a_workflow_with_its_dependency_edges(
    roles: Roles, owner: psycopg.Connection[Any],
) -> None:
    (parent,) = owner.execute("SELECT pgqueue.enqueue('observe.quick', '[1]')").fetchone() or ()
    owner.execute("SELECT pgqueue.enqueue_after(ARRAY[%s]::bigint[], 'cancel', 'observe.quick', "
                  "'default', '[2]', '{}', 0, now(), 1, NULL, NULL, NULL)", (parent,))
    owner.execute("UPDATE pgqueue.jobs SET state = 'succeeded', "
                  "finished_at = now() - interval '10 days'")
    with roles.connect_as(roles.worker) as conn:
        assert conn.execute("SELECT pgqueue.prune_batch(interval '1 day')").fetchone() == (2,)
    assert owner.execute("SELECT count(*) FROM pgqueue.job_dependencies").fetchone() == (0,)
