"""`python -m benchmarks chord`: a chord of N parents (10,000) across 4 worker processes, beside
N plain jobs of the same task on the same 4 workers, for pgqueue and for Celery (Redis broker
and Redis result backend). Issue 15 asks that pgqueue's chord take at most 1.5x its plain jobs.

A round starts a system's 4 workers, waits until all are up, then runs a producer process that
enqueues (the clock starts just before its enqueue call); the round ends when the callback has
run (chord) or the last job has run (plain), by the times the tasks write to the record
directory (benchmarks/record.py; the callback: benchmarks/peers/chord_record.py). So a plain
round's end is its last task's run, before that job's acknowledgement: if anything, it flatters
the plain jobs. Every round checks the callback ran exactly once, with all N results in order.

Rounds are interleaved (plain, chord, Celery's chord, then again), so a burst of load on the
machine falls on every kind alike; the load averages are recorded with each round.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import envs, pg, progress
from benchmarks import record as records
from benchmarks.peers.chord_record import callback_runs
from benchmarks.procs import ROOT, BenchError, Worker, run_json
from benchmarks.systems import PROJECT_PYTHON

RESULTS = ROOT / "benchmarks" / "results"
WORKERS = 4
CELERY_REDIS = "redis://127.0.0.1:6379/14"


@dataclass(frozen=True)
class Target:
    system: str
    """pgqueue or celery."""
    kind: str
    """plain or chord."""

    @property
    def key(self) -> str:
        return f"{self.system}-{self.kind}"


TARGETS = {t.key: t for t in (Target("pgqueue", "plain"), Target("pgqueue", "chord"),
                              Target("celery", "plain"), Target("celery", "chord"))}
DEFAULT_TARGETS = ("pgqueue-plain", "pgqueue-chord", "celery-chord")
"""Celery's plain jobs are left out unless asked for: with the Redis result backend its
producer subscribes to each job's result as it sends it, and 10,000 sends took 48 s."""


def _env(record_dir: Path, dsn: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGQUEUE_")}
    env.update({"PGQUEUE_DSN": dsn, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
                "BENCH_RECORD_DIR": str(record_dir), "BENCH_CELERY_REDIS": CELERY_REDIS})
    return env


def _workers(target: Target, concurrency: int, env: dict[str, str], log: Path) -> Worker:
    if target.system == "pgqueue":
        argv = [str(PROJECT_PYTHON.parent / "pgqueue"), "--app",
                "benchmarks.peers.chord_app:app", "--log-level", "WARNING", "worker",
                "--concurrency", str(concurrency)]
        return Worker(argv, env, log, processes=WORKERS)
    argv = [str(envs.python_for("celery")), "-m", "celery", "-A", "benchmarks.peers.chord_celery",
            "worker", "--pool", "threads", "--concurrency", str(concurrency),
            "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel",
            "WARNING"]
    return Worker(argv, env, log, processes=WORKERS, per_process=lambda n: ["-n", f"w{n}@%h"])


def _producer(target: Target, *args: object, env: dict[str, str]) -> dict:
    if target.system == "pgqueue":
        argv = [str(PROJECT_PYTHON), "-m", "benchmarks.peers.chord_app"]
    else:
        argv = [str(envs.python_for("celery")), "-m", "benchmarks.peers.chord_celery"]
    return run_json([*argv, *map(str, args)], env)


def _reset(target: Target, dsn: str, env: dict[str, str]) -> None:
    if target.system == "pgqueue":
        pg.execute(dsn, "TRUNCATE pgqueue.jobs, pgqueue.job_dependencies, pgqueue.workers")
        pg.execute(dsn, "VACUUM ANALYZE pgqueue.jobs, pgqueue.job_dependencies")
    else:
        _producer(target, "flush", 0, env=env)


def _wait_ready(target: Target, dsn: str, env: dict[str, str], workers: Worker) -> None:
    if target.system == "celery":
        _producer(target, "ready", WORKERS, env=env)
        return
    deadline = time.monotonic() + 60
    while pg.execute(dsn, "SELECT count(*) FROM pgqueue.workers")[0][0] < WORKERS:
        workers.check_alive()
        if time.monotonic() > deadline:
            raise BenchError("pgqueue workers did not register")
        time.sleep(0.05)


def _wait_done(target: Target, jobs: int, record_dir: Path, workers: Worker,
               timeout: float) -> float:
    """When the round ended (epoch seconds): the callback's run, or the last job's."""
    deadline = time.monotonic() + timeout
    while True:
        if target.kind == "chord":
            runs = callback_runs(record_dir)
            if runs:
                return runs[0][0]
        elif records.count(record_dir) >= jobs:
            return max(stamp for _, stamp in records.read(record_dir))
        workers.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"{target.key}: not done after {timeout:.0f}s")
        time.sleep(0.02)


