"""Periodic schedules against a real database: reconciliation, exactly-once firing, misfire
policies after an outage, pause/resume, the worker service and the CLI.

Scheduler passes are driven by hand here (`Scheduler.fire_due`), and outages are simulated by
moving a schedule's next tick into the past in SQL; the real worker processes are exercised in
tests/reliability/test_periodic_processes.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg.rows import dict_row

import pgqueue
from pgqueue import store
from pgqueue.errors import ConfigurationError, InvalidArguments
from pgqueue.periodic import (
    Schedule,
    Scheduler,
    declared_schedules,
    delete_schedule,
    list_schedules,
    pause_schedule,
    periodic,
    register_schedules,
    resume_schedule,
    run_scheduler,
    save_schedule,
)
from pgqueue.periodic.reconcile import reconcile
from tests.helpers import run_cli, start_worker_thread, wait_until

T = TypeVar("T")
MINUTE = timedelta(minutes=1)


def new_app(dsn: str) -> pgqueue.App:
    app = pgqueue.App(dsn)

    @app.task(name="report")
    def report(kind: str = "daily") -> str:
        return kind

    @app.task(name="ping")
    def ping() -> None:
        return None

    return app


@pytest.fixture
def apps(dsn: str) -> Iterator[Callable[[], pgqueue.App]]:
    """Fresh Apps on the test database (each one is a separately deployed copy of the code)."""
    made: list[pgqueue.App] = []

    def make() -> pgqueue.App:
        made.append(new_app(dsn))
        return made[-1]

    yield make
    for app in made:
        app.close()


def run(app: pgqueue.App, step: Callable[[], Awaitable[T]]) -> T:
    """Run async steps in a fresh loop, closing the app's async pool (bound to that loop)."""

    async def main() -> T:
        try:
            return await step()
        finally:
            await app.aclose()

    return asyncio.run(main())


def fire(app: pgqueue.App) -> list[Any]:
    fired, _delay = run(app, Scheduler(app).fire_due)
    return fired


