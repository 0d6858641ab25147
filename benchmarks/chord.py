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
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import envs, pg, pin, progress
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
    """pgqueue, pgqueue-before (the engine of `--before REF`) or celery."""
    kind: str
    """plain or chord."""
    engine_dir: str | None = None
    """A frozen copy of an engine (benchmarks/pin.py); None: the working tree."""

    @property
    def key(self) -> str:
        return f"{self.system}-{self.kind}"

    @property
    def is_pgqueue(self) -> bool:
        return self.system != "celery"


TARGETS = {t.key: t for t in (Target("pgqueue", "plain"), Target("pgqueue", "chord"),
                              Target("celery", "plain"), Target("celery", "chord"))}
DEFAULT_TARGETS = ("pgqueue-plain", "pgqueue-chord", "celery-chord")
"""Celery's plain jobs are left out unless asked for: with the Redis result backend its
producer subscribes to each job's result as it sends it, and 10,000 sends took 48 s."""


def _pgqueue_python(target: Target, module: str) -> list[str]:
    if target.engine_dir:
        return [str(PROJECT_PYTHON), "-m", "benchmarks.pin", module]
    return [str(PROJECT_PYTHON), "-m", module]


def _env(record_dir: Path, dsn: str, target: Target | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PGQUEUE_") and k != "BENCH_ENGINE_DIR"}
    env.update({"PGQUEUE_DSN": dsn, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
                "BENCH_RECORD_DIR": str(record_dir), "BENCH_CELERY_REDIS": CELERY_REDIS})
    if target is not None and target.engine_dir:
        env["BENCH_ENGINE_DIR"] = target.engine_dir
    return env


def _workers(target: Target, concurrency: int, env: dict[str, str], log: Path) -> Worker:
    if target.is_pgqueue:
        argv = [*_pgqueue_python(target, "pgqueue"), "--app", "benchmarks.peers.chord_app:app",
                "--log-level", "WARNING", "worker", "--concurrency", str(concurrency)]
        return Worker(argv, env, log, processes=WORKERS)
    argv = [str(envs.python_for("celery")), "-m", "celery", "-A", "benchmarks.peers.chord_celery",
            "worker", "--pool", "threads", "--concurrency", str(concurrency),
            "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel",
            "WARNING"]
    return Worker(argv, env, log, processes=WORKERS, per_process=lambda n: ["-n", f"w{n}@%h"])


def _producer(target: Target, *args: object, env: dict[str, str]) -> dict:
    if target.is_pgqueue:
        argv = _pgqueue_python(target, "benchmarks.peers.chord_app")
    else:
        argv = [str(envs.python_for("celery")), "-m", "benchmarks.peers.chord_celery"]
    return run_json([*argv, *map(str, args)], env)


def _reset(target: Target, dsn: str, env: dict[str, str]) -> None:
    if target.is_pgqueue:
        pg.execute(dsn, "TRUNCATE pgqueue.jobs, pgqueue.job_dependencies, pgqueue.workers")
        pg.execute(dsn, "VACUUM ANALYZE pgqueue.jobs, pgqueue.job_dependencies")
    else:
        _producer(target, "flush", 0, env=env)


def _wait_ready(target: Target, dsn: str, env: dict[str, str], workers: Worker) -> None:
    if not target.is_pgqueue:
        _producer(target, "ready", WORKERS, env=env)
        return
    deadline = time.monotonic() + 60
    while pg.execute(dsn, "SELECT count(*) FROM pgqueue.workers")[0][0] < WORKERS:
        workers.check_alive()
        if time.monotonic() > deadline:
            raise BenchError("pgqueue workers did not register")
        time.sleep(0.05)


def _cpu_ns(target: Target, dsn: str, workers: Worker) -> dict[int, int]:
    """pgqueue's workers and their database backends (Celery's Redis serves others too)."""
    return pg.cpu_ns(dsn, workers.pids()) if target.is_pgqueue else {}


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
    env = _env(record_dir, dsn, target)
    _reset(target, dsn, env)
    workers = _workers(target, concurrency, env, logs / f"{target.key}.log")
    try:
        _wait_ready(target, dsn, env, workers)
        load_before = os.getloadavg()
        cpu_before = _cpu_ns(target, dsn, workers)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        produced = _producer(target, target.kind, jobs, env=env)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        ended = _wait_done(target, jobs, record_dir, workers, timeout=600)
        time.sleep(0.5)  # the last acknowledgements land; a second callback run would show
        cpu_after = _cpu_ns(target, dsn, workers)
    finally:
        workers.stop()
    runs = callback_runs(record_dir)
    ran = records.count(record_dir)
    result = {
        "system": target.system, "kind": target.kind, "jobs": jobs,
        "seconds": ended - produced["started"],
        "enqueue_seconds": produced["enqueued"] - produced["started"],
        "header_runs": ran, "load_before": load_before, "load_after": os.getloadavg(),
        "producer_cpu_seconds": (children_after.ru_utime + children_after.ru_stime
                                 - children_before.ru_utime - children_before.ru_stime),
    }
    if cpu_after:
        result["workers_and_db_cpu_seconds"] = sum(
            ns - cpu_before.get(pid, 0) for pid, ns in cpu_after.items()) / 1e9
    if target.kind == "chord":
        result["callback_runs"] = len(runs)
        result["callback_results"] = runs[0][1] if runs else None
        result["callback_in_order"] = bool(runs and runs[0][2])
        if len(runs) != 1 or runs[0][1] != jobs or not runs[0][2]:
            raise BenchError(f"{target.key}: callback runs {runs} (want one, {jobs} in order)")
    return result


def summarize(rounds: list[dict]) -> dict:
    by_key: dict[str, list[dict]] = {}
    for r in rounds:
        by_key.setdefault(f"{r['system']}-{r['kind']}", []).append(r)
    medians = {key: statistics.median(r["seconds"] for r in rs) for key, rs in by_key.items()}
    summary: dict = {"median_seconds": medians, "chord_over_plain": {}}
    for system in sorted({r["system"] for r in rounds}):
        plain, chord = by_key.get(f"{system}-plain"), by_key.get(f"{system}-chord")
        if not plain or not chord:
            continue
        ratios = [c["seconds"] / p["seconds"] for p, c in zip(plain, chord, strict=False)]
        entry = {"per_round": ratios, "median": statistics.median(ratios)}
        cpu = [(p.get("workers_and_db_cpu_seconds"), c.get("workers_and_db_cpu_seconds"))
               for p, c in zip(plain, chord, strict=False)]
        if all(p and c for p, c in cpu):
            entry["cpu_median"] = (statistics.median(c for _, c in cpu)
                                   / statistics.median(p for p, _ in cpu))
        summary["chord_over_plain"][system] = entry
    if "celery-chord" in medians and "pgqueue-chord" in medians:
        summary["celery_chord_over_pgqueue_chord"] = (medians["celery-chord"]
                                                      / medians["pgqueue-chord"])
    return summary


def report(data: dict) -> str:
    s = data["summary"]
    lines = [f"# Chord benchmark, {data['date']}", "",
             f"{data['jobs']:,} jobs, {WORKERS} worker processes x {data['concurrency']} "
             f"slots, {data['rounds']} interleaved rounds; {data['machine']}", "",
             "| round | system | kind | seconds | enqueue s | producer CPU s | "
             "workers + db CPU s | load 1/5/15 before |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["results"]:
        load = "/".join(f"{v:.1f}" for v in r["load_before"])
        cpu = r.get("workers_and_db_cpu_seconds")
        lines.append(f"| {r['round']} | {r['system']} | {r['kind']} | {r['seconds']:.2f} | "
                     f"{r['enqueue_seconds']:.2f} | {r['producer_cpu_seconds']:.2f} | "
                     f"{'-' if cpu is None else f'{cpu:.2f}'} | {load} |")
    lines += ["", "Medians: " + ", ".join(f"{k} {v:.2f} s" for k, v in
                                          s["median_seconds"].items())]
    for system, entry in s["chord_over_plain"].items():
        cpu = (f"; workers + database CPU {entry['cpu_median']:.2f}"
               if "cpu_median" in entry else "")
        lines.append(f"{system} chord / plain, per round: "
                     + ", ".join(f"{v:.2f}" for v in entry["per_round"])
                     + f" (median {entry['median']:.2f}{cpu})")
    if "celery_chord_over_pgqueue_chord" in s:
        lines.append(f"Celery chord / pgqueue chord (medians): "
                     f"{s['celery_chord_over_pgqueue_chord']:.2f}")
    return "\n".join(lines) + "\n"


def run(jobs: int, concurrency: int, rounds: int, keys: list[str], out: Path,
        before: str | None = None) -> Path:
    """`before`: also run pgqueue's plain jobs and chord on that commit's engine, interleaved."""
    targets = [TARGETS[key] for key in keys]
    engines: dict[str | None, str] = {None: "working tree"}
    before_dir = None
    if before:
        directory, sha = pin.engine_snapshot(before)
        before_dir = str(directory)
        engines[before_dir] = sha
        targets += [Target("pgqueue-before", kind, str(directory)) for kind in ("plain", "chord")]
    systems = {t.system for t in targets}
    logs = Path(tempfile.mkdtemp(prefix="chord-logs-"))
    results: list[dict] = []
    with pg.server() as admin:
        names = {engine: f"pgqbench_chord_{n}_{os.getpid()}" for n, engine in enumerate(engines)}
        try:
            dsns = {engine: pg.fresh_database(admin, name) for engine, name in names.items()}
            for target in {t.engine_dir: t for t in targets if t.is_pgqueue}.values():
                run_json([*_pgqueue_python(target, "benchmarks.peers.chord_app"), "setup"],
                         _env(logs, dsns[target.engine_dir], target))
            for number in range(1, rounds + 1):
                for target in targets:
                    result = run_round(target, jobs, concurrency, dsns[target.engine_dir], logs)
                    result["round"] = number
                    results.append(result)
                    progress.say(f"round {number} {target.key}: {result['seconds']:.2f}s "
                                 f"(enqueue {result['enqueue_seconds']:.2f}s, load "
                                 f"{result['load_before'][0]:.1f})")
        finally:
            for name in names.values():
                pg.drop_database(admin, name)
    data = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "jobs": jobs,
            "concurrency": concurrency, "rounds": rounds, "workers": WORKERS,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "versions": envs.versions("celery") if "celery" in systems else {},
            "engines": {"pgqueue": "working tree",
                        **({"pgqueue-before": engines[before_dir]} if before_dir else {})},
            "results": results, "summary": summarize(results)}
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{datetime.now(UTC):%Y-%m-%d}-chord"
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1))
    stem.with_suffix(".md").write_text(report(data))
    progress.say(f"wrote {stem}.json and .md (worker logs in {logs})")
    print(report(data))
    return stem
