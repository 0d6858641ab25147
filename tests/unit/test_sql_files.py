"""The SQL lives in files; these checks keep the files and the code that names them in step."""

from __future__ import annotations

import inspect
import re

from pgqueue import store
from pgqueue.db import Call
from pgqueue.migrate import full_sql, migration_files
from pgqueue.queries import QUERIES


def test_every_store_function_names_an_existing_query() -> None:
    referenced = set(re.findall(r'Call\(\s*"(\w+)"', inspect.getsource(store)))
    assert referenced, "store builds Calls by query name"
    assert referenced <= set(QUERIES), referenced - set(QUERIES)


def test_every_query_is_used_by_the_store() -> None:
    source = inspect.getsource(store)
    unused = [name for name in QUERIES if f'"{name}"' not in source]
    assert not unused, f"queries no store function runs: {unused}"


def test_claim_walks_order_like_the_claim_indexes() -> None:
    assert "pgqueue.claimable_job_ids(" in QUERIES["claim_jobs"]
    chooser = next(m.sql for m in migration_files() if m.name == "0007_claim_plan")
    assert chooser.count("FOR UPDATE SKIP LOCKED") == 2
    assert "ORDER BY priority DESC, run_at, id" in chooser
    assert "ORDER BY j.priority DESC, j.run_at, j.id" in chooser
    initial = migration_files()[0].sql
    assert "jobs_claim_order_idx ON pgqueue.jobs (priority DESC, run_at, id)" in initial
    assert "jobs_queue_claim_order_idx ON pgqueue.jobs (queue, priority DESC, run_at, id)" in (
        initial)


def test_migration_files_are_numbered_and_record_themselves() -> None:
    migrations = migration_files()
    assert migrations[0].name == "0001_initial"
    for migration in migrations:
        assert re.fullmatch(r"\d{4}_\w+", migration.name)
        assert f"INSERT INTO pgqueue.migrations (name) VALUES ('{migration.name}');" in (
            migration.sql)
    assert all(m.sql.strip() in full_sql() for m in migrations)


def test_call_defaults_to_raw_rows() -> None:
    call: Call[object] = Call("get_job", {"id": 1})
    assert call.decode([{"a": 1}]) == [{"a": 1}]
    assert "FROM pgqueue.jobs" in call.sql
