"""`python -m benchmarks flow`: what flow control (issue 12: unique keys, locks, queue limits)
costs a worker draining a backlog, with the engine from before it beside the engine after it.

Both engines are frozen copies (`pin.engine_snapshot`), each with its own database, worker and
seeded backlog, so edits to the working tree never leak in. One run measures every case:

- no limit: the before and the after engine on the same backlog (target: after >= 0.95 of
  before), at c=10 and c=100;
- the after engine with a queue limit that never binds (concurrency 10 c, a rate of
  100,000/s: the limited claim path's own cost), and with a concurrency limit that binds
  (c / 2), each against the after engine with no limit;
- the after engine with a lock per job (as many lock keys as jobs, so every job is queued, none
  waits; target >= 0.80 of no lock) and with few keys sharing the backlog (each job finished
  hands its lock on to the next; no target).

Cases take turns within each round, in reverse order every other round, so load from other
users of the machine (2 cores, shared) hits all of them alike; medians over the rounds are
reported with their spread and the load average measured around each run. The rate is jobs
from the first job's start to the last's (`drain_per_s`), so the worker's start-up, the same
for every case, does not dilute the claim path's cost; spawn-to-last (`per_s`, as in the
`throughput` metric) is kept beside it.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import metrics, pg, pin, progress, stats
from benchmarks.procs import BenchError, Worker
from benchmarks.systems import System, pgqueue_clone_locked, pgqueue_system

SEED_CHUNK = 1000
"""Jobs per seeding statement with locks: each takes a transaction-scoped advisory lock, and
the server's lock table holds max_locks_per_transaction x max_connections (6,400 here)."""
QUEUE = "default"
BEFORE = "3dc12ce"
"""The last commit before flow control (unique keys, locks and limits start at baa5a1d)."""
SETTLE_S = 0.3
"""After the last job ran: time for its acknowledgement before the CPU is read (an idle
worker costs ~1.6 transactions/s, nothing next to this)."""


@dataclass(frozen=True)
class FlowSizes:
    rounds: int
    jobs: int
    """Backlog of every run, and the lock keys of the one-job-per-key case."""
    shared_keys: int
    """Lock keys of the hand-over case (jobs / shared_keys jobs per key)."""
    cap_s: float


FULL = FlowSizes(rounds=7, jobs=10_000, shared_keys=100, cap_s=60)
QUICK = FlowSizes(rounds=1, jobs=2_000, shared_keys=20, cap_s=30)


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    engine: str
    """"before" or "after"."""
    concurrency: int
    limit: tuple[str, str] | None = None
    """(limit name, value) for pgqueue.set_queue_limit on the queue."""
    lock_keys: int | None = None
    """Jobs take `lock_keys` locks round-robin (None: no lock)."""
    against: str | None = None
    """Key of the case this one's ratio is taken against."""
    target: float | None = None


