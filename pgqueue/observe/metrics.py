"""Prometheus metrics of a worker: `pgqueue worker --metrics-port 9100` serves /metrics on
127.0.0.1 (`--metrics-addr 0.0.0.0` for every interface). Needs `pgqueue-tasks[metrics]`.

Metric names are documented in docs/metrics.md. They come from three places:

- Read at every scrape (`LIVE_METRICS`): queued and running jobs per queue, due jobs, the
  oldest wait, paused queues, live workers and NOTIFY queue usage from the database (one short
  query through the partial indexes of live jobs, run on the worker's own event loop), and the
  worker's own slots. Queue-wide values are the same on every worker: aggregate them with
  max(), not sum(). Finished jobs are not counted from the table (that would read every row at
  every scrape of every worker); they are the per-worker counters below.
- Reported by the worker as it works (`WorkerMetrics`, registered in `worker.observers`): claim
  and acknowledgement latency, task duration by outcome, wake-up latency. These are
  per-worker counters and histograms: sum() them across workers.
- The process and the Python runtime (prometheus_client's own collectors): CPU seconds,
  resident memory, open file descriptors, start time (`process_*`, Linux), the interpreter's
  version (`python_info`) and its garbage collections (`python_gc_*`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pgqueue import store
from pgqueue.errors import MissingExtra, PgQueueError
from pgqueue.logs import log_event
from pgqueue.types import ClaimedJob

try:
    from prometheus_client import (
        GC_COLLECTOR,
        PLATFORM_COLLECTOR,
        PROCESS_COLLECTOR,
        CollectorRegistry,
        Counter,
        Histogram,
        start_http_server,
    )
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
except ModuleNotFoundError as missing:
    raise MissingExtra("--metrics-port", "prometheus_client", "metrics") from missing

if TYPE_CHECKING:
    from pgqueue.worker.outcome import Outcome
    from pgqueue.worker.services import ServiceContext

logger = logging.getLogger("pgqueue.metrics")

SCRAPE_DB_TIMEOUT = 5.0
"""Seconds a scrape waits for its database reading before reporting pgqueue_database_up 0."""

# Round-trip latencies of one statement: a millisecond to ten seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
# Task run times: five milliseconds to an hour.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    120.0, 300.0, 600.0, 1800.0, 3600.0)
# Due-to-claimed: a millisecond (LISTEN wake-up) to five minutes (a backlog).
WAKEUP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                  30.0, 60.0, 300.0)

LIVE_METRICS: dict[str, str] = {
    "pgqueue_jobs": "Jobs per queue and state (queued, running) now.",
    "pgqueue_jobs_due": "Queued jobs whose run_at has passed: waiting for a worker now.",
    "pgqueue_queue_oldest_waiting_seconds": "Seconds the oldest due job of the queue has waited.",
    "pgqueue_queue_paused": "1 while the queue is paused (pgqueue.pause_queue).",
    "pgqueue_workers_alive": "Workers whose heartbeat is within this worker's heartbeat timeout.",
    "pgqueue_notification_queue_usage_ratio":
        "pg_notification_queue_usage(): 0..1 of the NOTIFY queue in use.",
    "pgqueue_database_up": "1 if this scrape could read the database, else 0.",
    "pgqueue_worker_slots": "Jobs this worker may run at once (its concurrency).",
    "pgqueue_worker_busy_slots": "Jobs this worker is running now.",
    "pgqueue_worker_info": "Always 1; labels name the worker.",
    "pgqueue_worker_child_processes": "Child processes of this worker's process pool now.",
    "pgqueue_worker_child_memory_bytes": "Resident memory of each child process (label pid).",
    "pgqueue_worker_child_busy": "1 while the child process runs a job (label pid).",
    "pgqueue_worker_children_replaced": "Child processes replaced, by reason: died, timeout, "
                                        "interrupted (cancel, shutdown), max_tasks, max_memory.",
}


class WorkerMetrics:
    """The per-worker counters and histograms, in a registry of their own.

    Its methods are the worker's observer hook: the worker calls them (from its event loop)
    after each claim, each acknowledgement write and each job.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        for runtime in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(runtime)
        self.claim_duration = Histogram(
            "pgqueue_claim_duration_seconds", "Round trip of one claim query (empty ones too).",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.claimed_total = Counter(
            "pgqueue_jobs_claimed", "Jobs this worker claimed.", ["queue"],
            registry=self.registry)
        self.ack_duration = Histogram(
            "pgqueue_ack_duration_seconds",
            "Round trip of one acknowledgement write (a batch of outcomes).",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.recorded_total = Counter(
            "pgqueue_outcomes_recorded", "Outcomes this worker wrote, by kind.", ["outcome"],
            registry=self.registry)
        self.task_duration = Histogram(
            "pgqueue_task_duration_seconds", "Run time of one attempt, by task and outcome.",
            ["task", "outcome"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.wakeup_latency = Histogram(
            "pgqueue_wakeup_latency_seconds",
            "From a job becoming due (enqueued_at or run_at, the later) to this worker "
            "claiming it.", ["queue"], buckets=WAKEUP_BUCKETS, registry=self.registry)

    def jobs_claimed(self, jobs: Sequence[ClaimedJob], seconds: float) -> None:
        self.claim_duration.observe(seconds)
        now = time.time()
        for job in jobs:
            self.claimed_total.labels(job.queue).inc()
            due = max(job.enqueued_at, job.run_at).timestamp()
            self.wakeup_latency.labels(job.queue).observe(max(0.0, now - due))

    def outcomes_recorded(self, outcomes: Sequence[Outcome], seconds: float) -> None:
        self.ack_duration.observe(seconds)
        for outcome in outcomes:
            self.recorded_total.labels(str(outcome.kind)).inc()

    def job_finished(self, outcome: Outcome, seconds: float) -> None:
        self.task_duration.labels(outcome.job.task_name, str(outcome.kind)).observe(seconds)


class LiveCollector:
    """Collected at every scrape, in the HTTP server's thread; the database is read on the
    worker's event loop (its pool), so a scrape costs one short query and no extra pool."""

    def __init__(self, context: ServiceContext, loop: asyncio.AbstractEventLoop) -> None:
        self.context = context
        self.loop = loop

    def describe(self) -> list[Metric]:
        return []  # nothing is read at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._worker_gauges()
        reading = self._read_database()
        yield _gauge("pgqueue_database_up", value=0.0 if reading is None else 1.0)
        if reading is not None:
            yield from _database_gauges(*reading)

    def _worker_gauges(self) -> Iterator[Metric]:
        context, options = self.context, self.context.options
        yield _gauge("pgqueue_worker_slots", value=float(options.total_slots))
        yield _gauge("pgqueue_worker_busy_slots", value=float(len(context.jobs.running)))
        info = _gauge("pgqueue_worker_info", labels=["name", "worker_id", "queues"])
        info.add_metric([context.identity.name, str(context.identity.worker_id or ""),
                         ",".join(options.queues or ["*"])], 1.0)
        yield info
        if context.children is not None:
            yield from _children_metrics(context.children.describe(),
                                         context.children.replaced)

    def _read_database(self) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
        try:
            future = asyncio.run_coroutine_threadsafe(self._read(), self.loop)
        except RuntimeError:  # the loop is closing with the worker
            return None
        try:
            return future.result(SCRAPE_DB_TIMEOUT)
        except (PgQueueError, TimeoutError, RuntimeError) as exc:
            future.cancel()
            log_event(logger, logging.WARNING, "metrics.database_unreadable",
                      error=str(exc)[:200] or type(exc).__name__)
            return None

    async def _read(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        db = self.context.db
        async with db.aconnection() as conn:
            live = await db.arun(store.metrics_live_jobs(), conn)
            overview = await db.arun(store.metrics_overview(
                heartbeat_timeout=self.context.options.heartbeat_timeout), conn)
        return live, overview


def _gauge(name: str, *, value: float | None = None,
           labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, LIVE_METRICS[name], value=value,
                             labels=None if value is not None else list(labels))


def _children_metrics(children: Sequence[dict[str, Any]],
                      replaced: Mapping[str, int]) -> Iterator[Metric]:
    yield _gauge("pgqueue_worker_child_processes", value=float(len(children)))
    memory = _gauge("pgqueue_worker_child_memory_bytes", labels=["pid"])
    busy = _gauge("pgqueue_worker_child_busy", labels=["pid"])
    for child in children:
        if child["rss_bytes"] is not None:
            memory.add_metric([str(child["pid"])], float(child["rss_bytes"]))
        busy.add_metric([str(child["pid"])], 0.0 if child["job_id"] is None else 1.0)
    yield from (memory, busy)
    counter = CounterMetricFamily("pgqueue_worker_children_replaced",
                                  LIVE_METRICS["pgqueue_worker_children_replaced"],
                                  labels=["reason"])
    for reason in ("died", "timeout", "interrupted", "max_tasks", "max_memory"):
        counter.add_metric([reason], float(replaced.get(reason, 0)))
    yield counter


def _database_gauges(live: list[dict[str, Any]], overview: dict[str, Any]) -> Iterator[Metric]:
    jobs = _gauge("pgqueue_jobs", labels=["queue", "state"])
    due = _gauge("pgqueue_jobs_due", labels=["queue"])
    oldest = _gauge("pgqueue_queue_oldest_waiting_seconds", labels=["queue"])
    for row in sorted(live, key=lambda r: (r["queue"], r["state"])):
        jobs.add_metric([row["queue"], row["state"]], float(row["jobs"]))
        if row["state"] == "queued":
            due.add_metric([row["queue"]], float(row["due"]))
            if row["oldest_waiting_seconds"] is not None:
                oldest.add_metric([row["queue"]], row["oldest_waiting_seconds"])
    paused = _gauge("pgqueue_queue_paused", labels=["queue"])
    for queue in overview["paused_queues"]:
        paused.add_metric([queue], 1.0)
    yield from (jobs, due, oldest, paused)
    yield _gauge("pgqueue_workers_alive", value=float(overview["live_workers"]))
    yield _gauge("pgqueue_notification_queue_usage_ratio",
                 value=float(overview["notification_queue_usage"]))


async def metrics_service(context: ServiceContext) -> None:
    """A worker service (app.worker_services): serves /metrics on options.metrics_addr and
    options.metrics_port for the worker's lifetime. A port that cannot be bound is logged, not
    fatal: jobs keep running without metrics."""
    port, addr = context.options.metrics_port, context.options.metrics_addr
    if port is None:
        return
    metrics = WorkerMetrics()
    metrics.registry.register(LiveCollector(context, asyncio.get_running_loop()))
    try:
        server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
    except OSError as exc:
        log_event(logger, logging.ERROR, "metrics.unavailable", addr=addr, port=port,
                  error=str(exc))
        return
    # The hook through which the worker reports its timings.
    context.observers.append(metrics)
    log_event(logger, logging.INFO, "metrics.serving", addr=addr, port=port,
              url=f"http://{addr if ':' not in addr else f'[{addr}]'}:{port}/metrics")
    try:
        await asyncio.Event().wait()  # until the worker cancels its services
    finally:
        if metrics in context.observers:
            context.observers.remove(metrics)
        await asyncio.to_thread(server.shutdown)
        server.server_close()
