"""Queue limits enforced by the claim itself (migration 0010): concurrency, per-key
concurrency and rate limits, declared in code or set at runtime from the CLI and SQL."""

from __future__ import annotations

import json
import re
import time

import psycopg
import pytest

import pgqueue
from pgqueue import store
from pgqueue.errors import InvalidLimit
from pgqueue.worker.options import WorkerOptions
from pgqueue.worker.runner import Worker
from tests.apps import core_app
from tests.helpers import run_cli, scalar, wait_until

APP = "tests.apps.core_app:app"


@pytest.fixture
def claim(app: pgqueue.App, dsn: str):
    worker_id = app.db.run(store.register_worker(name="w", hostname="h", pid=1, queues=None,
                                                 concurrency=100))

    def claim_up_to(limit: int = 50, queues: list[str] | None = None) -> list[int]:
        return [job.id for job in app.db.run(store.claim_jobs(
            worker_id=worker_id, queues=queues, limit=limit))]

    return claim_up_to


def _limit(dsn: str, queue: str, name: str, value: str | None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.set_queue_limit(%s, %s, %s)", (queue, name, value))


def _finish(dsn: str, job_ids: list[int]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE pgqueue.jobs SET state = 'succeeded', finished_at = now() "
                     "WHERE id = ANY(%s)", (job_ids,))


@pytest.mark.parametrize("queues", [None, ["mail", "default"]])
def test_concurrency_counts_what_runs_on_every_worker(
    app: pgqueue.App, dsn: str, claim, queues: list[str] | None
) -> None:
    _limit(dsn, "mail", "concurrency", "3")
    mail = core_app.add.using(queue="mail").defer_many([(n, n) for n in range(10)])
    free = core_app.add.defer_many([(n, n) for n in range(4)])
    first = claim(queues=queues)
    assert len(set(first) & set(mail)) == 3 and set(free) <= set(first)
    assert claim(queues=queues) == []  # the queue is full whoever asks
    _finish(dsn, [job_id for job_id in first if job_id in mail][:1])
    assert len(claim(queues=queues)) == 1


def test_per_key_concurrency(app: pgqueue.App, dsn: str, claim) -> None:
    _limit(dsn, "sync", "per_key_concurrency", "1")
    for tenant in ("a", "b"):
        core_app.add.using(queue="sync", concurrency_key=f"tenant:{tenant}").defer_many(
            [(n, n) for n in range(3)])
    unkeyed = core_app.add.using(queue="sync").defer(0, b=0)
    first = claim()
    assert len(first) == 3 and unkeyed in first  # one per tenant, and the job without a key
    assert claim() == []
    _finish(dsn, first)
    assert len(claim()) == 2


def test_rate_limit_counts_starts_in_a_sliding_window(
    app: pgqueue.App, dsn: str, claim
) -> None:
    _limit(dsn, "api", "rate_limit", "4/s")
    core_app.add.using(queue="api").defer_many([(n, n) for n in range(10)])
    started = time.monotonic()
    first = claim()
    assert len(first) == 4
    _finish(dsn, first)  # finishing frees nothing: starts are what is counted
    assert claim() == []
    second = wait_until(claim, timeout=5, interval=0.05, message="the window to slide")
    assert time.monotonic() - started >= 0.9 and len(second) == 4


def test_a_rate_window_is_a_ring_of_the_last_n_starts(app: pgqueue.App, dsn: str, claim) -> None:
    def ring() -> tuple[int, int]:
        return scalar(dsn, "SELECT ARRAY[(SELECT count(*) FROM pgqueue.queue_rate_starts "
                           "WHERE queue = 'api'), (SELECT rate_next FROM pgqueue.queue_limits "
                           "WHERE queue = 'api')]")

    _limit(dsn, "api", "rate_limit", "3/m")
    core_app.add.using(queue="api").defer_many([(n, n) for n in range(10)])
    assert len(claim(limit=2)) == 2 and ring() == [2, 2]
    assert len(claim()) == 1 and ring() == [3, 0]  # full: slot 0 is the oldest start
    assert claim() == []
    _limit(dsn, "api", "rate_limit", "5/m")  # renumbered for N = 5, the 3 starts kept
    assert ring() == [3, 3] and len(claim()) == 2 and ring() == [5, 0]
    _limit(dsn, "api", "rate_limit", "2/m")  # the newest 2 kept: still full
    assert ring() == [2, 0] and claim() == []
    assert scalar(dsn, "SELECT started_in_rate_window FROM pgqueue.queue_flow "
                       "WHERE queue = 'api'") == 2
    _limit(dsn, "api", "concurrency", "10")
    _limit(dsn, "api", "rate_limit", None)  # cleared: the window goes with it
    assert ring() == [0, 0] and len(claim(limit=2)) == 2


def test_declared_limits_are_written_at_worker_start_and_runtime_changes_stand(
    app: pgqueue.App, dsn: str
) -> None:
    app.queue("reports", concurrency=2, rate_limit="100/m")
    try:
        Worker(app, WorkerOptions(one_shot=True)).run()
        row = app.db.run(store.get_queue_limits(queue="reports"))
        assert (row["concurrency"], row["rate_limit"], row["set_by"]) == (2, "100/m", "code")
        changed = run_cli("queue", "reports", "--concurrency", "5", "--rate-limit", "none",
                          dsn=dsn)
        assert changed.returncode == 0, changed.stderr
        assert "concurrency=5" in changed.stdout and "set_by=operator" in changed.stdout
        Worker(app, WorkerOptions(one_shot=True)).run()
        row = app.db.run(store.get_queue_limits(queue="reports"))
        assert (row["concurrency"], row["rate_limit"], row["set_by"]) == (5, None, "operator")
        assert run_cli("queue", "reports", "--reset", dsn=dsn).returncode == 0
        Worker(app, WorkerOptions(one_shot=True)).run()
        row = app.db.run(store.get_queue_limits(queue="reports"))
        assert (row["concurrency"], row["set_by"]) == (2, "code")
    finally:
        app.queue_limits.clear()


@pytest.mark.parametrize(("flags", "message"), [
    (("--concurrency", "0"), "concurrency must be a whole number"),
    (("--concurrency", "-3"), "concurrency must be a whole number"),
    (("--rate-limit", "10/x"), "rate_limit must look like"),
    (("--rate-limit", "0/s"), "rate_limit must look like"),
])
def test_bad_limits_are_one_line_and_exit_2(dsn: str, flags: tuple[str, ...],
                                            message: str) -> None:
    result = run_cli("queue", "q", *flags, dsn=dsn)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.queue_limits") == 0


@pytest.mark.parametrize("options", [
    {"concurrency": 0}, {"concurrency": True}, {"per_key_concurrency": -1},
    {"rate_limit": "fast"}, {"rate_limit": "10/week"}, {"rate_limit": 10},
])
def test_bad_declarations_raise_invalid_limit(options: dict[str, object]) -> None:
    with pytest.raises(InvalidLimit):
        pgqueue.App("postgresql:///unused").queue("q", **options)


def test_sql_refuses_bad_limits(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, value in (("concurrency", "0"), ("rate_limit", "5/fortnight"),
                            ("speed", "1")):
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                conn.execute("SELECT pgqueue.set_queue_limit('q', %s, %s)", (name, value))


def test_pause_and_resume_from_the_queue_command(app: pgqueue.App, dsn: str) -> None:
    paused = run_cli("queue", "mail", "--pause", dsn=dsn)
    assert paused.returncode == 0 and "paused" in paused.stdout, paused.stderr
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.paused_queues") == 1
    resumed = run_cli("queue", "mail", "--resume", dsn=dsn)
    assert resumed.returncode == 0 and "no limits" in resumed.stdout
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.paused_queues") == 0


def test_queue_flow_says_why_due_jobs_are_held_back(app: pgqueue.App, dsn: str, claim) -> None:
    _limit(dsn, "mail", "concurrency", "1")
    _limit(dsn, "api", "rate_limit", "1/h")
    core_app.add.using(queue="mail").defer_many([(1, 1), (2, 2)])
    core_app.add.using(queue="api").defer_many([(1, 1), (2, 2)])
    core_app.add.using(queue="held").defer(1, b=1)
    core_app.add.using(queue="sync", lock="tenant:1").defer_many([(1, 1), (2, 2), (3, 3)])
    _limit(dsn, "tenants", "per_key_concurrency", "1")
    core_app.add.using(queue="tenants", concurrency_key="t1").defer_many([(1, 1), (2, 2)])
    claim(queues=["mail", "api", "tenants"])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.pause_queue('held')")
        rows = {row[0]: row[1:] for row in conn.execute(
            "SELECT queue, due, running, concurrency, rate_limit, started_in_rate_window, "
            "waiting_on_lock, held_back_by FROM pgqueue.queue_flow")}
    assert rows == {
        "api": (1, 1, None, "1 per 01:00:00", 1, 0, "rate limit reached"),
        "held": (1, 0, None, None, None, 0, "paused"),
        "mail": (1, 1, 1, None, None, 0, "concurrency limit reached"),
        "sync": (1, 0, None, None, None, 2, None),
        "tenants": (1, 1, None, None, None, 0, "per-key limit reached"),
    }
    # The same, where people look: the queue_stats view, `pgqueue stats` and its JSON.
    stats = {s.queue: s for s in app.queue_stats()}
    assert stats["mail"].held_back_by == "concurrency limit reached"
    assert stats["sync"].waiting_on_lock == 2 and stats["api"].started_in_rate_window == 1
    table = run_cli("--app", APP, "stats", dsn=dsn).stdout
    assert re.search(r"mail\s+1\s+1\s+0\s+0\s+0\s+0\s+[\d.]+\s+concurrency 1/1\s+"
                     r"concurrency limit reached", table), table
    assert re.search(r"sync\s+1\s+0\s+2\s", table), table
    assert re.search(r"rate 1/1 per 01:00:00\s+rate limit reached", table), table
    assert "per key 1" in table and "per-key limit reached" in table
    as_json = {row["queue"]: row for row in json.loads(
        run_cli("--app", APP, "stats", "--json", dsn=dsn).stdout)}
    assert as_json["tenants"]["held_back_by"] == "per-key limit reached"


def _sorted_starts(dsn: str, queue: str) -> list[float]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(
            "SELECT extract(epoch FROM started_at)::float8 FROM pgqueue.jobs "
            "WHERE queue = %s AND started_at IS NOT NULL ORDER BY started_at", (queue,))]


def test_a_rate_limited_worker_wakes_when_the_window_reopens(
    app: pgqueue.App, dsn: str, worker_thread
) -> None:
    """Polling is off (30 s) and nothing is enqueued meanwhile: only the worker's own timer,
    set to the window's reopening, can start the second batch on time."""
    _limit(dsn, "api", "rate_limit", "5/s")
    core_app.add.using(queue="api").defer_many([(n, n) for n in range(10)])
    worker_thread(concurrency=10)
    wait_until(lambda: len(_sorted_starts(dsn, "api")) == 10, timeout=10,
               message="the second window's five jobs to start")
    starts = _sorted_starts(dsn, "api")
    reopened_at = starts[0] + 1.0
    assert starts[4] < reopened_at <= starts[5], "five per second, no more"
    assert starts[5] - reopened_at < 0.15, (
        f"the sixth job started {starts[5] - reopened_at:.3f} s after the window reopened")


def test_one_shot_waits_for_a_rate_limit_but_not_for_other_workers(
    app: pgqueue.App, dsn: str
) -> None:
    _limit(dsn, "api", "rate_limit", "4/s")
    core_app.add.using(queue="api").defer_many([(n, n) for n in range(9)])
    assert app.run_worker(concurrency=4, one_shot=True, poll_interval=30.0) == 0
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'succeeded'") == 9
    starts = _sorted_starts(dsn, "api")
    assert starts[-1] - starts[0] >= 2.0, "9 jobs at 4 per second span two window reopenings"
    # A concurrency limit held by another worker's running job: one-shot leaves it to them.
    _limit(dsn, "busy", "concurrency", "1")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (task_name, queue, state, started_at) "
                     "VALUES ('elsewhere', 'busy', 'running', now())")
    core_app.add.using(queue="busy").defer(1, 1)
    began = time.monotonic()
    assert app.run_worker(one_shot=True, queues=("busy",), poll_interval=30.0) == 0
    assert time.monotonic() - began < 10
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE queue = 'busy' "
                       "AND state = 'queued'") == 1