def rows(dsn: str, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def schedule_row(dsn: str, schedule_id: str) -> dict[str, Any]:
    return rows(dsn, "SELECT *, now() AS db_now FROM pgqueue.schedules WHERE id = %s",
                (schedule_id,))[0]


def set_next_tick(dsn: str, schedule_id: str, sql_instant: str) -> datetime:
    """Simulate an outage: the schedule waits for a tick long gone."""
    return rows(dsn, f"UPDATE pgqueue.schedules SET next_tick_at = {sql_instant} "
                     "WHERE id = %s RETURNING next_tick_at", (schedule_id,))[0]["next_tick_at"]


def jobs_of(dsn: str, task_name: str) -> list[dict[str, Any]]:
    return rows(dsn, "SELECT id, run_at, args, kwargs, queue, priority, state::text "
                     "FROM pgqueue.jobs WHERE task_name = %s ORDER BY run_at", (task_name,))


def test_reconcile_writes_declarations_and_keeps_removed_ones_as_orphans(
    dsn: str, apps: Callable[[], pgqueue.App]
) -> None:
    app = apps()
    periodic(app, every=MINUTE)(app.tasks["ping"])
    periodic(app, cron="0 3 * * *", timezone="Europe/Paris", id="nightly",
             kwargs={"kind": "nightly"}, queue="reports", priority=5)(app.tasks["report"])
    result = run(app, lambda: reconcile(app, declared_schedules(app)))
    assert result.declared == ["nightly", "ping"] and result.orphaned == []

    nightly = schedule_row(dsn, "nightly")
    assert (nightly["task_name"], nightly["cron"], nightly["timezone"], nightly["kwargs"],
            nightly["queue"], nightly["priority"], nightly["misfire"]) == (
        "report", "0 3 * * *", "Europe/Paris", {"kind": "nightly"}, "reports", 5, "skip")
    assert nightly["db_now"] < nightly["next_tick_at"] <= nightly["db_now"] + timedelta(days=1)
    ping = schedule_row(dsn, "ping")
    assert ping["every"] == MINUTE and ping["cron"] is None and not ping["orphaned"]

    # New code drops "nightly": it is kept, orphaned, and no longer fires even when due.
    newer = apps()
    periodic(newer, every=MINUTE)(newer.tasks["ping"])
    assert run(newer, lambda: reconcile(newer, declared_schedules(newer))).orphaned == ["nightly"]
    set_next_tick(dsn, "nightly", "now() - interval '1 hour'")
    set_next_tick(dsn, "ping", "date_trunc('minute', now())")
    fired = fire(newer)
    assert [tick.schedule_id for tick in fired] == ["ping"]
    assert jobs_of(dsn, "report") == []
    assert schedule_row(dsn, "nightly")["orphaned"]

    # Declared again: active again, waiting for its next tick from now (no catch-up).
    run(app, lambda: reconcile(app, declared_schedules(app)))
    nightly = schedule_row(dsn, "nightly")
    assert not nightly["orphaned"] and nightly["next_tick_at"] > nightly["db_now"]


def test_reconcile_keeps_the_next_tick_unless_the_timing_changed(
    dsn: str, apps: Callable[[], pgqueue.App]
) -> None:
    app = apps()
    periodic(app, every=MINUTE, args=["a"], id="r")(app.tasks["report"])
    run(app, lambda: reconcile(app, declared_schedules(app)))
    waiting_for = set_next_tick(dsn, "r", "now() - interval '10 minutes'")

    same_timing = apps()
    periodic(same_timing, every=MINUTE, args=["b"], id="r")(same_timing.tasks["report"])
    run(same_timing, lambda: reconcile(same_timing, declared_schedules(same_timing)))
    row = schedule_row(dsn, "r")
    assert row["next_tick_at"] == waiting_for and row["args"] == ["b"]

    new_timing = apps()
    periodic(new_timing, every=2 * MINUTE, id="r")(new_timing.tasks["report"])
    run(new_timing, lambda: reconcile(new_timing, declared_schedules(new_timing)))
    row = schedule_row(dsn, "r")
    assert row["next_tick_at"] > row["db_now"] and row["every"] == 2 * MINUTE


def test_several_schedules_of_one_task_coexist(dsn: str, apps: Callable[[], pgqueue.App]) -> None:
    app = apps()
    report = app.tasks["report"]
    periodic(app, every=MINUTE, id="report-minutely", kwargs={"kind": "minutely"})(report)
    periodic(app, cron="*/5 * * * *", id="report-5min", kwargs={"kind": "5min"})(report)
    run(app, lambda: reconcile(app, declared_schedules(app)))
    set_next_tick(dsn, "report-minutely", "now() - interval '10 minutes'")
    set_next_tick(dsn, "report-5min", "now() - interval '10 minutes'")
    fired = fire(app)  # misfire "skip": one job each, however the outage falls
    assert sorted(tick.schedule_id for tick in fired) == ["report-5min", "report-minutely"]
    assert sorted(job["kwargs"]["kind"] for job in jobs_of(dsn, "report")) == ["5min",
                                                                               "minutely"]


def test_racing_schedulers_enqueue_each_tick_exactly_once(
    dsn: str, apps: Callable[[], pgqueue.App]
) -> None:
    app = apps()
    periodic(app, every=timedelta(seconds=1), id="fast", misfire="all")(app.tasks["ping"])
    run(app, lambda: reconcile(app, declared_schedules(app)))
    due_from = set_next_tick(dsn, "fast", "date_trunc('second', now()) - interval '30 seconds'")
    racers = [apps() for _ in range(8)]

    async def race() -> list[Any]:
        results = await asyncio.gather(*(Scheduler(a).fire_due() for a in racers))
        for racer in racers:
            await racer.aclose()
        return [tick for fired, _delay in results for tick in fired]

    fired = asyncio.run(race())
    jobs = jobs_of(dsn, "ping")
    ticks = [job["run_at"] for job in jobs]
    assert len(ticks) == len(set(ticks)) == len(fired) >= 31
    assert ticks == [due_from + timedelta(seconds=n) for n in range(len(ticks))]
    ledger = rows(dsn, "SELECT tick_at, job_id FROM pgqueue.schedule_ticks ORDER BY tick_at")
    assert [(r["tick_at"], r["job_id"]) for r in ledger] == [(j["run_at"], j["id"]) for j in jobs]

    # The database refuses a second job for a recorded tick, whatever a scheduler believes.
    again = run(app, lambda: app.db.arun(store.fire_schedule_ticks(
        "fast", ticks=ticks[:3], next_tick_at=ticks[-1] + timedelta(seconds=1), skipped=0,
        overlap_skipped=0, worker_id=None)))
    assert again == [] and len(jobs_of(dsn, "ping")) == len(ticks)


@pytest.mark.parametrize("misfire", ["skip", "all", "none"])
def test_misfire_policy_after_an_outage(
    dsn: str, apps: Callable[[], pgqueue.App], misfire: str
) -> None:
    app = apps()
    # grace 0: every tick found late counts as missed, so outcomes do not depend on timing.
    periodic(app, every=MINUTE, id="m", misfire=misfire, misfire_grace=0,
             misfire_window=timedelta(minutes=30))(app.tasks["ping"])
    run(app, lambda: reconcile(app, declared_schedules(app)))
    due_from = set_next_tick(dsn, "m", "date_trunc('minute', now()) - interval '45 minutes'")
    fire(app)
    row = schedule_row(dsn, "m")
    latest_due = row["next_tick_at"] - MINUTE  # the last tick at or before the pass's now()
    due_count = int((latest_due - due_from) / MINUTE) + 1
    run_ats = [job["run_at"] for job in jobs_of(dsn, "ping")]
    if misfire == "skip":
        assert run_ats == [latest_due]
    elif misfire == "all":  # every tick of the last 30 minutes, oldest first
        assert len(run_ats) in (30, 31)
        assert run_ats == [latest_due - n * MINUTE for n in reversed(range(len(run_ats)))]
    else:
        assert run_ats == []
    assert row["skipped_ticks"] == due_count - len(run_ats)
    assert row["next_tick_at"] == latest_due + MINUTE
    if run_ats:
        assert (row["last_tick_at"], row["last_job_id"]) == (
            run_ats[-1], jobs_of(dsn, "ping")[-1]["id"])
    # The next pass finds nothing due: the outage is dealt with once.
    assert fire(app) == []


def test_pause_and_resume_from_sql_and_python(dsn: str, apps: Callable[[], pgqueue.App]) -> None:
    app = apps()
    periodic(app, every=timedelta(seconds=1), id="fast")(app.tasks["ping"])
    run(app, lambda: reconcile(app, declared_schedules(app)))
    assert rows(dsn, "SELECT pgqueue.pause_schedule('fast') AS ok")[0]["ok"] is True
    assert rows(dsn, "SELECT pgqueue.pause_schedule('nope') AS ok")[0]["ok"] is None
    set_next_tick(dsn, "fast", "now() - interval '1 minute'")
    assert fire(app) == []
    assert list_schedules(app)[0].state == "paused"

    assert resume_schedule(app, "fast") is True
    resumed = schedule_row(dsn, "fast")
    assert resumed["next_tick_at"] is None and not resumed["paused"]
    fired = wait_until(lambda: fire(app), message="a tick after the resume")
    assert all(tick.tick_at >= resumed["restart_from"] for tick in fired)
    assert len(fired) == 1
    assert pause_schedule(app, "fast") is True and pause_schedule(app, "nope") is False


def test_register_schedules_from_settings(dsn: str, apps: Callable[[], pgqueue.App]) -> None:
    app = apps()
    declared = register_schedules(app, {
        "nightly-report": {"task": "report", "cron": "0 3 * * *", "timezone": "Europe/Paris",
                           "kwargs": {"kind": "nightly"}, "misfire": "none"},
        "heartbeat": {"task": "ping", "every": 30, "misfire_grace": 5},
    })
    assert [s.id for s in declared] == ["nightly-report", "heartbeat"]
    assert run_scheduler in app.worker_services
    run(app, lambda: reconcile(app, declared_schedules(app)))
    heartbeat = schedule_row(dsn, "heartbeat")
    assert heartbeat["every"] == timedelta(seconds=30)
    assert heartbeat["misfire_grace"] == timedelta(seconds=5)
    assert schedule_row(dsn, "nightly-report")["misfire"] == "none"

    with pytest.raises(ConfigurationError, match="did you mean 'cron'"):
        register_schedules(app, {"x": {"task": "ping", "cronn": "* * * * *"}})
    with pytest.raises(InvalidArguments, match="unexpected keyword"):
        register_schedules(app, {"y": {"task": "ping", "every": 60, "kwargs": {"n": 1}}})


def test_declaration_errors_are_caught_at_import_time(apps: Callable[[], pgqueue.App]) -> None:
    app = apps()
    ping = app.tasks["ping"]
    with pytest.raises(ConfigurationError, match=r"above @app\.task"):
        periodic(app, every=MINUTE)(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="exactly one of cron= or every="):
        periodic(app, every=MINUTE, cron="* * * * *")(ping)
    with pytest.raises(ConfigurationError, match="timezone applies to cron"):
        periodic(app, every=MINUTE, timezone="Europe/Paris")(ping)
    with pytest.raises(ConfigurationError, match="misfire must be one of"):
        periodic(app, every=MINUTE, misfire="later")(ping)  # type: ignore[arg-type]
    with pytest.raises(InvalidArguments, match="report"):
        periodic(app, every=MINUTE, args=[1, 2, 3])(app.tasks["report"])
    periodic(app, every=MINUTE)(ping)
    periodic(app, every=MINUTE)(ping)  # the same declaration again (module re-imported)
    with pytest.raises(ConfigurationError, match="declared twice"):
        periodic(app, every=2 * MINUTE)(ping)


def test_worker_runs_the_scheduler_unless_told_not_to(
    dsn: str, apps: Callable[[], pgqueue.App], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pgqueue.periodic")
    app = apps()
    periodic(app, every=timedelta(seconds=1), id="fast")(app.tasks["ping"])

    quiet = start_worker_thread(app, periodic=False)
    try:
        wait_until(lambda: "periodic.disabled" in caplog.text, message="scheduler disabled")
        assert rows(dsn, "SELECT id FROM pgqueue.schedules") == []
    finally:
        quiet.stop()

    busy = start_worker_thread(app, concurrency=2)
    try:
        done = wait_until(
            lambda: rows(dsn, "SELECT id FROM pgqueue.jobs WHERE task_name = 'ping' "
                              "AND state = 'succeeded'"),
            timeout=15, message="a periodic job to run")
        assert done
    finally:
        busy.stop()


def test_schedules_cli_lists_pauses_and_resumes(dsn: str, apps: Callable[[], pgqueue.App]) -> None:
    app = apps()
    periodic(app, cron="*/5 * * * *", timezone="Europe/Paris", id="five")(app.tasks["ping"])
    run(app, lambda: reconcile(app, declared_schedules(app)))

    listed = run_cli("schedules", dsn=dsn)
    assert listed.returncode == 0, listed.stderr
    header, line = listed.stdout.splitlines()[:2]
    assert header.split()[:4] == ["id", "task", "timing", "state"]
    assert line.startswith("five") and "*/5 * * * * (Europe/Paris)" in line and "active" in line

    paused = run_cli("schedules", "--pause", "five", dsn=dsn)
    assert (paused.returncode, paused.stdout.strip()) == (0, "schedule five paused")
    assert "paused" in run_cli("schedules", dsn=dsn).stdout
    resumed = run_cli("schedules", "--resume", "five", dsn=dsn)
    assert (resumed.returncode, resumed.stdout.strip()) == (0, "schedule five resumed")
    missing = run_cli("schedules", "--pause", "nope", dsn=dsn)
    assert missing.returncode == 6 and "no schedule with id 'nope'" in missing.stderr


def test_runtime_schedules_are_never_orphaned_and_end_on_time(
    dsn: str, apps: Callable[[], pgqueue.App]
) -> None:
    app = apps()
    db_now = rows(dsn, "SELECT now() AS now")[0]["now"]
    anchor = db_now - timedelta(seconds=30, milliseconds=250)
    with psycopg.connect(dsn) as conn:  # saved in the caller's transaction
        save_schedule(app, Schedule(id="repeat:ping", task_name="ping",
                                    every=timedelta(seconds=10)),
                      anchor_at=anchor, ends_at=anchor + timedelta(seconds=20), connection=conn)
        conn.rollback()
    assert list_schedules(app) == []
    save_schedule(app, Schedule(id="repeat:ping", task_name="ping", every=timedelta(seconds=10),
                                misfire="all"),
                  anchor_at=anchor, ends_at=anchor + timedelta(seconds=20))
    run(app, lambda: reconcile(app, []))  # code declares nothing: runtime rows stay
    info = list_schedules(app)[0]
    assert (info.origin, info.state, info.anchor_at) == ("runtime", "active", anchor)

    fired = fire(app)  # ticks anchor, +10 s, +20 s are due; +30 s is after ends_at
    assert [tick.tick_at for tick in fired] == [anchor + timedelta(seconds=n) for n in (0, 10, 20)]
    info = list_schedules(app)[0]
    assert info.state == "ended" and info.next_tick_at == anchor + timedelta(seconds=40)
    assert fire(app) == []
    assert delete_schedule(app, "repeat:ping") is True
    assert rows(dsn, "SELECT count(*) AS n FROM pgqueue.schedule_ticks")[0]["n"] == 0
    assert delete_schedule(app, "repeat:ping") is False


def next_tick_comes(dsn: str, schedule_id: str) -> None:
    """The current minute's tick falls again: its ledger row goes, so it counts as a new tick."""
    rows(dsn, "DELETE FROM pgqueue.schedule_ticks WHERE schedule_id = %s RETURNING tick_at",
         (schedule_id,))
    set_next_tick(dsn, schedule_id, "date_trunc('minute', now())")


@pytest.mark.parametrize("unfinished_state", ["queued", "running", "waiting"])
def test_overlap_false_skips_ticks_while_the_previous_job_is_unfinished(
    dsn: str, apps: Callable[[], pgqueue.App], unfinished_state: str
) -> None:
    app = apps()
    periodic(app, every=MINUTE, id="slow", overlap=False, misfire="all", misfire_grace=0,
             misfire_window=timedelta(hours=1))(app.tasks["report"])
    run(app, lambda: reconcile(app, declared_schedules(app)))
    set_next_tick(dsn, "slow", "date_trunc('minute', now()) - interval '5 minutes'")
    first = fire(app)
    assert len(first) == 1, "ticks due together run once, not side by side"
    job_id = first[0].job_id
    if unfinished_state != "queued":
        rows(dsn, f"UPDATE pgqueue.jobs SET state = '{unfinished_state}'"
                  + (", started_at = now()" if unfinished_state == "running" else "")
                  + " WHERE id = %s RETURNING id", (job_id,))
    next_tick_comes(dsn, "slow")
    assert fire(app) == [], f"no new job while the previous one is {unfinished_state}"
    row = schedule_row(dsn, "slow")
    assert row["overlap_skipped_ticks"] >= 1 + 5 and row["last_job_id"] == job_id
    assert [job["id"] for job in jobs_of(dsn, "report")] == [job_id]

    rows(dsn, "UPDATE pgqueue.jobs SET state = 'succeeded', finished_at = now(), "
              "started_at = coalesce(started_at, now()) WHERE id = %s RETURNING id", (job_id,))
    next_tick_comes(dsn, "slow")
    second = fire(app)
    assert len(second) == 1 and second[0].job_id != job_id, "the next tick runs once it ended"
    assert list_schedules(app)[0].overlap is False


def test_overlap_true_enqueues_every_tick_whatever_runs(
    dsn: str, apps: Callable[[], pgqueue.App]
) -> None:
    app = apps()
    periodic(app, every=MINUTE, id="piles", misfire="all", misfire_grace=0)(app.tasks["ping"])
    run(app, lambda: reconcile(app, declared_schedules(app)))
    set_next_tick(dsn, "piles", "date_trunc('minute', now()) - interval '3 minutes'")
    assert len(fire(app)) >= 3
    next_tick_comes(dsn, "piles")
    assert len(fire(app)) == 1
    assert schedule_row(dsn, "piles")["overlap_skipped_ticks"] == 0


def test_overlap_is_written_from_code_and_settings_and_checked(
    dsn: str, apps: Callable[[], pgqueue.App]
) -> None:
    app = apps()
    register_schedules(app, {"nightly": {"task": "report", "cron": "0 3 * * *",
                                         "overlap": False}})
    run(app, lambda: reconcile(app, declared_schedules(app)))
    assert schedule_row(dsn, "nightly")["overlap"] is False
    with pytest.raises(ConfigurationError, match="overlap must be True or False"):
        periodic(app, every=MINUTE, id="bad", overlap="no")(app.tasks["ping"])  # type: ignore[arg-type]