def run_round(target: Target, jobs: int, concurrency: int, dsn: str, logs: Path) -> dict:
    record_dir = Path(tempfile.mkdtemp(prefix=f"chord-{target.key}-"))
    env = _env(record_dir, dsn)
    _reset(target, dsn, env)
    workers = _workers(target, concurrency, env, logs / f"{target.key}.log")
    try:
        _wait_ready(target, dsn, env, workers)
        load_before = os.getloadavg()
        produced = _producer(target, target.kind, jobs, env=env)
        ended = _wait_done(target, jobs, record_dir, workers, timeout=600)
        if target.kind == "chord":
            time.sleep(0.5)  # a second run of the callback would show by now
    finally:
        workers.stop()
    runs = callback_runs(record_dir)
    ran = records.count(record_dir)
    result = {
        "system": target.system, "kind": target.kind, "jobs": jobs,
        "seconds": ended - produced["started"],
        "enqueue_seconds": produced["enqueued"] - produced["started"],
        "header_runs": ran, "load_before": load_before, "load_after": os.getloadavg(),
    }
    if target.kind == "chord":
        result["callback_runs"] = len(runs)
        result["callback_results"] = runs[0][1] if runs else None
        result["callback_in_order"] = bool(runs and runs[0][2])
        if len(runs) != 1 or runs[0][1] != jobs or not runs[0][2]:
            raise BenchError(f"{target.key}: callback runs {runs} (want one, {jobs} in order)")
    return result


def summarize(rounds: list[dict]) -> dict:
    by_key: dict[str, list[float]] = {}
    for r in rounds:
        by_key.setdefault(f"{r['system']}-{r['kind']}", []).append(r["seconds"])
    medians = {key: statistics.median(values) for key, values in by_key.items()}
    summary: dict = {"median_seconds": medians}
    ratios = [c["seconds"] / p["seconds"] for p, c in zip(
        [r for r in rounds if r["system"] == "pgqueue" and r["kind"] == "plain"],
        [r for r in rounds if r["system"] == "pgqueue" and r["kind"] == "chord"], strict=False)]
    if ratios:
        summary["pgqueue_chord_over_plain_per_round"] = ratios
        summary["pgqueue_chord_over_plain_median"] = statistics.median(ratios)
    if "celery-chord" in medians and "pgqueue-chord" in medians:
        summary["celery_chord_over_pgqueue_chord"] = (medians["celery-chord"]
                                                      / medians["pgqueue-chord"])
    return summary


def report(data: dict) -> str:
    s = data["summary"]
    lines = [f"# Chord benchmark, {data['date']}", "",
             f"{data['jobs']:,} jobs, {WORKERS} worker processes x {data['concurrency']} "
             f"slots, {data['rounds']} interleaved rounds; {data['machine']}", "",
             "| round | system | kind | seconds | enqueue s | load 1/5/15 before |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in data["results"]:
        load = "/".join(f"{v:.1f}" for v in r["load_before"])
        lines.append(f"| {r['round']} | {r['system']} | {r['kind']} | {r['seconds']:.2f} | "
                     f"{r['enqueue_seconds']:.2f} | {load} |")
    lines += ["", "Medians: " + ", ".join(f"{k} {v:.2f} s" for k, v in
                                          s["median_seconds"].items())]
    if "pgqueue_chord_over_plain_median" in s:
        lines.append("pgqueue chord / plain, per round: " + ", ".join(
            f"{v:.2f}" for v in s["pgqueue_chord_over_plain_per_round"])
            + f" (median {s['pgqueue_chord_over_plain_median']:.2f})")
    if "celery_chord_over_pgqueue_chord" in s:
        lines.append(f"Celery chord / pgqueue chord (medians): "
                     f"{s['celery_chord_over_pgqueue_chord']:.2f}")
    return "\n".join(lines) + "\n"


def run(jobs: int, concurrency: int, rounds: int, keys: list[str], out: Path) -> Path:
    targets = [TARGETS[key] for key in keys]
    systems = {t.system for t in targets}
    logs = Path(tempfile.mkdtemp(prefix="chord-logs-"))
    results: list[dict] = []
    with pg.server() as admin:
        dsn = pg.fresh_database(admin, f"pgqbench_chord_{os.getpid()}")
        try:
            run_json([str(PROJECT_PYTHON), "-m", "benchmarks.peers.chord_app", "setup"],
                     _env(logs, dsn))
            for number in range(1, rounds + 1):
                for target in targets:
                    result = run_round(target, jobs, concurrency, dsn, logs)
                    result["round"] = number
                    results.append(result)
                    progress.say(f"round {number} {target.key}: {result['seconds']:.2f}s "
                                 f"(enqueue {result['enqueue_seconds']:.2f}s, load "
                                 f"{result['load_before'][0]:.1f})")
        finally:
            pg.drop_database(admin, f"pgqbench_chord_{os.getpid()}")
    data = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "jobs": jobs,
            "concurrency": concurrency, "rounds": rounds, "workers": WORKERS,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "versions": envs.versions("celery") if "celery" in systems else {},
            "results": results, "summary": summarize(results)}
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{datetime.now(UTC):%Y-%m-%d}-chord"
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1))
    stem.with_suffix(".md").write_text(report(data))
    progress.say(f"wrote {stem}.json and .md (worker logs in {logs})")
    print(report(data))
    return stem
