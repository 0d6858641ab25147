"""The worker's Prometheus endpoint (`--metrics-port`), scraped while the worker runs."""

from __future__ import annotations

import logging
import signal
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pgqueue.app import App
from pgqueue.observe.metrics import metrics_service
from tests.apps import observe_app
from tests.helpers import app_on, spawn_cli, start_worker_thread, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int, host: str = "127.0.0.1") -> tuple[str, Samples]:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape_until(port: int, check: Any, message: str, timeout: float = 20.0) -> Samples:
    """Scrape until `check(samples)` holds (the endpoint may not be up yet at first)."""
    last: list[Samples] = [{}]

    def attempt() -> bool:
        try:
            last[0] = scrape(port)[1]
        except (urllib.error.URLError, ConnectionError):
            return False
        return bool(check(last[0]))

    try:
        wait_until(attempt, timeout=timeout, interval=0.1, message=message)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last scrape: {sorted(last[0].items())}") from None
    return last[0]


@pytest.fixture
def app(dsn: str) -> Iterator[App]:
    with app_on(observe_app.app, dsn) as app:
        yield app
    if metrics_service in observe_app.app.worker_services:
        observe_app.app.worker_services.remove(metrics_service)


def test_scraping_a_running_worker_shows_jobs_slots_queues_and_workers(
    app: App, dsn: str
) -> None:
    slow = [observe_app.slow.defer(30.0) for _ in range(3)]
    observe_app.quick.defer_many([(1,), (2,)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.pause_queue('archive')")
    port = free_port()
    worker = spawn_cli("--app", "tests.apps.observe_app:app", "worker", "-q", "reports",
                       "-c", "2", "--name", "metrics-worker", "--metrics-port", str(port),
                       dsn=dsn)
    try:
        samples = scrape_until(
            port, lambda s: value(s, "pgqueue_worker_busy_slots") == 2
            and value(s, "pgqueue_jobs", queue="reports", state="running") == 2,
            "the worker to run two slow jobs")
        assert value(samples, "pgqueue_worker_slots") == 2
        assert value(samples, "pgqueue_jobs", queue="reports", state="queued") == 1
        assert value(samples, "pgqueue_jobs_due", queue="reports") == 1
        assert value(samples, "pgqueue_jobs", queue="emails", state="queued") == 2
        assert value(samples, "pgqueue_jobs_due", queue="emails") == 2
        assert (value(samples, "pgqueue_queue_oldest_waiting_seconds", queue="emails") or -1) >= 0
        assert value(samples, "pgqueue_queue_paused", queue="archive") == 1
        assert value(samples, "pgqueue_workers_alive") == 1
        assert value(samples, "pgqueue_database_up") == 1
        assert 0 <= (value(samples, "pgqueue_notification_queue_usage_ratio") or 0) < 1
        # The process and the runtime, from prometheus_client's collectors.
        assert (value(samples, "process_resident_memory_bytes") or 0) > 10_000_000
        assert (value(samples, "process_open_fds") or 0) >= 3  # its database connections
        assert any(name == "python_info" for name, _labels in samples)
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            scrape(port, host="127.0.0.2")  # 127.0.0.1 only, by default: not every interface
        info = [labels for (name, labels), _ in samples.items() if name == "pgqueue_worker_info"]
        assert [dict(labels)["name"] for labels in info] == ["metrics-worker"]
        assert dict(info[0])["queues"] == "reports"
        text, _ = scrape(port)
        for histogram in ("pgqueue_claim_duration_seconds", "pgqueue_ack_duration_seconds",
                          "pgqueue_task_duration_seconds", "pgqueue_wakeup_latency_seconds"):
            assert f"# TYPE {histogram} histogram" in text

        for job_id in slow:
            app.cancel_job(job_id)
        scrape_until(port, lambda s: value(s, "pgqueue_worker_busy_slots") == 0
                     and value(s, "pgqueue_jobs", queue="reports", state="running") is None,
                     "the cancelled jobs to leave their slots")
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert "metrics.serving" in output
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        scrape(port)


def test_metrics_addr_chooses_the_address_bound(app: App, dsn: str) -> None:
    """Linux routes all of 127/8 to the loopback device: a worker bound to 127.0.0.2 answers
    there and not on 127.0.0.1."""
    port = free_port()
    worker = spawn_cli("--app", "tests.apps.observe_app:app", "worker", "--metrics-port",
                       str(port), "--metrics-addr", "127.0.0.2", dsn=dsn)
    try:
        wait_until(lambda: _answers(port, "127.0.0.2"), timeout=20, message="the endpoint")
        assert not _answers(port, "127.0.0.1")
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert "metrics.serving addr=127.0.0.2" in output and "url=http://127.0.0.2:" in output


def _answers(port: int, host: str) -> bool:
    try:
        return "pgqueue_worker_slots" in scrape(port, host)[0]
    except (urllib.error.URLError, ConnectionError):
        return False


def test_timings_reported_by_the_worker_hook(app: App) -> None:
    port = free_port()
    app.worker_services.append(metrics_service)
    handle = start_worker_thread(app, queues=["emails"], concurrency=2, metrics_port=port)
    try:
        scrape_until(port, lambda s: value(s, "pgqueue_database_up") == 1, "the endpoint")
        observe_app.quick.defer_many([(n,) for n in range(3)])
        observe_app.broken.defer()
        samples = scrape_until(
            port, lambda s: value(s, "pgqueue_task_duration_seconds_count",
                                  task="observe.quick", outcome="succeeded") == 3
            and value(s, "pgqueue_task_duration_seconds_count", task="observe.broken",
                      outcome="failed") == 1
            and value(s, "pgqueue_outcomes_recorded_total", outcome="succeeded") == 3,
            "four jobs to be timed")
        assert value(samples, "pgqueue_jobs_claimed_total", queue="emails") == 4
        assert value(samples, "pgqueue_wakeup_latency_seconds_count", queue="emails") == 4
        assert (value(samples, "pgqueue_wakeup_latency_seconds_sum", queue="emails") or 0) < 20
        assert (value(samples, "pgqueue_claim_duration_seconds_count") or 0) >= 1
        assert (value(samples, "pgqueue_ack_duration_seconds_count") or 0) >= 1
        assert value(samples, "pgqueue_outcomes_recorded_total", outcome="failed") == 1
    finally:
        handle.stop()


def test_a_port_in_use_is_logged_and_the_worker_runs_jobs_anyway(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    app.worker_services.append(metrics_service)
    job = observe_app.quick.defer(3)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="pgqueue.metrics"):
            assert app.run_worker(one_shot=True, metrics_port=port) == 0
    assert app.get_job(job).result == 3
    assert any("metrics.unavailable" in record.getMessage() for record in caplog.records)


def test_a_process_pool_worker_shows_its_children_their_memory_and_replacements(
    dsn: str,
) -> None:
    from tests.apps import pool_app

    with app_on(pool_app.app, dsn):
        pool_app.grow.defer(1)  # the child is retired after it (max-tasks-per-child 1)
        busy = pool_app.sleeps.defer(30)
        port = free_port()
        worker = spawn_cli("--app", "tests.apps.pool_app:app", "worker", "--pool", "process",
                           "-c", "2", "--max-tasks-per-child", "1", "--metrics-port",
                           str(port), dsn=dsn)
        try:
            samples = scrape_until(
                port, lambda s: value(s, "pgqueue_worker_children_replaced_total",
                                      reason="max_tasks") == 1
                and value(s, "pgqueue_worker_child_processes") == 2
                and sum(v for (name, _), v in s.items()
                        if name == "pgqueue_worker_child_busy") == 1,
                "two children, one busy, one replaced after its job")
            memory = {dict(labels)["pid"]: v for (name, labels), v in samples.items()
                      if name == "pgqueue_worker_child_memory_bytes"}
            assert len(memory) == 2 and all(v > 5 * 2**20 for v in memory.values())
            assert value(samples, "pgqueue_worker_children_replaced_total",
                         reason="died") == 0
            assert pool_app.app.cancel_job(busy) == "running"
            scrape_until(port, lambda s: value(s, "pgqueue_worker_children_replaced_total",
                                               reason="interrupted") == 1,
                         "the cancelled job's child replaced")
        finally:
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
