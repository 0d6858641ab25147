"""The metrics of issues 6 and 11, each a function of (system, sizes) returning plain dicts.

Times come from the task records (`benchmarks.record`): a run starts when the harness spawns the
worker and ends at the last job's recorded time, so worker start-up (imports, connecting) is
counted, as a user sees it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import pg, progress, record, stats
from benchmarks.procs import BenchError, Worker
from benchmarks.systems import System, redis_command

WARMUP_INDEX = 99_999_999
LOGS = Path(tempfile.gettempdir()) / "pgqueue-bench-logs"


@dataclass(frozen=True)
class Sizes:
    reps: int
    single: int
    bulk: int
    bulk_loop: int
    """Bulk size for systems whose bulk is a loop of single enqueues (one transaction, or one
    producer for Celery): their rate is flat in N, and 50,000 would take minutes."""
    throughput: int
    throughput_cap_s: float
    concurrencies: tuple[int, ...]
    latency_jobs: int
    latency_gap_s: float
    steady_rates: tuple[int, ...]
    steady_s: float
    backlogs: tuple[int, ...]
    finished_backlog: int
    backlog_jobs: int
    backlog_cap_s: float
    backlog_reps: int
    processes: tuple[int, ...]
    idle_s: float = 10.0
    """Length of the idle-cost window (after IDLE_SETTLE_S past the warm-up job)."""


IDLE_SETTLE_S = 3.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

QUICK = Sizes(reps=1, single=300, bulk=5000, bulk_loop=2000, throughput=3000,
              throughput_cap_s=8, concurrencies=(1, 10, 100), latency_jobs=40,
              latency_gap_s=0.02, steady_rates=(500, 2000), steady_s=4,
              backlogs=(3000, 100_000), finished_backlog=100_000, backlog_jobs=3000,
              backlog_cap_s=6, backlog_reps=1, processes=(1, 2, 4))
FULL = Sizes(reps=3, single=2000, bulk=50_000, bulk_loop=10_000, throughput=20_000,
             throughput_cap_s=6, concurrencies=(1, 10, 100), latency_jobs=200,
             latency_gap_s=0.02, steady_rates=(500, 2000), steady_s=30,
             backlogs=(10_000, 100_000, 1_000_000), finished_backlog=1_000_000,
             backlog_jobs=10_000, backlog_cap_s=6, backlog_reps=3, processes=(1, 2, 4))


class Records:
    """A fresh record directory for one measured run."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="pgqueue-bench-"))

    def count(self) -> int:
        return record.count(self.path)

    def runs(self) -> dict[int, float]:
        return dict(record.read(self.path))

    def enqueued(self) -> dict[int, float]:
        return dict(record.read(self.path, "enq"))

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _log(system: System, what: str) -> Path:
    LOGS.mkdir(exist_ok=True)
    return LOGS / f"{system.name}-{what}.log"


def start_worker(system: System, records: Records, concurrency: int,
                 processes: int = 1, listen_only: bool = False) -> Worker:
    """`listen_only`: with the system's latency flags (poll safety net past the measurement)."""
    argv = system.worker_argv(system.python, concurrency)
    if listen_only:
        argv = [*argv, *system.latency_flags]
    return Worker(argv, system.env(records.path, concurrency),
                  _log(system, f"worker-c{concurrency}"), processes=processes)


