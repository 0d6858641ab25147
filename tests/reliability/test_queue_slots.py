"""Per-queue slots in one worker (`-q emails:2,reports:1,default -c 1`): each queue runs at
most its own slots at once, reaches them, and a backlog of one queue never delays another."""

from __future__ import annotations

import psycopg

from tests.apps import core_app
from tests.helpers import wait_until
from tests.reliability.conftest import WorkerProcesses
from tests.reliability.test_limit_races import _all_succeeded, _max_overlap


def _spans_by_queue(dsn: str) -> dict[str, list[tuple[float, float]]]:
    spans: dict[str, list[tuple[float, float]]] = {}
    with psycopg.connect(dsn) as conn:
        for queue, start, end in conn.execute(
            "SELECT j.queue, extract(epoch FROM min(l.started_at) FILTER (WHERE l.tag = 'start')),"
            " extract(epoch FROM min(l.started_at) FILTER (WHERE l.tag = 'end'))"
            " FROM ledger l JOIN pgqueue.jobs j ON j.id = l.job_id GROUP BY j.queue, l.job_id"
        ):
            spans.setdefault(queue, []).append((float(start), float(end)))
    return spans


def test_each_queue_runs_up_to_its_own_slots_and_no_backlog_starves_another(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    core_app.sleep_for.using(queue="reports").defer_many([(0.6,)] * 5)
    core_app.sleep_for.using(queue="emails").defer_many([(0.3,)] * 6)
    core_app.sleep_for.using(queue="default").defer_many([(0.2,)] * 3)
    core_app.sleep_for.using(queue="elsewhere").defer(0.1)
    worker = workers.start(rel_dsn, "-q", "emails:2,reports:1,default", "-c", "1")
    wait_until(lambda: _all_succeeded_but(rel_dsn, "elsewhere"), timeout=30,
               message="every job of the worker's queues to succeed")
    spans = _spans_by_queue(rel_dsn)
    assert _max_overlap(spans["reports"]) == 1
    assert _max_overlap(spans["emails"]) == 2
    assert _max_overlap(spans["default"]) == 1
    assert "elsewhere" not in spans, "a queue not listed is never claimed"
    last_email_end = max(end for _, end in spans["emails"])
    second_report_end = sorted(end for _, end in spans["reports"])[1]
    assert last_email_end < second_report_end, "emails never wait behind the reports backlog"
    log = workers.output(worker)
    assert "queues=emails:2,reports:1,default" in log and "concurrency=4" in log


def _all_succeeded_but(dsn: str, queue: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT count(*) FILTER (WHERE state = 'succeeded') = count(*) FROM pgqueue.jobs"
            " WHERE queue <> %s", (queue,)).fetchone()[0]


def test_slot_groups_one_shot_each_drains_its_queues(rel_dsn: str, workers: WorkerProcesses
                                                     ) -> None:
    core_app.sleep_for.using(queue="emails").defer_many([(0.05,)] * 4)
    core_app.sleep_for.using(queue="reports").defer_many([(0.05,)] * 2)
    worker = workers.start(rel_dsn, "-q", "emails:2,reports:1", "--one-shot")
    assert worker.wait(timeout=30) == 0
    assert _all_succeeded(rel_dsn)
