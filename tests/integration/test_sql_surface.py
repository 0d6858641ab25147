"""The DBA surface of migrations_sql/0003_dba_surface.sql on real data: every view answers from
rows a worker (or a crafted history) left, every function does what the named query of the
same name does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from pgqueue import store
from pgqueue.app import App
from pgqueue.queries import QUERIES
from tests.apps import observe_app
from tests.helpers import app_on, wait_until

Conn = psycopg.Connection[Any]

# The clause the claim queries need so a paused queue is not claimed (see docs/sql.md).


@pytest.fixture
def db(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as connection:
        yield connection


@pytest.fixture
def app(dsn: str) -> Iterator[App]:
    with app_on(observe_app.app, dsn) as app:
        yield app


def add_job(
    db: Conn, *, task: str = "app.task", queue: str = "default",
    state: str = "queued", run_ago: float = 0.0, started_ago: float | None = None,
    finished_ago: float | None = None, worker_id: int | None = None, attempts: int = 0,
    error: tuple[str, str] | None = None, timeout_seconds: float | None = None,
) -> int:
    """One job row with a history in seconds before now (negative run_ago: scheduled)."""
    row = db.execute(
        """
        INSERT INTO pgqueue.jobs (task_name, queue, state, run_at, started_at, finished_at,
                                  worker_id, attempts, error_type, error_message,
                                  timeout_seconds, claim_token)
        VALUES (%(task)s, %(queue)s, %(state)s::pgqueue.job_state,
                now() - make_interval(secs => %(run_ago)s),
                now() - make_interval(secs => %(started_ago)s),
                now() - make_interval(secs => %(finished_ago)s),
                %(worker_id)s, %(attempts)s, %(error_type)s, %(error_message)s,
                %(timeout_seconds)s,
                CASE WHEN %(state)s::text = 'running' THEN gen_random_uuid() END)
        RETURNING id
        """,
        {"task": task, "queue": queue, "state": state, "run_ago": run_ago,
         "started_ago": started_ago, "finished_ago": finished_ago, "worker_id": worker_id,
         "attempts": attempts, "error_type": error[0] if error else None,
         "error_message": error[1] if error else None, "timeout_seconds": timeout_seconds},
    ).fetchone()
    assert row is not None
    return int(row["id"])


def add_worker(db: Conn, *, name: str, heartbeat_ago: float = 0.0,
               queues: list[str] | None = None, concurrency: int = 4) -> int:
    row = db.execute(
        """
        INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, started_at,
                                     last_heartbeat_at)
        VALUES (%s, 'host-a', 4242, %s, %s, now() - interval '1 hour',
                now() - make_interval(secs => %s))
        RETURNING id
        """,
        (name, queues, concurrency, heartbeat_ago),
    ).fetchone()
    assert row is not None
    return int(row["id"])


def rows(db: Conn, sql: str, params: Any = None) -> list[dict[str, Any]]:
    return db.execute(sql, params).fetchall()


def by(key: str, items: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {item[key]: item for item in items}


def job_row(db: Conn, job_id: int) -> dict[str, Any]:
    row = db.execute("SELECT * FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return row


def notifications(listener: Conn) -> list[tuple[str, str]]:
    """Notifications already delivered to `listener` (a quick round trip collects them)."""
    listener.execute("SELECT 1")
    return [(n.channel, n.payload) for n in listener.notifies(timeout=0.2, stop_after=10)]


@pytest.fixture
def listener(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("LISTEN pgqueue_jobs")
        connection.execute("LISTEN pgqueue_abort")
        yield connection


# -- views ---------------------------------------------------------------------------------


def test_queue_stats_depth_by_state_oldest_wait_and_wait_percentiles(db: Conn) -> None:
    worker = add_worker(db, name="w1")
    add_job(db, queue="emails", run_ago=40)
    add_job(db, queue="emails", run_ago=10)
    add_job(db, queue="emails", run_ago=-3600)                     # scheduled an hour ahead
    add_job(db, queue="emails", state="running", run_ago=5, started_ago=4, worker_id=worker)
    for wait in range(1, 20):                                      # waits 1..19 s, started < 5 min
        add_job(db, queue="emails", state="succeeded", run_ago=100 + wait, started_ago=100,
                finished_ago=99)
    add_job(db, queue="emails", state="failed", run_ago=1000, started_ago=400, finished_ago=399,
            error=("ValueError", "bad"))                           # started 6m40s ago: no sample
    add_job(db, queue="emails", state="cancelled", run_ago=60, finished_ago=30)
    # queued for a retry after an attempt: its old started_at must not count as a wait sample
    add_job(db, queue="emails", run_ago=-30, started_ago=20, attempts=1)
    db.execute("SELECT pgqueue.pause_queue('reports', 'month end')")

    stats = by("queue", rows(db, "SELECT * FROM pgqueue.queue_stats"))

    emails = stats["emails"]
    assert {k: emails[k] for k in ("paused", "queued", "due", "scheduled", "running",
                                   "succeeded", "failed", "cancelled")} == {
        "paused": False, "queued": 4, "due": 2, "scheduled": 2, "running": 1, "succeeded": 19,
        "failed": 1, "cancelled": 1}
    assert emails["oldest_waiting_seconds"] == pytest.approx(40, abs=2)
    # 19 succeeded (waits 1..19) + the running one (wait 1): percentile_cont over 20 samples
    assert emails["started_5m"] == 20
    assert emails["wait_p50_seconds"] == pytest.approx(9.5, abs=0.01)
    assert emails["wait_p95_seconds"] == pytest.approx(18.05, abs=0.01)
    reports = stats["reports"]
    assert reports["paused"] is True
    assert (reports["queued"], reports["oldest_waiting_seconds"], reports["wait_p50_seconds"]) == (
        0, None, None)
    assert list(stats) == sorted(stats)


def test_queue_stats_and_task_stats_after_a_real_worker_run(
    app: App, db: Conn
) -> None:
    observe_app.quick.defer_many([(n,) for n in range(12)])
    observe_app.broken.defer_many([("smtp refused",), ("smtp timeout",)])
    later = observe_app.quick.using(delay=3600).defer(99)
    assert app.run_worker(one_shot=True, concurrency=3) == 0

    emails = by("queue", rows(db, "SELECT * FROM pgqueue.queue_stats"))["emails"]
    assert (emails["succeeded"], emails["failed"], emails["queued"], emails["due"]) == (12, 2, 1, 0)
    assert emails["started_5m"] == 14
    assert 0 <= emails["wait_p50_seconds"] <= emails["wait_p95_seconds"] < 30

    tasks = by("task_name", rows(db, "SELECT * FROM pgqueue.task_stats"))
    quick, broken = tasks["observe.quick"], tasks["observe.broken"]
    assert (quick["succeeded_1m"], quick["failed_1m"], quick["queued"]) == (12, 0, 1)
    assert quick["error_rate_5m"] == 0.0
    assert (broken["failed_1m"], broken["error_rate_5m"], broken["error_rate_1h"]) == (2, 1.0, 1.0)
    assert broken["last_error"] in ("ConnectionError: smtp refused",
                                    "ConnectionError: smtp timeout")
    assert quick["duration_p50_seconds"] is not None and quick["duration_p50_seconds"] >= 0
    # failing tasks first
    assert next(iter(tasks)) == "observe.broken"
    assert db.execute("SELECT state FROM pgqueue.jobs WHERE id = %s", (later,)).fetchone() == {
        "state": "queued"}


def test_task_stats_windows_error_rates_and_last_error(db: Conn) -> None:
    for ago in (10, 20, 30):                                                 # last minute
        add_job(db, task="mail.send", state="succeeded", run_ago=ago + 3, started_ago=ago + 2,
                finished_ago=ago)
    add_job(db, task="mail.send", state="failed", run_ago=50, started_ago=45, finished_ago=40,
            error=("SMTPError", "421 try later"))
    for ago in (120, 180):                                                   # last 5 minutes
        add_job(db, task="mail.send", state="succeeded", run_ago=ago + 1, started_ago=ago + 1,
                finished_ago=ago)
    add_job(db, task="mail.send", state="failed", run_ago=900, started_ago=800, finished_ago=700,
            error=("SMTPError", "550 older"))                                 # last hour
    add_job(db, task="mail.send", state="succeeded", run_ago=9000, started_ago=9000,
            finished_ago=8000)                                               # too old: ignored
    add_job(db, task="mail.send", state="cancelled", run_ago=100, finished_ago=100)
    add_job(db, task="mail.send", run_ago=-5, attempts=1, error=("SMTPError", "retrying"))
    add_job(db, task="mail.send")
    add_job(db, task="report.build", state="succeeded", run_ago=20, started_ago=20,
            finished_ago=10)

    tasks = by("task_name", rows(db, "SELECT * FROM pgqueue.task_stats"))
    mail = tasks["mail.send"]
    assert {k: mail[k] for k in ("queued", "running", "retrying", "succeeded_1m", "failed_1m",
                                 "succeeded_5m", "failed_5m", "succeeded_1h", "failed_1h",
                                 "cancelled_1h")} == {
        "queued": 2, "running": 0, "retrying": 1, "succeeded_1m": 3, "failed_1m": 1,
        "succeeded_5m": 5, "failed_5m": 1, "succeeded_1h": 5, "failed_1h": 2, "cancelled_1h": 1}
    assert mail["per_minute_5m"] == pytest.approx(6 / 5)
    assert mail["error_rate_5m"] == pytest.approx(1 / 6, abs=1e-4)
    assert mail["error_rate_1h"] == pytest.approx(2 / 7, abs=1e-4)
    assert mail["last_error"] == "SMTPError: 421 try later"
    assert mail["last_failed_at"] is not None
    # durations: 2,2,2 (1m), 5 (failed), 1,1 (5m), 100 (failed 1h) -> median 2
    assert mail["duration_p50_seconds"] == pytest.approx(2, abs=0.01)
    report = tasks["report.build"]
    assert (report["error_rate_1h"], report["last_error"], report["duration_p50_seconds"]) == (
        0.0, None, pytest.approx(10, abs=0.01))
    assert list(tasks) == ["mail.send", "report.build"]


def test_stuck_jobs_lists_dead_and_missing_workers_and_timeouts(db: Conn) -> None:
    live = add_worker(db, name="live")
    dead = add_worker(db, name="dead", heartbeat_ago=60)
    killed = add_worker(db, name="killed")  # its supervisor saw the process die
    db.execute("UPDATE pgqueue.workers SET last_heartbeat_at = '-infinity' WHERE id = %s",
               (killed,))
    healthy = add_job(db, state="running", run_ago=10, started_ago=10, worker_id=live)
    on_dead = add_job(db, state="running", run_ago=10, started_ago=10, worker_id=dead)
    orphan = add_job(db, state="running", run_ago=10, started_ago=10, worker_id=987654)
    on_killed = add_job(db, state="running", run_ago=1, started_ago=1, worker_id=killed)
    too_long = add_job(db, state="running", run_ago=10, started_ago=10, worker_id=live,
                       timeout_seconds=5)
    hour_plus = add_job(db, state="running", run_ago=4000, started_ago=3700, worker_id=live)
    ten_min = add_job(db, state="running", run_ago=600, started_ago=600, worker_id=live)
    add_job(db, state="queued", run_ago=7200)                 # waiting is not stuck

    stuck = by("id", rows(db, "SELECT * FROM pgqueue.stuck_jobs"))
    assert {job_id: row["reason"] for job_id, row in stuck.items()} == {
        on_dead: "worker_dead", orphan: "worker_missing", too_long: "timeout_exceeded",
        hour_plus: "timeout_exceeded", on_killed: "worker_dead"}
    assert healthy not in stuck and ten_min not in stuck
    assert stuck[on_dead]["worker_name"] == "dead"
    assert stuck[on_dead]["heartbeat_age_seconds"] == pytest.approx(60, abs=2)
    assert stuck[orphan]["heartbeat_age_seconds"] is None
    assert stuck[on_killed]["heartbeat_age_seconds"] is None
    assert (stuck[too_long]["limit_seconds"], stuck[hour_plus]["limit_seconds"]) == (5, 3600)
    assert stuck[hour_plus]["running_seconds"] == pytest.approx(3700, abs=2)
    assert next(iter(stuck)) == hour_plus                      # oldest first

    # The thresholds are settings: per session here, per database with ALTER DATABASE.
    db.execute("SET pgqueue.stuck_after = 300")
    db.execute("SET pgqueue.heartbeat_timeout = 120")
    stuck = by("id", rows(db, "SELECT * FROM pgqueue.stuck_jobs"))
    assert set(stuck) == {orphan, too_long, hour_plus, ten_min, on_killed}
    assert stuck[ten_min]["limit_seconds"] == 300


def test_workers_overview_shows_heartbeat_age_and_running_jobs(db: Conn) -> None:
    busy = add_worker(db, name="busy", queues=["emails", "reports"], concurrency=2)
    idle = add_worker(db, name="idle", heartbeat_ago=3)
    gone = add_worker(db, name="gone", heartbeat_ago=90)
    killed = add_worker(db, name="killed")
    db.execute("UPDATE pgqueue.workers SET last_heartbeat_at = '-infinity' WHERE id = %s",
               (killed,))
    first = add_job(db, task="mail.send", state="running", run_ago=30, started_ago=25,
                    worker_id=busy)
    second = add_job(db, task="report.build", state="running", run_ago=5, started_ago=5,
                     worker_id=busy)

    workers = rows(db, "SELECT * FROM pgqueue.workers_overview")
    assert [w["name"] for w in workers] == ["busy", "idle", "gone", "killed"]  # alive first
    overview = by("id", workers)
    assert overview[busy]["alive"] and overview[idle]["alive"] and not overview[gone]["alive"]
    assert overview[busy]["queues"] == ["emails", "reports"]
    assert overview[busy]["running_jobs"] == 2
    assert overview[busy]["running_job_ids"] == [first, second]
    assert sorted(overview[busy]["running_tasks"]) == ["mail.send", "report.build"]
    assert overview[busy]["longest_running_seconds"] == pytest.approx(25, abs=2)
    assert overview[idle]["running_jobs"] == 0 and overview[idle]["running_job_ids"] is None
    assert overview[idle]["heartbeat_age_seconds"] == pytest.approx(3, abs=2)
    assert overview[gone]["heartbeat_age_seconds"] == pytest.approx(90, abs=2)
    assert (overview[killed]["alive"], overview[killed]["heartbeat_age_seconds"]) == (False, None)
    assert overview[busy]["uptime_seconds"] == pytest.approx(3600, abs=5)


def test_health_counts_states_dead_tuples_vacuum_and_notify_usage(
    db: Conn, dsn: str
) -> None:
    add_worker(db, name="w")
    for _ in range(3):
        add_job(db)
    ids = [add_job(db, state="succeeded", run_ago=5, started_ago=5, finished_ago=4)
           for _ in range(20)]
    add_job(db, state="failed", finished_ago=1, error=("E", "m"))
    db.execute("DELETE FROM pgqueue.jobs WHERE id = ANY(%s)", (ids[:10],))
    db.execute("SELECT pg_stat_force_next_flush()")

    def health() -> dict[str, Any]:
        row = db.execute("SELECT * FROM pgqueue.health").fetchone()
        assert row is not None
        return row

    row = wait_until(lambda: (h := health())["jobs_dead_tuples"] >= 10 and h,
                     message="dead tuples to reach the statistics")
    assert {k: row[k] for k in ("queued", "running", "succeeded", "failed", "cancelled",
                                "total_jobs", "live_workers", "paused_queues")} == {
        "queued": 3, "running": 0, "succeeded": 10, "failed": 1, "cancelled": 0,
        "total_jobs": 14, "live_workers": 1, "paused_queues": 0}
    assert 0 < row["jobs_dead_ratio"] <= 1
    assert row["jobs_total_bytes"] > 0
    assert 0 <= row["notification_queue_usage"] < 1
    assert row["jobs_last_vacuum"] is None

    db.execute("VACUUM pgqueue.jobs")
    row = wait_until(lambda: (h := health())["jobs_last_vacuum"] is not None and h,
                     message="the vacuum to be recorded")
    assert row["jobs_dead_tuples"] == 0

    # A transaction holding a snapshot holds back vacuum: health shows its age.
    with psycopg.connect(dsn) as holder:
        holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM pgqueue.jobs")
        row = wait_until(lambda: ((h := health())["oldest_transaction_seconds"] or 0) > 0.05
                         and h, message="the open transaction to age")
        assert row["oldest_transaction_seconds"] < 60
        holder.rollback()


# -- functions -----------------------------------------------------------------------------


def _twin_jobs(db: Conn, state: str, worker_id: int) -> tuple[int, int]:
    fields: dict[str, Any] = {"state": state, "run_ago": 20, "attempts": 1}
    if state != "queued":
        fields["started_ago"] = 10
    if state == "running":
        fields["worker_id"] = worker_id
    if state in ("succeeded", "failed", "cancelled"):
        fields["finished_ago"] = 5
    return add_job(db, **fields), add_job(db, **fields)


_COMPARED = ("state", "attempts", "worker_id", "claim_token", "abort_requested")


@pytest.mark.parametrize("state", ["queued", "running", "succeeded", "failed", "cancelled"])
def test_retry_and_cancel_functions_match_the_named_queries(
    app: App, db: Conn, listener: Conn, state: str
) -> None:
    worker = add_worker(db, name="w")
    for operation in ("retry_job", "cancel_job"):
        by_query, by_function = _twin_jobs(db, state, worker)
        notifications(listener)
        named: Any = app.db.run(getattr(store, operation)(by_query))
        query_notes = notifications(listener)
        function: Any = db.execute(f"SELECT pgqueue.{operation}(%s) AS r",
                                   (by_function,)).fetchone()["r"]  # type: ignore[index]
        function_notes = notifications(listener)
        assert function == named, operation
        q_row, f_row = job_row(db, by_query), job_row(db, by_function)
        assert {k: q_row[k] for k in _COMPARED if k != "claim_token"} == {
            k: f_row[k] for k in _COMPARED if k != "claim_token"}, operation
        assert (q_row["claim_token"] is None) == (f_row["claim_token"] is None)
        assert (q_row["finished_at"] is None) == (f_row["finished_at"] is None)
        assert function_notes == query_notes, operation


def test_retry_job_requeues_a_failed_job_and_wakes_workers(
    db: Conn, listener: Conn
) -> None:
    job = add_job(db, state="failed", run_ago=60, started_ago=50, finished_ago=40, attempts=3,
                  error=("E", "m"))
    notifications(listener)
    assert db.execute("SELECT pgqueue.retry_job(%s) AS r", (job,)).fetchone() == {"r": True}
    row = job_row(db, job)
    assert (row["state"], row["attempts"], row["finished_at"]) == ("queued", 0, None)
    assert notifications(listener) == [("pgqueue_jobs", "")]
    assert db.execute("SELECT pgqueue.retry_job(%s) AS r", (job,)).fetchone() == {"r": False}
    assert db.execute("SELECT pgqueue.retry_job(-1) AS r").fetchone() == {"r": False}
    assert notifications(listener) == []


def test_cancel_job_cancels_queued_and_asks_the_worker_to_abort_running(
    db: Conn, listener: Conn
) -> None:
    worker = add_worker(db, name="w")
    queued = add_job(db)
    running = add_job(db, state="running", started_ago=1, worker_id=worker, attempts=1)
    notifications(listener)
    assert db.execute("SELECT pgqueue.cancel_job(%s) AS r", (queued,)).fetchone() == {
        "r": "cancelled"}
    assert job_row(db, queued)["finished_at"] is not None
    assert notifications(listener) == []
    assert db.execute("SELECT pgqueue.cancel_job(%s) AS r", (running,)).fetchone() == {
        "r": "running"}
    assert job_row(db, running)["abort_requested"] is True
    assert notifications(listener) == [("pgqueue_abort", str(worker))]
    assert db.execute("SELECT pgqueue.cancel_job(%s) AS r", (queued,)).fetchone() == {"r": None}


def test_retry_failed_by_task_since_and_queue(
    db: Conn, listener: Conn
) -> None:
    recent_a = add_job(db, task="a", state="failed", finished_ago=60, attempts=3, error=("E", "m"))
    recent_a_other_queue = add_job(db, task="a", queue="bulk", state="failed", finished_ago=60,
                                   attempts=3, error=("E", "m"))
    old_a = add_job(db, task="a", state="failed", finished_ago=7200, attempts=3, error=("E", "m"))
    recent_b = add_job(db, task="b", state="failed", finished_ago=30, attempts=3, error=("E", "m"))
    succeeded_a = add_job(db, task="a", state="succeeded", finished_ago=10)
    notifications(listener)

    def retry_failed(*args: Any) -> int:
        placeholders = ", ".join(["%s"] * len(args))
        row = db.execute(f"SELECT pgqueue.retry_failed({placeholders}) AS n", args).fetchone()
        assert row is not None
        return int(row["n"])

    assert retry_failed("a", "-infinity", "bulk") == 1
    assert job_row(db, recent_a_other_queue)["state"] == "queued"
    assert notifications(listener) == [("pgqueue_jobs", "")]
    assert retry_failed("a", "2000-01-01") == 2
    assert notifications(listener) == [("pgqueue_jobs", "")]
    assert retry_failed("nope", "-infinity") == 0
    assert notifications(listener) == []
    assert {job_row(db, j)["state"] for j in (recent_a, old_a)} == {"queued"}
    db.execute("UPDATE pgqueue.jobs SET state = 'failed', finished_at = now() - interval '2 hours' "
               "WHERE id = %s", (recent_a,))
    row = db.execute("SELECT pgqueue.retry_failed(NULL, now() - interval '1 hour') AS n").fetchone()
    assert row == {"n": 1}
    assert job_row(db, recent_b)["state"] == "queued"
    assert job_row(db, recent_a)["state"] == "failed"
    assert job_row(db, succeeded_a)["state"] == "succeeded"


def test_pause_and_resume_queue(
    db: Conn, listener: Conn
) -> None:
    assert db.execute("SELECT pgqueue.pause_queue('emails', 'smtp down') AS r").fetchone() == {
        "r": True}
    assert db.execute("SELECT pgqueue.pause_queue('emails') AS r").fetchone() == {"r": False}
    paused = db.execute("SELECT * FROM pgqueue.paused_queues").fetchall()
    assert [(p["queue"], p["reason"]) for p in paused] == [("emails", "smtp down")]
    assert paused[0]["paused_by"]
    notifications(listener)
    assert db.execute("SELECT pgqueue.resume_queue('emails') AS r").fetchone() == {"r": True}
    [(channel, payload)] = notifications(listener)
    assert (channel, json.loads(payload)) == ("pgqueue_jobs", {"queues": ["emails"]})
    assert db.execute("SELECT pgqueue.resume_queue('emails') AS r").fetchone() == {"r": False}
    assert notifications(listener) == []


@pytest.mark.parametrize("queues", [None, ["emails", "reports"]])
def test_the_claim_skips_paused_queues(db: Conn, queues: list[str] | None) -> None:
    worker = add_worker(db, name="w")
    emails = [add_job(db, queue="emails", run_ago=60) for _ in range(3)]
    reports = [add_job(db, queue="reports", run_ago=1) for _ in range(2)]
    db.execute("SELECT pgqueue.pause_queue('emails')")
    params = {"worker_id": worker, "limit": 10, "queues": queues, "tasks": None}
    claimed = {r["id"] for r in db.execute(QUERIES["claim_jobs"], params).fetchall()}
    assert claimed == set(reports)
    db.execute("SELECT pgqueue.resume_queue('emails')")
    claimed = {r["id"] for r in db.execute(QUERIES["claim_jobs"], params).fetchall()}
    assert claimed == set(emails)


def test_a_worker_does_not_claim_from_a_paused_queue(app: App, db: Conn) -> None:
    held = observe_app.quick.defer_many([(n,) for n in range(3)])
    db.execute("SELECT pgqueue.pause_queue('emails')")
    other = observe_app.slow.defer(0.0)
    assert app.run_worker(one_shot=True, poll_interval=0.05) == 0
    assert job_row(db, other)["state"] == "succeeded"
    assert {job_row(db, j)["state"] for j in held} == {"queued"}
    db.execute("SELECT pgqueue.resume_queue('emails')")
    assert app.run_worker(one_shot=True, poll_interval=0.05) == 0
    assert {job_row(db, j)["state"] for j in held} == {"succeeded"}


def test_prune_deletes_old_finished_jobs_per_state_in_batches(db: Conn) -> None:
    day = 86400
    old_ok = [add_job(db, state="succeeded", finished_ago=8 * day) for _ in range(5)]
    new_ok = add_job(db, state="succeeded", finished_ago=1 * day)
    old_failed = add_job(db, state="failed", finished_ago=31 * day, error=("E", "m"))
    young_failed = add_job(db, state="failed", finished_ago=10 * day, error=("E", "m"))
    old_cancelled = add_job(db, state="cancelled", finished_ago=8 * day)
    ancient_queued = add_job(db, run_ago=90 * day)
    worker = add_worker(db, name="w")
    ancient_running = add_job(db, state="running", started_ago=40 * day, worker_id=worker)

    row = db.execute("CALL pgqueue.prune(batch_size => 2)").fetchone()
    assert row == {"deleted": 7}
    left = {r["id"] for r in db.execute("SELECT id FROM pgqueue.jobs").fetchall()}
    assert left == {new_ok, young_failed, ancient_queued, ancient_running}
    assert not left & {*old_ok, old_failed, old_cancelled}

    # NULL keeps a state; shorter ages prune more; prune_batch stops at its batch size.
    assert db.execute("CALL pgqueue.prune(NULL, interval '1 day', NULL)").fetchone() == {
        "deleted": 1}
    assert db.execute("SELECT pgqueue.prune_batch(interval '1 hour', NULL, NULL, 1) AS n"
                      ).fetchone() == {"n": 1}
    assert {r["id"] for r in db.execute("SELECT id FROM pgqueue.jobs").fetchall()} == {
        ancient_queued, ancient_running}
    with pytest.raises(psycopg.errors.RaiseException, match="batch_size"):
        db.execute("SELECT pgqueue.prune_batch(batch_size => 0)")
    with pytest.raises(psycopg.errors.RaiseException, match="negative"):
        db.execute("CALL pgqueue.prune(interval '-1 day')")


def test_enqueue_from_sql_is_claimed_by_a_worker(app: App, db: Conn) -> None:
    row = db.execute("SELECT pgqueue.enqueue('observe.quick', '{\"n\": 7}', 'emails') AS id"
                     ).fetchone()
    assert row is not None
    assert app.run_worker(one_shot=True) == 0
    assert job_row(db, row["id"])["result"] == 7


# -- documentation in the database -----------------------------------------------------------

DBA_OBJECTS = {
    "pgqueue.queue_stats": "view", "pgqueue.task_stats": "view", "pgqueue.stuck_jobs": "view",
    "pgqueue.workers_overview": "view", "pgqueue.worker_children": "view",
    "pgqueue.health": "view",
    "pgqueue.paused_queues": "table",
}
DBA_ROUTINES = ("retry_job", "cancel_job", "retry_failed", "pause_queue", "resume_queue",
                "prune", "prune_batch", "setting_seconds", "enqueue")


def test_every_dba_object_and_column_has_a_comment(db: Conn) -> None:
    for name in DBA_OBJECTS:
        comment = db.execute("SELECT obj_description(%s::regclass, 'pg_class') AS c",
                             (name,)).fetchone()
        assert comment and comment["c"], name
    undocumented_routines = rows(db, """
        SELECT p.proname FROM pg_proc p
        WHERE p.pronamespace = 'pgqueue'::regnamespace AND p.proname = ANY(%s)
          AND obj_description(p.oid, 'pg_proc') IS NULL""", (list(DBA_ROUTINES),))
    assert undocumented_routines == []
    found = {r["proname"] for r in rows(db, "SELECT proname FROM pg_proc WHERE pronamespace = "
                                            "'pgqueue'::regnamespace")}
    assert set(DBA_ROUTINES) <= found
    column = db.execute("SELECT col_description('pgqueue.jobs'::regclass, attnum) AS c "
                        "FROM pg_attribute WHERE attrelid = 'pgqueue.jobs'::regclass "
                        "AND attname = 'timeout_seconds'").fetchone()
    assert column and column["c"]