@pytest.mark.parametrize("key", ["", "x" * 501, "new\nline", 7])
def test_a_bad_concurrency_key_is_refused_at_the_door(key: object, dsn: str) -> None:
    with pytest.raises(pgqueue.errors.InvalidName, match="concurrency key"):
        core_app.add.using(concurrency_key=key)  # type: ignore[arg-type]
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(
            psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO pgqueue.jobs (task_name, concurrency_key) VALUES ('t', %s)",
                     ("x" * 501,))


def test_a_worker_held_back_by_a_concurrency_limit_claims_as_soon_as_its_job_ends(
    app: pgqueue.App, dsn: str, worker_thread
) -> None:
    """Polling is off (30 s). While the limit's one slot is taken, the claim loop backs off
    (10 ms, 20 ms, … 1.28 s by the time the first job ends): the second job must start when
    the first one's acknowledgement commits, not when the back-off happens to end."""
    _limit(dsn, "narrow", "concurrency", "1")
    first = core_app.sleep_for.using(queue="narrow").defer(1.5, record_end=False)
    second = core_app.add.using(queue="narrow").defer(1, 2)
    worker_thread(concurrency=4)
    wait_until(lambda: scalar(dsn, "SELECT count(*) FROM pgqueue.jobs "
                                   "WHERE state = 'succeeded'") == 2, timeout=15,
               message="both jobs of the limited queue to finish")
    gap = scalar(dsn, "SELECT extract(epoch FROM s.started_at - f.finished_at)::float8 "
                      "FROM pgqueue.jobs AS f, pgqueue.jobs AS s WHERE f.id = %s AND s.id = %s",
                 (first, second))
    assert 0 <= gap < 0.3, f"the second job started {gap:.3f} s after the first ended"