def wait_for(records: Records, worker: Worker, target: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while records.count() < target:
        if time.monotonic() > deadline:
            return False
        worker.check_alive()
        time.sleep(0.01)
    return True


# -- 1. enqueue ----------------------------------------------------------------------------


def enqueue(system: System, sizes: Sizes) -> dict[str, Any]:
    system.reset()
    single = system.produce("single", sizes.single, 0)
    system.reset()
    bulk_n = sizes.bulk if system.name.startswith(("pgqueue", "raw", "procrastinate")) \
        else sizes.bulk_loop
    bulk = system.produce("bulk", bulk_n, 0)
    system.reset()
    return {"single_per_s": single["jobs"] / single["seconds"],
            "bulk_per_s": bulk["jobs"] / bulk["seconds"], "bulk_jobs": bulk_n}


# -- 2, 5, 6, 7. processing a pre-enqueued backlog ------------------------------------------


def process(system: System, jobs: int, concurrency: int, cap_s: float,
            processes: int = 1) -> dict[str, Any]:
    """Start the worker(s) on a seeded queue; rate = jobs done / (spawn -> last record)."""
    records = Records()
    worker = start_worker(system, records, concurrency, processes)
    try:
        finished = wait_for(records, worker, jobs, cap_s)
        done = records.count()
        runs = records.runs()
        last = max(runs.values()) if runs else time.time()
        elapsed = last - worker.started_at
        first = min(runs.values()) if runs else last
    finally:
        worker.stop()
        records.close()
    drain = last - first
    return {"jobs": done, "seconds": elapsed, "per_s": done / elapsed if elapsed > 0 else 0,
            "drain_per_s": (done - 1) / drain if drain > 0 else 0,
            "complete": finished, "first_job_after_s": first - worker.started_at,
            "peak_rss_mib": worker.peak_rss_mib}


def throughput(system: System, sizes: Sizes, concurrency: int) -> dict[str, Any]:
    system.reset()
    system.seed(min(sizes.throughput, system.seed_max or sizes.throughput))
    return process(system, sizes.throughput, concurrency, sizes.throughput_cap_s)


def backlog_series(system: System, sizes: Sizes) -> dict[str, Any]:
    """Throughput at concurrency 10 with N waiting (the first `backlog_jobs` of them run), and
    with a large table of finished jobs in front of a small queue."""
    out: dict[str, Any] = {}
    cases: list[tuple[str, int, int]] = [(f"waiting_{n}", n, 0) for n in sizes.backlogs]
    cases.append((f"finished_{sizes.finished_backlog}", sizes.backlog_jobs,
                  sizes.finished_backlog))
    for label, waiting, finished in cases:
        if system.backlog_max and max(waiting, finished) > system.backlog_max:
            out[label] = {"skipped": f"backlogs over {system.backlog_max:,} not run for it"}
            continue
        if finished and system.name == "celery":
            out[label] = {"skipped": "keeps no finished jobs"}
            continue
        runs = []
        left = 0
        for rep in range(sizes.backlog_reps):
            if left < sizes.backlog_jobs:
                progress.say(f"  {system.name}: seeding {label}")
                system.reset()
                system.seed(finished, start=50_000_000, finished=True)
                system.seed(waiting)
                left = waiting
            result = process(system, sizes.backlog_jobs, 10, sizes.backlog_cap_s)
            left -= result["jobs"]
            runs.append(result)
            progress.say(f"  {system.name} {label} rep {rep + 1}: {result['per_s']:.0f} jobs/s")
        out[label] = {"per_s": stats.median([r["per_s"] for r in runs]), "runs": runs}
    system.reset()
    return out


# -- 3, 4. latency --------------------------------------------------------------------------


def _warm_worker(system: System, records: Records, worker: Worker) -> None:
    """Wait until the worker runs a job, then let it go idle."""
    system.produce("spaced", 1, 0, WARMUP_INDEX, record_dir=records.path)
    if not wait_for(records, worker, 1, 60):
        raise BenchError(f"{system.name}: the worker never ran the warm-up job")
    time.sleep(0.5)


def _latencies(records: Records) -> tuple[list[float], int]:
    enqueued = records.enqueued()
    runs = records.runs()
    pairs = [(runs[i] - t) for i, t in enqueued.items() if i in runs and i != WARMUP_INDEX]
    missing = sum(1 for i in enqueued if i not in runs and i != WARMUP_INDEX)
    return pairs, missing


def wakeup_latency(system: System, sizes: Sizes, concurrency: int = 10) -> dict[str, Any]:
    system.reset()
    records = Records()
    worker = start_worker(system, records, concurrency, listen_only=True)
    try:
        _warm_worker(system, records, worker)
        system.produce("spaced", sizes.latency_jobs, sizes.latency_gap_s, 0,
                       record_dir=records.path)
        wait_for(records, worker, sizes.latency_jobs + 1, 30)
        latencies, missing = _latencies(records)
    finally:
        worker.stop()
        records.close()
    return {**stats.summary_ms(latencies), "missing": missing}


def steady_load(system: System, sizes: Sizes, rate: int,
                concurrency: int = 10) -> dict[str, Any]:
    system.reset()
    records = Records()
    worker = start_worker(system, records, concurrency, listen_only=True)
    try:
        _warm_worker(system, records, worker)
        produced = system.produce("paced", rate, sizes.steady_s, 0, record_dir=records.path,
                                  timeout=sizes.steady_s * 4 + 60)
        ended = time.time()
        backlog_at_end = produced["jobs"] + 1 - records.count()
        drained = wait_for(records, worker, produced["jobs"] + 1, 2.0)
        drain_s = time.time() - ended
        latencies, missing = _latencies(records)
    finally:
        worker.stop()
        records.close()
    offered = produced["jobs"] / produced["seconds"]
    return {**stats.summary_ms(latencies), "missing": missing, "offered_per_s": offered,
            "backlog_at_end": backlog_at_end, "keeps_up": drained and offered >= 0.95 * rate,
            "drain_s": drain_s if drained else None}


# -- 8. idle cost (issue 11) ---------------------------------------------------------------


def _committed_transactions(system: System) -> int | None:
    """Commits + rollbacks of the system's database, read from the admin database so the
    reading is not counted (None for Celery, whose worker does not use Postgres)."""
    if system.name == "celery":
        return None
    rows = pg.execute(pg.admin_of(system.dsn), "SET stats_fetch_consistency = none",
                      "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                      f"WHERE datname = '{system.database}'")
    return int(rows[0][0])


def _redis_commands() -> int:
    reply = redis_command("INFO", "stats").decode(errors="replace")
    for line in reply.splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":", 1)[1])
    return 0


