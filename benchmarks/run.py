"""`python -m benchmarks run`: every metric for every system, interleaved by repetition so slow
drift of the shared machine hits all systems alike; then the JSON, Markdown and PNG."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import envs, metrics, pg, pin, progress, report, stats
from benchmarks import systems as systems_module
from benchmarks.metrics import Sizes
from benchmarks.procs import BenchError
from benchmarks.systems import System, redis_running

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("enqueue", "throughput", "wakeup", "idle", "backlog", "steady", "processes")


def ensure_redis() -> None:
    if not redis_running():
        progress.say("no Redis on 127.0.0.1:6379: starting redis-server")
        subprocess.run(["redis-server", "--bind", "127.0.0.1", "--port", "6379",
                        "--daemonize", "yes", "--save", "", "--appendonly", "no"], check=True)
        deadline = time.monotonic() + 10
        while not redis_running():
            if time.monotonic() > deadline:
                raise BenchError("redis-server did not start")
            time.sleep(0.1)


def _concurrency(system: System, wanted: int) -> int | None:
    if system.max_concurrency is not None and wanted > system.max_concurrency:
        return None
    return wanted


def _guarded(system: System, what: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One failing peer must not lose the whole run: record the error and go on."""
    try:
        return call()
    except Exception as exc:
        progress.say(f"  {system.name} {what} FAILED: {str(exc)[:400]}")
        return {"error": str(exc)[:2000]}


def _engine(ref: str | None) -> dict[str, Any]:
    """Pin the engine to a commit (`--engine REF`), or describe the working tree measured."""
    if ref:
        directory, sha = pin.engine_snapshot(ref)
        systems_module.ENGINE_DIR = str(directory)
        progress.say(f"engine pinned to {ref} = {sha[:12]} ({directory})")
        return {"ref": ref, "commit": sha, "pinned": True}
    described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=pin.ROOT,
                               capture_output=True, text=True).stdout.strip()
    return {"working_tree": described, "pinned": False}


def run(systems: Sequence[System], sizes: Sizes, mode: str, chosen: Sequence[str],
        out_dir: Path = RESULTS, engine: str | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": mode, "sizes": sizes.__dict__,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "systems": {}, "versions": {}, "engine": _engine(engine),
        "load_average": {"start": os.getloadavg()},
        "statistics": "analyzed after seeding" if systems_module.ANALYZE_AFTER_SEED else
                      "as a burst leaves them: analyzed once on the empty schema, never after "
                      "seeding (autovacuum off)",
    }
    with pg.server() as admin_dsn:
        results["postgres"] = pg.server_settings(admin_dsn)
        if any(s.name == "celery" for s in systems):
            ensure_redis()
        for system in systems:
            progress.say(f"preparing {system.name} (venv, database {system.database})")
            system.prepare(admin_dsn)
            results["systems"][system.name] = {"label": system.label, "config": system.config,
                                               "woken_by": system.woken_by}
            if system.venv:
                results["versions"][system.name] = envs.versions(system.venv)
        started = time.monotonic()
        try:
            for metric in METRICS:
                if metric in chosen:
                    progress.say(f"== {metric}")
                    results[metric] = globals()[f"_metric_{metric}"](systems, sizes)
                    results["duration_s"] = time.monotonic() - started
                    results["load_average"]["end"] = os.getloadavg()
                    results["summary"] = report.summarize(results)
                    write(results, out_dir, chart=False)  # a killed run keeps what it measured
        finally:
            for system in systems:
                pg.drop_database(admin_dsn, system.database)
        results["duration_s"] = time.monotonic() - started
        results["load_average"]["end"] = os.getloadavg()
    results["summary"] = report.summarize(results)
    write(results, out_dir)
    return results


def write(results: dict[str, Any], out_dir: Path, chart: bool = True) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{results['date'][:10]}-{results['mode']}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    stem.with_suffix(".md").write_text(report.markdown(results))
    if not chart:
        return stem
    try:
        report.chart(stem.with_suffix(".json"), stem.with_suffix(".png"))
    except Exception as exc:
        progress.say(f"chart failed: {exc}")
    progress.say(f"wrote {stem}.json / .md / .png")
    return stem


def _metric_enqueue(systems: Sequence[System], sizes: Sizes) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in systems}
    for rep in range(sizes.reps):
        for system in systems:
            result = _guarded(system, "enqueue", lambda s=system: metrics.enqueue(s, sizes))
            runs[system.name].append(result)
            if "error" not in result:
                progress.say(f"  {system.name} rep {rep + 1}: single "
                             f"{result['single_per_s']:.0f}/s, bulk {result['bulk_per_s']:.0f}/s")
    return {name: _median(r, ("single_per_s", "bulk_per_s")) for name, r in runs.items()}