def cases(sizes: FlowSizes) -> list[Case]:
    out: list[Case] = []
    per_key = sizes.jobs // sizes.shared_keys
    for c in (10, 100):
        base = f"after-c{c}"
        out += [
            Case(f"before-c{c}", "before, no limit", "before", c),
            Case(base, "after, no limit", "after", c, against=f"before-c{c}", target=0.95),
            Case(f"concurrency-open-c{c}", f"after, concurrency {10 * c} (never binds)",
                 "after", c, limit=("concurrency", str(10 * c)), against=base),
            Case(f"concurrency-binding-c{c}", f"after, concurrency {c // 2} (binds)",
                 "after", c, limit=("concurrency", str(c // 2)), against=base),
            Case(f"rate-open-c{c}", "after, rate 100000/s (never binds)", "after", c,
                 limit=("rate_limit", "100000/s"), against=base),
            Case(f"locks-distinct-c{c}", f"after, {sizes.jobs:,} lock keys x 1 job", "after",
                 c, lock_keys=sizes.jobs, against=base, target=0.80),
            Case(f"locks-shared-c{c}",
                 f"after, {sizes.shared_keys:,} lock keys x {per_key:,} jobs", "after", c,
                 lock_keys=sizes.shared_keys, against=base),
        ]
    return out


def select(chosen: list[Case], only: Sequence[str] | None) -> list[Case]:
    """The cases named (all when None), with every case their ratios are taken against."""
    if not only:
        return chosen
    by_key = {c.key: c for c in chosen}
    unknown = set(only) - set(by_key)
    if unknown:
        raise BenchError(f"unknown cases: {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(by_key)}")
    wanted = set(only)
    for key in only:
        against = by_key[key].against
        while against:
            wanted.add(against)
            against = by_key[against].against
    return [c for c in chosen if c.key in wanted]


def _set_limit(system: System, limit: tuple[str, str] | None) -> None:
    pg.execute(system.dsn, "DELETE FROM pgqueue.queue_limits")
    if limit:
        pg.execute(system.dsn, "SELECT pgqueue.set_queue_limit(%s, %s, %s)",
                   params=(QUEUE, *limit))


def seed(system: System, jobs: int, lock_keys: int | None) -> dict[str, int]:
    """The backlog, cloned from a job the engine enqueued itself; returns jobs by state (a
    lock's first job is queued, the rest of its line waiting)."""
    if lock_keys is None:
        system.seed(jobs)
    else:
        template = str(system.produce("template")["id"])
        statements: list[str] = []
        for first in range(0, jobs, SEED_CHUNK):
            statements = pgqueue_clone_locked(template, min(SEED_CHUNK, jobs - first), first,
                                              lock_keys)
            pg.execute(system.dsn, statements[0])
        pg.execute(system.dsn, *statements[1:])
    rows = pg.execute(system.dsn, "SELECT state::text, count(*) FROM pgqueue.jobs GROUP BY 1")
    return {state: int(count) for state, count in rows}


def _cpu_ns(system: System, worker: Worker) -> dict[int, int]:
    """Time on a CPU of the worker's processes and of the backends of its database."""
    return pg.cpu_ns(system.dsn, worker.pids())


def drain(system: System, jobs: int, concurrency: int, cap_s: float) -> dict[str, Any]:
    """`metrics.process` (rates from the task records), plus the CPU each job cost the worker
    and the database: from the first job's record to SETTLE_S after the last (its
    acknowledgement included). A steadier measure of cost than a rate on a shared machine:
    other users' load delays a run but does not add to its CPU time."""
    records = metrics.Records()
    worker = metrics.start_worker(system, records, concurrency)
    try:
        first: tuple[int, dict[int, int]] | None = None
        deadline = time.monotonic() + cap_s
        while (done := records.count()) < jobs and time.monotonic() < deadline:
            worker.check_alive()
            if first is None and done:
                first = (done, _cpu_ns(system, worker))
            time.sleep(0.01)
        complete = done >= jobs
        time.sleep(SETTLE_S)
        end = _cpu_ns(system, worker)
        counted = records.count() - (first[0] if first else 0)
        worker_pids = set(worker.pids())
        runs = records.runs()
    finally:
        worker.stop()
        records.close()
    start = first[1] if first else {}
    spent = {pid: ns - start.get(pid, 0) for pid, ns in end.items()}
    times = sorted(runs.values())
    if not times:
        raise BenchError(f"{system.name}: no job ran within {cap_s:g} s")
    elapsed, drained = times[-1] - worker.started_at, times[-1] - times[0]
    return {"jobs": len(times), "complete": complete, "seconds": elapsed,
            "per_s": len(times) / elapsed, "drain_per_s": (len(times) - 1) / drained
            if drained > 0 else 0, "first_job_after_s": times[0] - worker.started_at,
            "worker_cpu_us_per_job": sum(ns for pid, ns in spent.items() if pid in worker_pids)
            / 1000 / max(1, counted),
            "db_cpu_us_per_job": sum(ns for pid, ns in spent.items() if pid not in worker_pids)
            / 1000 / max(1, counted)}


def measure(system: System, case: Case, sizes: FlowSizes) -> dict[str, Any]:
    system.reset()
    if case.engine == "after":
        _set_limit(system, case.limit)
    seeded = seed(system, sizes.jobs, case.lock_keys)
    load = os.getloadavg()[0]
    result = drain(system, sizes.jobs, case.concurrency, sizes.cap_s)
    return {**result, "seeded": seeded, "load_1m": [load, os.getloadavg()[0]]}


def prepare_systems(admin_dsn: str, before: str, after: str) -> tuple[dict[str, System],
                                                                       dict[str, Any]]:
    """A database and a pinned worker per engine: {"before": ..., "after": ...}, the commits."""
    systems: dict[str, System] = {}
    engines: dict[str, Any] = {}
    for role, ref in (("before", before), ("after", after)):
        directory, sha = pin.engine_snapshot(ref)
        engines[role] = {"ref": ref, "commit": sha}
        system = pgqueue_system(
            f"pgqueue-{role}", f"pgqueue {role} ({sha[:7]})", [],
            f"`pgqueue worker --concurrency N` on an `async def` no-op task, engine {sha[:12]}",
            engine_dir=str(directory))
        progress.say(f"{role}: {ref} = {sha[:12]} ({directory}); database {system.database}")
        system.prepare(admin_dsn)
        systems[role] = system
    return systems, engines


def run(before: str, after: str, sizes: FlowSizes, mode: str, out_dir: Path,
        only: Sequence[str] | None = None) -> dict[str, Any]:
    """`only`: these case keys (with the cases their ratios are taken against)."""
    chosen = select(cases(sizes), only)
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": mode, "sizes": asdict(sizes),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "load_average": {"start": os.getloadavg()},
        "cases": {c.key: {**asdict(c), "runs": []} for c in chosen},
    }
    started = time.monotonic()
    with pg.server() as admin_dsn:
        results["postgres"] = pg.server_settings(admin_dsn)
        systems, results["engines"] = prepare_systems(admin_dsn, before, after)
        try:
            for number in range(sizes.rounds):
                ordered = chosen if number % 2 == 0 else chosen[::-1]
                for case in ordered:
                    result = _guarded(lambda c=case: measure(systems[c.engine], c, sizes))
                    results["cases"][case.key]["runs"].append(result)
                    _say(number, sizes.rounds, case, result)
                results["duration_s"] = time.monotonic() - started
                results["load_average"]["end"] = os.getloadavg()
                results["summary"] = summarize(results)
                write(results, out_dir)  # a killed run keeps the rounds it finished
        finally:
            for system in systems.values():
                pg.drop_database(admin_dsn, system.database)
    return results


def _guarded(call: Any) -> dict[str, Any]:
    try:
        return call()
    except Exception as exc:
        progress.say(f"  FAILED: {str(exc)[:400]}")
        return {"error": str(exc)[:2000]}


def _say(number: int, rounds: int, case: Case, result: dict[str, Any]) -> None:
    if "error" in result:
        return
    progress.say(f"  round {number + 1}/{rounds} c={case.concurrency} {case.label}: "
                 f"{result['drain_per_s']:,.0f} jobs/s ({result['jobs']:,} jobs"
                 f"{'' if result['complete'] else ', CAPPED'}; spawn to last "
                 f"{result['per_s']:,.0f}/s), load {result['load_1m'][0]:.2f}")


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    return {"median": stats.median(values), "min": min(values) if values else None,
            "max": max(values) if values else None}


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Per case: medians and spread over the rounds; the ratio to its `against` case, both as
    the ratio of medians and as the median of the per-round ratios (same round, same load)."""
    out: dict[str, Any] = {}
    by_key = results["cases"]
    for key, case in by_key.items():
        runs = case["runs"]
        good = [r for r in runs if "error" not in r]
        entry: dict[str, Any] = {
            "drain_per_s": _spread([r["drain_per_s"] for r in good]),
            "per_s": _spread([r["per_s"] for r in good]),
            "load_1m": _spread([r["load_1m"][0] for r in good]),
            "cpu_us_per_job": _spread([_cpu(r) for r in good]),
            "worker_cpu_us_per_job": _spread([r["worker_cpu_us_per_job"] for r in good]),
            "db_cpu_us_per_job": _spread([r["db_cpu_us_per_job"] for r in good]),
            "complete": all(r["complete"] for r in good) and len(good) == len(runs),
            "errors": len(runs) - len(good)}
        against = case.get("against")
        if against:
            base_runs = by_key[against]["runs"]
            paired = [r["drain_per_s"] / b["drain_per_s"] for r, b in
                      zip(runs, base_runs, strict=False)
                      if "error" not in r and "error" not in b and b["drain_per_s"]]
            base = stats.median([r["drain_per_s"] for r in base_runs if "error" not in r])
            mine = entry["drain_per_s"]["median"]
            entry["ratio_of_medians"] = mine / base if mine and base else None
            entry["ratio_paired"] = _spread(paired)
            base_cpu = stats.median([_cpu(r) for r in base_runs if "error" not in r])
            mine_cpu = entry["cpu_us_per_job"]["median"]
            entry["cpu_ratio"] = mine_cpu / base_cpu if mine_cpu and base_cpu else None
            if case.get("target") is not None and entry["ratio_of_medians"] is not None:
                entry["target_met"] = entry["ratio_of_medians"] >= case["target"]
        out[key] = entry
    return out


def _cpu(run: dict[str, Any]) -> float:
    return run["worker_cpu_us_per_job"] + run["db_cpu_us_per_job"]


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    engines = results["engines"]
    load = results["load_average"]
    lines = [
        f"# Flow control cost: {engines['before']['ref']} "
        f"({engines['before']['commit'][:7]}) vs {engines['after']['ref']} "
        f"({engines['after']['commit'][:7]})", "",
        f"{results['date']}, {results['mode']}, {results['sizes']['rounds']} interleaved "
        f"rounds of {results['sizes']['jobs']:,} jobs per run, "
        f"{results.get('duration_s', 0) / 60:.1f} min; load average "
        f"{' / '.join(f'{v:.2f}' for v in load['start'])} at the start, "
        f"{' / '.join(f'{v:.2f}' for v in load.get('end', load['start']))} at the end; "
        f"{results['machine']['cpus']} CPUs, PostgreSQL "
        f"{results['postgres'].get('server_version', '?')}.", "",
        "jobs/s: from the first job's start to the last's, median over the rounds (min-max). "
        "Ratio: to the case named, as the ratio of medians and the median (min-max) of the "
        "per-round ratios (same round, same load). CPU: µs per job on a CPU, worker process "
        "+ its database backends (/proc/PID/schedstat), median over the rounds; CPU ratio: "
        "the case named's CPU per job / this one's (below 1: this one costs more).", "",
        "| c | case | jobs/s | min-max | against | ratio | per-round ratio (min-max) | target "
        "| CPU µs/job (worker + db) | CPU ratio | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    summary = results.get("summary", {})
    for key, case in results["cases"].items():
        entry = summary.get(key)
        if not entry or entry["drain_per_s"]["median"] is None:
            continue
        drain, paired = entry["drain_per_s"], entry.get("ratio_paired")
        against = results["cases"][case["against"]]["label"] if case["against"] else ""
        target = "" if case["target"] is None else (
            f">= {case['target']:.2f}: " + ("met" if entry.get("target_met") else "**missed**"))
        cpu_ratio = entry.get("cpu_ratio")
        lines.append(
            f"| {case['concurrency']} | {case['label']}"
            f"{'' if entry['complete'] else ' (capped or failed)'} | {_n(drain['median'])} | "
            f"{_n(drain['min'])}-{_n(drain['max'])} | "
            f"{against} | {_n(entry.get('ratio_of_medians'), 2)} | "
            + (f"{_n(paired['median'], 2)} ({_n(paired['min'], 2)}-{_n(paired['max'], 2)})"
               if paired and paired["median"] is not None else "")
            + f" | {target} | {_n(entry['cpu_us_per_job']['median'])} "
            f"({_n(entry['worker_cpu_us_per_job']['median'])} + "
            f"{_n(entry['db_cpu_us_per_job']['median'])}) | "
            f"{_n(1 / cpu_ratio if cpu_ratio else None, 2)} | "
            f"{_n(entry['load_1m']['median'], 2)} |")
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    engines = results["engines"]
    stem = out_dir / (f"{results['date'][:10]}-flow-{engines['before']['commit'][:7]}-"
                      f"{engines['after']['commit'][:7]}" + ("-quick" if results["mode"] ==
                                                             "quick" else ""))
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown(results))
    progress.say(f"wrote {stem}.json / .md")
    return stem
