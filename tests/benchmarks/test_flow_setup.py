"""What `python -m benchmarks flow` promises about its own set-up (docs/benchmarks.md, "Flow
control cost"), checked on a real database without timing anything: the lock backlogs are
seeded as the engine itself would hold them, and every ratio has its baseline in the run."""

from __future__ import annotations

import psycopg
import pytest

from benchmarks import flow
from benchmarks.procs import BenchError
from benchmarks.systems import System, pgqueue_system


def _system(dsn: str) -> System:
    """The working tree's engine, on the test's migrated database."""
    system = pgqueue_system("pgqueue", "pgqueue", [], "")
    system.dsn = dsn
    return system


def test_one_lock_per_job_leaves_every_job_queued(dsn: str) -> None:
    seeded = flow.seed(_system(dsn), 2500, lock_keys=2500)
    assert seeded == {"queued": 2500}


def test_shared_locks_queue_the_first_job_of_each_and_the_rest_wait(dsn: str) -> None:
    # 2,500 jobs in three seeding statements (SEED_CHUNK): the lines continue across them.
    seeded = flow.seed(_system(dsn), 2500, lock_keys=7)
    assert seeded == {"queued": 7, "waiting": 2493}
    with psycopg.connect(dsn) as conn:
        heads = conn.execute("SELECT lock, min(id) FROM pgqueue.jobs GROUP BY lock "
                             "EXCEPT SELECT lock, id FROM pgqueue.jobs "
                             "WHERE state = 'queued'").fetchall()
    assert heads == []


def test_every_ratio_is_taken_against_a_case_of_the_same_run() -> None:
    chosen = flow.cases(flow.FULL)
    keys = {c.key for c in chosen}
    assert len(keys) == len(chosen)
    for case in chosen:
        if case.against:
            base = next(c for c in chosen if c.key == case.against)
            assert base.concurrency == case.concurrency, case.key
    subset = flow.select(chosen, ["locks-distinct-c10"])
    assert [c.key for c in subset] == ["before-c10", "after-c10", "locks-distinct-c10"]
    with pytest.raises(BenchError, match="unknown cases"):
        flow.select(chosen, ["no-such-case"])


def test_limits_that_should_not_bind_are_above_the_worker_and_binding_ones_below() -> None:
    for case in flow.cases(flow.FULL):
        if case.limit and case.limit[0] == "concurrency":
            limit = int(case.limit[1])
            assert (limit > case.concurrency) == ("never binds" in case.label), case.key
