"""The process pool against the thread pool and Celery's prefork pool (issue 16):

    python -m benchmarks.pools            # 3 interleaved repetitions (about 6 minutes)
    python -m benchmarks.pools --quick    # 1 repetition, fewer jobs

- **CPU-bound**: jobs of ~20 ms of pure Python (benchmarks/peers/cpu_work.py) drained from a
  seeded queue by `pgqueue worker --pool thread|process -c N` and `celery worker --pool prefork
  -c N`, for N = 1, 2, 4.
- **No-op**: plain-function jobs that only record themselves, `-c 2`: the process pool's cost
  per job (a JSON frame each way through a socket) against the thread pool's.
- **Child start-up**: `ProcessPool.start()` of one child with forkserver (the first start
  includes the fork server itself) and with spawn.

Rates are drain rates: jobs after the first, over the time from the first job's start to the
last's, so the start-up of each worker (its children, Celery's pool) is not counted; start-up
is measured on its own. Every variant runs in every repetition, in turn, so a burst of load
from other users of the machine hits all alike; the median repetition is reported, with the
load average around each run, and the results go to benchmarks/results/<date>-pools.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import envs, metrics, pg, progress, stats
from benchmarks.run import RESULTS, ensure_redis
from benchmarks.systems import PROJECT_PYTHON, System, _pgqueue_system, _venv_bin

CONCURRENCIES = (1, 2, 4)
NOOP_CONCURRENCY = 2


def _pgqueue(pool: str, task: str) -> System:
    system = _pgqueue_system(
        f"pgqueue-{pool}-{task}", f"pgqueue --pool {pool}", [],
        f"`pgqueue worker --pool {pool} -c N` on a plain `def` task, defaults otherwise.",
        extra_env={"BENCH_TASK": task})
    plain = system.worker_argv
    system.worker_argv = lambda py, c: [*plain(py, c), "--pool", pool]
    return system


def _celery_prefork(task: str) -> System:
    return System(
        name=f"celery-prefork-{task}", label="Celery --pool prefork", venv="celery",
        peer="benchmarks.peers.celery_peer",
        worker_argv=lambda py, c: [
            _venv_bin(py, "celery"), "-A", "benchmarks.peers.celery_peer", "worker",
            "--pool", "prefork", "--concurrency", str(c), "--without-gossip",
            "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"],
        config="`celery worker --pool prefork --concurrency N --without-gossip "
               "--without-mingle --without-heartbeat`, task_ignore_result, prefetch "
               "multiplier 32, Redis broker (db 13); jobs enqueued through its API.",
        extra_env={"BENCH_TASK": task}, seed_max=100_000)


def _drain(system: System, jobs: int, concurrency: int) -> dict[str, Any]:
    system.reset()
    system.seed(jobs)
    load = os.getloadavg()[0]
    result = metrics.process(system, jobs, concurrency, cap_s=max(60.0, jobs / 10))
    return {**result, "load_1m_before": load, "load_1m_after": os.getloadavg()[0]}


def _say(system: System, concurrency: int, result: dict[str, Any]) -> None:
    progress.say(f"  {system.label} -c {concurrency}: {result['drain_per_s']:.0f} jobs/s "
                 f"(load {result['load_1m_before']:.1f})"
                 + ("" if result["complete"] else " INCOMPLETE"))


def measure(reps: int, cpu_jobs: int, noop_jobs: int) -> dict[str, Any]:
    cpu = [_pgqueue("thread", "cpu"), _pgqueue("process", "cpu"), _celery_prefork("cpu")]
    noop = [_pgqueue("thread", "sync"), _pgqueue("process", "sync"), _celery_prefork("noop")]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        s.name: {} for s in (*cpu, *noop)}
    started = time.monotonic()
    with pg.server() as admin_dsn:
        ensure_redis()
        for system in (*cpu, *noop):
            system.prepare(admin_dsn)
        try:
            for rep in range(reps):
                progress.say(f"== repetition {rep + 1} of {reps}")
                for concurrency in CONCURRENCIES:
                    for system in cpu:
                        result = _drain(system, cpu_jobs, concurrency)
                        runs[system.name].setdefault(str(concurrency), []).append(result)
                        _say(system, concurrency, result)
                for system in noop:
                    result = _drain(system, noop_jobs, NOOP_CONCURRENCY)
                    runs[system.name].setdefault(str(NOOP_CONCURRENCY), []).append(result)
                    _say(system, NOOP_CONCURRENCY, result)
        finally:
            for system in (*cpu, *noop):
                pg.drop_database(admin_dsn, system.database)
    medians = {name: {c: _median(results) for c, results in by_c.items()}
               for name, by_c in runs.items()}
    return {"systems": {s.name: {"label": s.label, "config": s.config} for s in (*cpu, *noop)},
            "results": medians, "seconds": time.monotonic() - started}


def _median(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["drain_per_s"] for r in results]
    return {"drain_per_s": stats.median(rates), "per_s": stats.median(
        [r["per_s"] for r in results]), "rates": rates, "complete": all(
        r["complete"] for r in results), "load_1m": [r["load_1m_before"] for r in results],
        "peak_rss_mib": stats.median([r["peak_rss_mib"] for r in results])}


# -- child start-up (run in a fresh process: the first start includes the fork server) ----


def startup_costs(method: str, starts: int) -> dict[str, Any]:
    from benchmarks.peers.pgqueue_app import app
    from pgqueue.worker.options import WorkerOptions
    from pgqueue.worker.process_pool import ProcessPool

    app.dsn = "postgresql://127.0.0.1/unused"  # children only connect when a task does
    options = WorkerOptions(pool="process", concurrency=1, child_start_method=method,  # type: ignore[arg-type]
                            app_path="benchmarks.peers.pgqueue_app:app")

    async def one_start() -> float:
        pool = ProcessPool(app, options, on_give_up=lambda: None)
        began = time.perf_counter()
        await pool.start()
        elapsed = time.perf_counter() - began
        await pool.close()
        return elapsed

    async def all_starts() -> list[float]:
        return [await one_start() for _ in range(starts)]

    seconds = asyncio.run(all_starts())
    return {"first_ms": seconds[0] * 1000,
            "next_median_ms": stats.median(seconds[1:]) * 1000 if starts > 1 else None,
            "next_ms": [s * 1000 for s in seconds[1:]]}


def _startup(method: str, starts: int) -> dict[str, Any]:
    # `python -c`, as `python -m pgqueue`: a child re-imports a __main__ that is a file or a
    # module other than X.__main__ (multiprocessing's rule), which would be counted too.
    code = f"from benchmarks.pools import main; main(['startup', {method!r}, '{starts}'])"
    done = subprocess.run([str(PROJECT_PYTHON), "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parent.parent)
    return json.loads(done.stdout.splitlines()[-1])


def _cpu_job_ms() -> float:
    from benchmarks.peers.cpu_work import burn

    spent = []
    for _ in range(20):
        began = time.thread_time()
        burn()
        spent.append(time.thread_time() - began)
    return min(spent) * 1000


# -- report --------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    rates = results["results"]

    def rate(name: str, concurrency: int) -> float:
        return rates[name][str(concurrency)]["drain_per_s"]

    lines = [f"# Pools: threads, processes, Celery prefork ({results['date'][:10]})", "",
             f"{results['machine']['cpus']} CPUs, Python {results['machine']['python']}; "
             f"load average (1 min) {results['load_average']['start'][0]:.2f} at the start, "
             f"{results['load_average']['end'][0]:.2f} at the end; {results['reps']} "
             f"interleaved repetition(s), median shown. Drain rates (jobs/s) from the first "
             "job's start to the last's.", "",
             f"## CPU-bound: {results['cpu_jobs']} jobs of {results['cpu_job_ms']:.1f} ms "
             "of pure Python (one core, least of 20)", "",
             "| -c | thread | process | Celery prefork | process / thread | "
             "process / prefork |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in CONCURRENCIES:
        thread, process = rate("pgqueue-thread-cpu", c), rate("pgqueue-process-cpu", c)
        prefork = rate("celery-prefork-cpu", c)
        lines.append(f"| {c} | {thread:.1f} | {process:.1f} | {prefork:.1f} | "
                     f"{process / thread:.2f}x | {process / prefork:.2f}x |")
    base = rate("pgqueue-process-cpu", 1)
    lines += ["", "Process-pool scaling against one child: " + ", ".join(
        f"-c {c}: {rate('pgqueue-process-cpu', c) / base:.2f}x" for c in CONCURRENCIES), ""]
    c = NOOP_CONCURRENCY
    thread, process = rate("pgqueue-thread-sync", c), rate("pgqueue-process-sync", c)
    prefork = rate("celery-prefork-noop", c)
    lines += [f"## No-op: {results['noop_jobs']} plain-function jobs, -c {c}", "",
              "| thread | process | Celery prefork | process / thread |",
              "| ---: | ---: | ---: | ---: |",
              f"| {thread:.0f} | {process:.0f} | {prefork:.0f} | {process / thread:.2f}x |", "",
              f"Cost per job beyond the thread pool's: {(1 / process - 1 / thread) * 1e6 * c:.0f}"
              f" µs of a slot ({1e6 / process:.0f} µs per job against {1e6 / thread:.0f} µs, "
              "at the pool's rate).", "", "## Child start-up (one child, `ProcessPool.start()`)",
              "", "| method | first (with the fork server) | each next (median) |",
              "| --- | ---: | ---: |"]
    for method, cost in results["startup"].items():
        lines.append(f"| {method} | {cost['first_ms']:.0f} ms | {cost['next_median_ms']:.0f} ms |")
    lines += ["", "Each variant's rates per repetition, and the load before each run, are in "
              "the JSON file beside this one."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["startup"]:
        print(json.dumps(startup_costs(args[1], int(args[2]))))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pools", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 repetition, fewer jobs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    options = parser.parse_args(args)
    reps, cpu_jobs, noop_jobs = (1, 200, 2000) if options.quick else (3, 400, 5000)
    envs.python_for("celery")
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "load_average": {"start": os.getloadavg()}, "reps": reps, "cpu_jobs": cpu_jobs,
        "noop_jobs": noop_jobs, "cpu_job_ms": _cpu_job_ms(),
        "versions": {"celery": envs.versions("celery").get("celery")},
        "startup": {method: _startup(method, 11) for method in ("forkserver", "spawn")},
    }
    progress.say(f"child start-up: {results['startup']}")
    results.update(measure(reps, cpu_jobs, noop_jobs))
    results["load_average"]["end"] = os.getloadavg()
    options.out.mkdir(parents=True, exist_ok=True)
    stem = options.out / f"{results['date'][:10]}-pools{'-quick' if options.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(results))
    progress.say(f"wrote {stem}.json / .md")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
