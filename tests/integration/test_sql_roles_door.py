"""migrations_sql/roles.sql, least privilege as the engine uses it: a producer bulk-enqueues and
sees no more than job ids; the worker runs its own retention but none of the operators' tools,
and writes a job's life cycle, never what the job runs. Real roles, as in test_sql_roles.py
(whose fixtures these tests share)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pgqueue.app import App
from pgqueue.maintenance.retention import RetentionPolicy, prune
from tests.integration.test_sql_roles import ROLES_SQL, Roles, owner, roles

__all__ = ["owner", "roles"]  # fixtures, used by name

Denied = psycopg.errors.InsufficientPrivilege
OPERATOR_CALLS = [
    "SELECT pgqueue.retry_job(%(id)s)",
    "SELECT pgqueue.cancel_job(%(id)s)",
    "SELECT pgqueue.retry_failed(NULL, now() - interval '1 day')",
    "SELECT pgqueue.pause_queue('emails')",
    "SELECT pgqueue.resume_queue('emails')",
    "SELECT pgqueue.pause_schedule('hourly')",
    "SELECT pgqueue.resume_schedule('hourly')",
    "CALL pgqueue.prune()",
]
JOB_CONTENT = ["task_name = 'other.task'", "queue = 'other'", "args = '[666]'",
               "kwargs = '{\"x\": 1}'", "priority = 5", "max_attempts = 99",
               "timeout_seconds = 1"]


def _finished_job(owner: psycopg.Connection[Any]) -> int:
    row = owner.execute("INSERT INTO pgqueue.jobs (task_name, queue, state, finished_at) "
                        "VALUES ('observe.quick', 'emails', 'succeeded', "
                        "now() - interval '30 days') RETURNING id").fetchone()
    assert row is not None
    return int(row[0])


def test_producer_bulk_enqueues_by_copy_and_reads_no_content(
        roles: Roles, owner: psycopg.Connection[Any]) -> None:
    """defer_many of 500 jobs or more reserves ids with nextval() and COPYs them: it was
    refused ("permission denied for sequence jobs_id_seq")."""
    app = App(roles.dsn_as(roles.producer))
    send = app.task(name="observe.quick", queue="emails")(lambda n=0: n)
    try:
        ids = send.defer_many([(n,) for n in range(600)])
    finally:
        app.close()
    assert len(set(ids)) == 600
    with roles.connect_as(roles.producer) as conn:
        # What SELECT (id, unique_key, state) shows: ids and so the number of rows, which
        # keys are held and by jobs in which state (a unique enqueue needs them), nothing of
        # their content.
        assert conn.execute("SELECT count(*), max(id) FROM pgqueue.jobs").fetchone() == (
            600, max(ids))
        for column in ("task_name", "queue", "args", "kwargs", "result", "error_message"):
            with pytest.raises(Denied):
                conn.execute(f"SELECT id FROM pgqueue.jobs WHERE {column} IS NOT NULL")
    assert owner.execute("SELECT count(*) FROM pgqueue.jobs WHERE state = 'queued'"
                         ).fetchone() == (600,)


def test_worker_prunes_but_cannot_use_the_operators_tools(
        roles: Roles, owner: psycopg.Connection[Any]) -> None:
    job_id = _finished_job(owner)
    owner.execute("INSERT INTO pgqueue.schedules (id, task_name, every) "
                  "VALUES ('hourly', 'observe.quick', '1 hour')")
    with roles.connect_as(roles.worker) as conn:
        for call in OPERATOR_CALLS:
            with pytest.raises(Denied):
                conn.execute(call, {"id": job_id})
    # The retention service's own path (pgqueue.prune_batch) works as the worker.
    app = App(roles.dsn_as(roles.worker))
    try:
        assert prune(app.db, RetentionPolicy(keep_succeeded=86_400.0)) == 1
    finally:
        app.close()
    # The schema owner keeps every tool.
    for call in OPERATOR_CALLS:
        owner.execute(call, {"id": job_id})


def test_worker_writes_the_life_cycle_never_what_a_job_runs(
        roles: Roles, owner: psycopg.Connection[Any]) -> None:
    job = owner.execute("SELECT pgqueue.enqueue('observe.quick', '[1]', 'emails')").fetchone()
    assert job is not None
    with roles.connect_as(roles.worker) as conn:
        for change in JOB_CONTENT:
            with pytest.raises(Denied):
                conn.execute(f"UPDATE pgqueue.jobs SET {change}")
        with pytest.raises(Denied):
            conn.execute("INSERT INTO pgqueue.jobs (task_name, state) VALUES ('x', 'running')")
        conn.execute("UPDATE pgqueue.jobs SET state = 'running', attempts = 1, "
                     "claim_token = gen_random_uuid(), started_at = now() WHERE id = %s", job)


def test_reapplying_roles_sql_narrows_an_older_install(
        roles: Roles, owner: psycopg.Connection[Any]) -> None:
    """The previous roles.sql granted the worker UPDATE on the whole table; GRANT only adds,
    so the file revokes that before granting columns."""
    worker = psycopg.sql.Identifier(roles.worker)
    owner.execute(psycopg.sql.SQL("GRANT INSERT, UPDATE ON pgqueue.jobs TO {}").format(worker))
    owner.execute(psycopg.sql.SQL("GRANT EXECUTE ON FUNCTION pgqueue.cancel_job(bigint) "
                                  "TO PUBLIC"))
    script = ROLES_SQL.read_text(encoding="utf-8")
    for name, unique in (("pgqueue_producer", roles.producer), ("pgqueue_worker", roles.worker),
                         ("pgqueue_observer", roles.observer)):
        script = script.replace(name, unique)
    owner.execute(script.encode())
    with roles.connect_as(roles.worker) as conn:
        with pytest.raises(Denied):
            conn.execute("UPDATE pgqueue.jobs SET args = '[666]'")
        with pytest.raises(Denied):
            conn.execute("SELECT pgqueue.cancel_job(1)")