def test_a_rate_limited_claim_reads_only_its_own_ring_slots_after_an_empty_analyze(
    app: pgqueue.App, dsn: str
) -> None:
    """A rate limit set moments ago has a ring whose statistics say empty (analyzed before any
    start: `vacuumdb --analyze` after an upgrade, autovacuum). The claim function's generic
    plan, made at the session's first claim, must still probe slots by primary key: a plan that
    filtered the whole ring read every start recorded so far on every claim (migration 0026; a
    never-binding 100000/s limit drained at 413 jobs/s instead of ~3,500). Index tuples read
    from the ring stay about one per claim however full the ring gets."""
    _limit(dsn, "api", "rate_limit", "100000/s")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE pgqueue.queue_rate_starts")
    claims = 150
    core_app.add.using(queue="api").defer_many([(n, n) for n in range(claims * 10)])
    worker_id = app.db.run(store.register_worker(name="w", hostname="h", pid=1, queues=None,
                                                 concurrency=10))
    claim = store.claim_jobs(worker_id=worker_id, queues=None, limit=10)
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        for _ in range(claims):
            assert len(conn.execute(claim.sql, claim.params).fetchall()) == 10
        conn.execute("SELECT pg_stat_force_next_flush()")
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT idx_tup_read FROM pg_stat_user_indexes "
                           "WHERE indexrelname = 'queue_rate_starts_pkey'").fetchone()
        ring = conn.execute("SELECT count(*) FROM pgqueue.queue_rate_starts").fetchone()
    assert ring is not None and ring[0] == claims * 10
    assert row is not None and row[0] < 5 * claims, (
        f"{row[0]} ring entries read by {claims} claims of 10")