def _metric_throughput(systems: Sequence[System], sizes: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {s.name: {} for s in systems}
    for concurrency in sizes.concurrencies:
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in systems}
        for rep in range(sizes.reps):
            for system in systems:
                c = _concurrency(system, concurrency)
                if c is None:
                    continue
                result = _guarded(system, f"throughput c={c}",
                                  lambda s=system, c=c: metrics.throughput(s, sizes, c))
                runs[system.name].append(result)
                if "error" not in result:
                    progress.say(f"  {system.name} c={c} rep {rep + 1}: "
                                 f"{result['per_s']:.0f} jobs/s ({result['jobs']} jobs, "
                                 f"{result['seconds']:.2f} s, "
                                 f"rss {result['peak_rss_mib']:.0f} MiB)")
        for system in systems:
            out[system.name][str(concurrency)] = (
                _median(runs[system.name], ("per_s", "seconds", "jobs", "peak_rss_mib",
                                            "first_job_after_s"))
                if runs[system.name] else {"skipped": "no concurrency option"})
    return out


def _metric_wakeup(systems: Sequence[System], sizes: Sizes) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in systems if not s.is_reference}
    for rep in range(sizes.reps):
        for system in systems:
            if system.is_reference:
                continue
            c = _concurrency(system, 10) or 1
            result = _guarded(system, "wakeup", lambda s=system, c=c: metrics.wakeup_latency(
                s, sizes, c))
            runs[system.name].append(result)
            if "error" not in result:
                progress.say(f"  {system.name} rep {rep + 1}: p50 {result['p50']:.1f} ms, "
                             f"p99 {result['p99']:.1f} ms, max {result['max']:.1f} ms")
    return {name: _median(r, ("p50", "p95", "p99", "max", "missing")) for name, r in runs.items()}


def _metric_idle(systems: Sequence[System], sizes: Sizes) -> dict[str, Any]:
    """Once per system (a rate over a 10 s window; the cost is steady, not noisy)."""
    out: dict[str, Any] = {}
    for system in systems:
        c = _concurrency(system, 10) or 1
        result = _guarded(system, "idle", lambda s=system, c=c: metrics.idle_cost(s, sizes, c))
        out[system.name] = result
        if "error" not in result:
            tps = result["transactions_per_s"]
            progress.say(f"  {system.name} idle: "
                         + (f"{tps:.1f} transactions/s" if tps is not None else
                            f"{result['redis_commands_per_s']:.1f} Redis commands/s")
                         + f", {result['cpu_percent']:.1f}% CPU")
    return out


def _metric_steady(systems: Sequence[System], sizes: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for system in systems:
        if system.is_reference:
            continue
        out[system.name] = {}
        for rate in sizes.steady_rates:
            slower = [r for r in out[system.name].values() if r.get("keeps_up") is False]
            if slower:
                out[system.name][str(rate)] = {"skipped": "did not keep up at a lower rate"}
                continue
            c = _concurrency(system, 10) or 1
            result = _guarded(system, f"steady {rate}/s",
                              lambda s=system, r=rate, c=c: metrics.steady_load(s, sizes, r, c))
            out[system.name][str(rate)] = result
            if "error" not in result:
                progress.say(f"  {system.name} {rate}/s: offered {result['offered_per_s']:.0f}/s"
                             f", p50 {_ms(result['p50'])}, p99 {_ms(result['p99'])}, "
                             f"keeps up: {result['keeps_up']}")
    return out


def _metric_backlog(systems: Sequence[System], sizes: Sizes) -> dict[str, Any]:
    return {s.name: _guarded(s, "backlog", lambda s=s: metrics.backlog_series(s, sizes))
            for s in systems}


def _metric_processes(systems: Sequence[System], sizes: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {s.name: {} for s in systems}
    for count in sizes.processes:
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in systems}
        for rep in range(sizes.reps):
            for system in systems:
                c = _concurrency(system, 10) or 1

                def one(s: System = system, c: int = c, k: int = count) -> dict[str, Any]:
                    s.reset()
                    s.seed(min(sizes.throughput, (s.seed_max or sizes.throughput) * k))
                    return metrics.process(s, sizes.throughput, c, sizes.throughput_cap_s,
                                           processes=k)

                result = _guarded(system, f"{count} processes", one)
                runs[system.name].append(result)
                if "error" not in result:
                    progress.say(f"  {system.name} x{count} rep {rep + 1}: "
                                 f"{result['per_s']:.0f} jobs/s")
        for system in systems:
            out[system.name][str(count)] = _median(runs[system.name], ("per_s", "jobs"))
    return out


def _median(runs: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"error": runs[0]["error"] if runs else "not run", "runs": list(runs)}
    out: dict[str, Any] = {k: stats.median([r[k] for r in good if r.get(k) is not None])
                           for k in keys}
    out["runs"] = list(runs)
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