def _cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return total / CLOCK_TICKS


def idle_cost(system: System, sizes: Sizes, concurrency: int = 10) -> dict[str, Any]:
    """An idle worker (its benchmark configuration, default poll intervals): transactions/s
    its database commits and the share of a core its process tree uses, over `idle_s` with
    an empty queue after one warm-up job. The stats collector publishes a backend's counts
    when it goes idle (within ~1 s) or, for a silent one, up to 10 s later: long-lived
    sessions' last second may fall outside the window, which is why it is 10 s long."""
    system.reset()
    records = Records()
    worker = start_worker(system, records, concurrency)
    try:
        _warm_worker(system, records, worker)
        time.sleep(IDLE_SETTLE_S)
        pids = worker.pids()
        transactions, cpu, started = _committed_transactions(system), _cpu_seconds(pids), \
            time.monotonic()
        redis = _redis_commands() if system.name == "celery" else None
        time.sleep(sizes.idle_s)  # the measurement: nothing to wait for but time
        elapsed = time.monotonic() - started
        cpu_share = (_cpu_seconds(pids) - cpu) / elapsed
        after = _committed_transactions(system)
        redis_after = _redis_commands() if system.name == "celery" else None
        worker.check_alive()
    finally:
        worker.stop()
        records.close()
    return {"transactions_per_s": None if transactions is None or after is None
            else (after - transactions) / elapsed,
            "redis_commands_per_s": None if redis is None or redis_after is None
            else (redis_after - redis) / elapsed,
            "cpu_percent": 100 * cpu_share, "seconds": elapsed}


def median_runs(runs: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: stats.median([r[k] for r in runs if r.get(k) is not None])
                           for k in keys}
    out["runs"] = list(runs)
    return out
